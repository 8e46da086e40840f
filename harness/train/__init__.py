"""Training: the loop and the text-to-token encoding it trains on."""
