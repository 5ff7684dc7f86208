"""Light manifest of the CXR-CLIP findings plugin: no torch, no cxrclip, no Qt imported here."""
from viewer.plugin_api import XRAY_MODALITIES, PluginManifest

MANIFEST = PluginManifest(
    name="CXR-CLIP findings",
    version="0.1.0",
    description=("Zero-shot CheXpert findings, free-text prompt scores, similarity heatmaps and "
                 "nearest report sentences from a CXR-CLIP model."),
    factory="plugins.cxrclip_findings.plugin:create_plugin",
    modalities=XRAY_MODALITIES,
    view_positions=(),
)
