"""Method infrastructure: the `Method` interface, the registry, and the PEFT-backed and native bases
that the one-file-per-method modules in `methods/` build on."""
