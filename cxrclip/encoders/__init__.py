"""Image encoders. Importing this package registers the built-in backbones.

Every encoder is an ``nn.Module`` with ``out_dim`` (feature width),
``forward(x) -> (B, C)`` global feature and ``feature_map(x) -> (B, C, h, w)``
spatial features whose positions line up with the input grid.
"""
from cxrclip.encoders.resnet import ResNetEncoder
from cxrclip.encoders.swin import SwinEncoder

__all__ = ["ResNetEncoder", "SwinEncoder"]
