"""Light manifest of the histogram plugin (no heavy imports here)."""
from viewer.plugin_api import PluginManifest

MANIFEST = PluginManifest(
    name="Histogram",
    version="0.1.0",
    description="Intensity histogram of the selected view's modality values, with the window marked.",
    factory="plugins.histogram.plugin:create_plugin",
    modalities=(),
    view_positions=(),
)
