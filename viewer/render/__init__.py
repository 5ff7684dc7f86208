"""Pixel pipeline: modality -> VOI (window or VOI LUT) -> presentation -> uint8."""
from viewer.render.pipeline import (
    data_range,
    default_display_uint8,
    default_window,
    display_lut,
    display_pixels,
    display_range,
    display_rgb,
    downsample_for_display,
    pixel_value_at,
    render_display,
    render_uint8,
    voi_lut_table,
    window_presets,
)

__all__ = ["data_range", "default_display_uint8", "default_window", "display_lut",
           "display_pixels", "display_range", "display_rgb", "downsample_for_display", "pixel_value_at",
           "render_display", "render_uint8", "voi_lut_table", "window_presets"]
