"""One run from start to end: the experiment, its held-out split, lr search, calibration data and tracking."""
