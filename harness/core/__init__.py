"""Shared building blocks with no harness dependencies of their own: errors, hashes, paths, caches, metric rows, provenance, fault points."""
