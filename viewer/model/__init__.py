"""Pure-Python models of the viewer (no Qt): events, study tree, display state."""
