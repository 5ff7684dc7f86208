"""The training loop and its parts: runtime (DDP, precision), optimiser, checkpoint state."""
