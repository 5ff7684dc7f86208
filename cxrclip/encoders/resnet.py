"""ResNet-18/50 image encoders with torchvision's exact parameter names.

The layout (``conv1``, ``bn1``, ``layer1.0.conv1`` ... ``downsample.0/1``) matches
torchvision so that torchvision ImageNet weights and the published CXR-CLIP
checkpoints (``image_encoder.resnet.*``) load without renaming. The classifier
(``fc``) is removed; the global feature is the spatial mean of the last map.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from cxrclip.registry import register_image_encoder


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 - 3x3 (strided) - 1x1 bottleneck with residual (ResNet-50, torchvision v1.5)."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet trunk without the classifier; ``forward`` returns the last feature map."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], base_width: int = 64):
        super().__init__()
        self.inplanes = base_width
        self.conv1 = nn.Conv2d(3, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, base_width, layers[0], 1)
        self.layer2 = self._make_layer(block, base_width * 2, layers[1], 2)
        self.layer3 = self._make_layer(block, base_width * 4, layers[2], 2)
        self.layer4 = self._make_layer(block, base_width * 8, layers[3], 2)
        self.out_dim = base_width * 8 * block.expansion
        self.gradient_checkpointing = False
        self._init_weights()

    def _make_layer(self, block, width: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != width * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, width * block.expansion, stride),
                nn.BatchNorm2d(width * block.expansion),
            )
        modules = [block(self.inplanes, width, stride, downsample)]
        self.inplanes = width * block.expansion
        modules += [block(self.inplanes, width) for _ in range(1, blocks)]
        return nn.Sequential(*modules)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            if self.gradient_checkpointing and self.training and x.requires_grad:
                x = checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        return x


class ResNetEncoder(nn.Module):
    """Image encoder wrapping a :class:`ResNet` as ``self.resnet`` (official key prefix)."""

    def __init__(self, resnet: ResNet, gradient_checkpointing: bool = False):
        super().__init__()
        self.resnet = resnet
        self.resnet.gradient_checkpointing = gradient_checkpointing
        self.out_dim = resnet.out_dim

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Last convolutional feature map (B, C, H/32, W/32)."""
        return self.resnet(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Global average-pooled feature (B, C)."""
        return self.feature_map(x).mean(dim=(2, 3))

    def pooled_and_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` and ``feature_map`` from one pass: (B, C) and (B, C, h, w)."""
        fmap = self.feature_map(x)
        return fmap.mean(dim=(2, 3)), fmap

    def load_torchvision_weights(self, path: str | Path) -> None:
        """Load a local torchvision ResNet state dict (``.pth`` or ``.safetensors``); ``fc`` is dropped."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ResNet weights file not found: {path}")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        self.resnet.load_state_dict(state, strict=True)


def _build(block, layers: list[int], gradient_checkpointing: bool, weights: str | None,
           base_width: int = 64) -> ResNetEncoder:
    encoder = ResNetEncoder(ResNet(block, layers, base_width), gradient_checkpointing)
    if weights:
        encoder.load_torchvision_weights(weights)
    return encoder


@register_image_encoder("resnet50")
def resnet50(gradient_checkpointing: bool = False, weights: str | None = None, image_size: int = 224) -> ResNetEncoder:
    """ResNet-50 (Bottleneck, [3, 4, 6, 3]); ``weights`` = optional local torchvision file; any ``image_size`` works."""
    return _build(Bottleneck, [3, 4, 6, 3], gradient_checkpointing, weights)


@register_image_encoder("resnet18")
def resnet18(gradient_checkpointing: bool = False, weights: str | None = None, image_size: int = 224) -> ResNetEncoder:
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]); ``weights`` = optional local torchvision file; any ``image_size`` works."""
    return _build(BasicBlock, [2, 2, 2, 2], gradient_checkpointing, weights)


@register_image_encoder("resnet10_slim")
def resnet10_slim(gradient_checkpointing: bool = False, weights: str | None = None,
                  image_size: int = 224) -> ResNetEncoder:
    """A CPU-friendly ResNet (BasicBlock, [1, 1, 1, 1], half width: 32-256 channels, 256-d output).

    About 1/8 of ResNet-18's FLOPs; the bundled demo model uses it so it trains on a 2-core CPU.
    Same parameter names as torchvision's ResNets (no torchvision weights exist for this shape).
    """
    return _build(BasicBlock, [1, 1, 1, 1], gradient_checkpointing, weights, base_width=32)
