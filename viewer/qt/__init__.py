"""The viewer's Qt layer: widgets that subscribe to the pure models in viewer.model."""
