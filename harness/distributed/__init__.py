"""One run over several processes (torchrun / accelerate launch): who is who, how the model is
wrapped, and what the ranks agree on."""
