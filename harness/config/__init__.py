"""What a run's options mean: type and range checks, and the identity that makes two runs the same experiment."""
