"""Pure state-dict converters from the official checkpoints, with strict key checking (`_strict`)."""
