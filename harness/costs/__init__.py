"""What a run costs: memory and parameter footprint, training FLOPs, inference latency, the hardware it ran on."""
