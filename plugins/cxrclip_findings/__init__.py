"""CXR-CLIP findings plugin for the viewer (see docs/plugin_cxrclip.md).

The package import is light: the manifest is read without importing torch;
`plugins.cxrclip_findings.plugin` (Qt panels + engine worker) is imported only
when the viewer activates the plugin.
"""
