"""What a person runs and reads: the Hydra app, the preflight of a sweep, its callback, console lines and summaries."""
