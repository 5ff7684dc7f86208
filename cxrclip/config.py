"""Configuration dataclasses for the CXR-CLIP model.

Every config is a plain dataclass that can be built from a dict (``from_dict``)
and turned back into one (``to_dict``), so configs round-trip through
``config.json`` in checkpoints and through YAML training configs. Unknown keys
and bad values raise ``ValueError`` naming the key/value and what is allowed,
because a silently ignored typo in a config is a week of wasted training.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar
from collections.abc import Mapping

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
HALF_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
HALF_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)

POOLINGS = ("eos", "bos", "mean")
INTERPOLATIONS = ("bicubic", "bilinear")
RESIZE_ROUNDINGS = ("round", "floor")
CROP_OFFSETS = ("floor", "round_half_even")
RESIZE_DTYPES = ("float32", "uint8")
# The evaluation transform of the official CXR-CLIP code (torchvision Resize + CenterCrop on an
# 8-bit PIL image): PIL bilinear, long side int()-truncated, crop offset Python round(), 8-bit result.
OFFICIAL_RESIZE: dict[str, str] = {"interpolation": "bilinear", "resize_rounding": "floor",
                                   "crop_offset": "round_half_even", "resize_dtype": "uint8"}
PROJECTION_KINDS = ("linear", "mlp")

T = TypeVar("T", bound="_ConfigBase")


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {list(allowed)}, got {value!r}")


def _check_positive(what: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{what} must be > 0, got {value!r}")


def _triple(what: str, value: Any) -> tuple[float, float, float]:
    values = tuple(float(v) for v in value)
    if len(values) != 3:
        raise ValueError(f"{what} must have 3 values (one per RGB channel), got {list(value)!r}")
    return values  # type: ignore[return-value]


class _ConfigBase:
    """Shared dict conversion: strict about keys, recursive for nested configs."""

    _nested: ClassVar[dict[str, type]] = {}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Self | None) -> Self:
        """Build from a mapping; unknown keys raise ``ValueError`` listing allowed keys."""
        if data is None:
            return cls()
        if isinstance(data, cls):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__} expects a dict, got {type(data).__name__}")
        allowed = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = [k for k in data if k not in allowed]
        if unknown:
            raise ValueError(
                f"unknown key {unknown[0]!r} in {cls.__name__}; allowed keys: {allowed}"
            )
        kwargs = dict(data)
        for key, sub in cls._nested.items():
            if key in kwargs:
                kwargs[key] = sub.from_dict(kwargs[key])  # type: ignore[attr-defined]
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, _ConfigBase):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


@dataclass
class PreprocessConfig(_ConfigBase):
    """How pixels become model input: resize shorter side, centre-crop, normalise.

    ``resize_shorter`` is the length the shorter image side is resized to before a
    centre crop of ``image_size`` x ``image_size``. ``mean``/``std`` are per RGB
    channel on [0, 1] pixel values. How the resize and crop are done:

    - ``interpolation``: ``"bicubic"`` (our models) or ``"bilinear"`` (official
      CXR-CLIP); both antialiased as PIL does.
    - ``resize_rounding``: the long side is ``long * resize_shorter / short``
      rounded half up (``"round"``) or truncated (``"floor"``, torchvision's ``int()``).
    - ``crop_offset``: the crop starts at ``(resized - image_size) / 2`` rounded down
      (``"floor"``: odd margins put the extra pixel bottom/right) or by Python's
      ``round`` (``"round_half_even"``, torchvision ``CenterCrop``).
    - ``resize_dtype``: the resize runs in ``"float32"`` (no rounding) or on the
      8-bit image with an 8-bit result (``"uint8"``, PIL on an 8-bit image).

    The defaults are our models' documented choice; config files written before
    these keys existed load with exactly the old behaviour. :data:`OFFICIAL_RESIZE`
    holds the official code's values (set by ``cxrclip convert-official``).
    """

    image_size: int = 224
    resize_shorter: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"
    resize_rounding: str = "round"
    crop_offset: str = "floor"
    resize_dtype: str = "float32"

    def __post_init__(self) -> None:
        self.image_size = int(self.image_size)
        self.resize_shorter = int(self.resize_shorter)
        _check_positive("preprocess.image_size", self.image_size)
        if self.resize_shorter < self.image_size:
            raise ValueError(
                f"preprocess.resize_shorter ({self.resize_shorter}) must be >= image_size "
                f"({self.image_size}) so the centre crop fits"
            )
        self.mean = _triple("preprocess.mean", self.mean)
        self.std = _triple("preprocess.std", self.std)
        for s in self.std:
            _check_positive("preprocess.std values", s)
        _check_choice("preprocess.interpolation", self.interpolation, INTERPOLATIONS)
        _check_choice("preprocess.resize_rounding", self.resize_rounding, RESIZE_ROUNDINGS)
        _check_choice("preprocess.crop_offset", self.crop_offset, CROP_OFFSETS)
        _check_choice("preprocess.resize_dtype", self.resize_dtype, RESIZE_DTYPES)

    @classmethod
    def imagenet(cls, image_size: int = 224, resize_shorter: int | None = None) -> Self:
        """ImageNet mean/std, as used by the ResNet backbones."""
        return cls(image_size, resize_shorter or image_size, IMAGENET_MEAN, IMAGENET_STD)

    @classmethod
    def half(cls, image_size: int = 224, resize_shorter: int | None = None) -> Self:
        """mean = std = 0.5, as used by the Swin backbone."""
        return cls(image_size, resize_shorter or image_size, HALF_MEAN, HALF_STD)

    @classmethod
    def for_backbone(cls, name: str, image_size: int = 224) -> Self:
        """Default preprocessing for an image-encoder name (Swin: 0.5/0.5, else ImageNet)."""
        return cls.half(image_size) if name.startswith("swin") else cls.imagenet(image_size)

    @classmethod
    def official(cls, name: str, image_size: int = 224, resize_shorter: int | None = None) -> Self:
        """The official CXR-CLIP evaluation transform for a backbone (see :data:`OFFICIAL_RESIZE`)."""
        base = cls.for_backbone(name, image_size)
        return dataclasses.replace(base, resize_shorter=resize_shorter or image_size, **OFFICIAL_RESIZE)


@dataclass
class ImageEncoderConfig(_ConfigBase):
    """Image encoder: a registry name plus options passed to its constructor."""

    name: str = "resnet50"
    image_size: int = 224
    gradient_checkpointing: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_positive("image.image_size", int(self.image_size))
        if not isinstance(self.options, dict):
            raise ValueError(f"image.options must be a dict, got {self.options!r}")


@dataclass
class TextEncoderConfig(_ConfigBase):
    """Text encoder: a local transformers directory (BERT family) and how to pool it.

    ``pooling``: ``eos`` = hidden state of the last non-padding token
    (``attention_mask.sum(-1) - 1``, as the official CXR-CLIP code), ``bos`` =
    first token, ``mean`` = masked mean over tokens.
    """

    path: str = ""
    pooling: str = "eos"
    max_length: int = 256
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        _check_choice("text.pooling", self.pooling, POOLINGS)
        _check_positive("text.max_length", int(self.max_length))


@dataclass
class ProjectionConfig(_ConfigBase):
    """Projection heads mapping both encoders into the shared embedding space."""

    kind: str = "linear"
    dim: int = 512
    dropout: float = 0.1

    def __post_init__(self) -> None:
        _check_choice("projection.kind", self.kind, PROJECTION_KINDS)
        _check_positive("projection.dim", int(self.dim))
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"projection.dropout must be in [0, 1), got {self.dropout!r}")


@dataclass
class ModelConfig(_ConfigBase):
    """Whole CXR-CLIP model: image + text encoders, projections, preprocessing."""

    _nested: ClassVar[dict[str, type]] = {
        "image": ImageEncoderConfig,
        "text": TextEncoderConfig,
        "projection": ProjectionConfig,
        "preprocess": PreprocessConfig,
    }

    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    logit_scale_init: float = math.log(1 / 0.07)
    name: str = "cxrclip"

    def __post_init__(self) -> None:
        for key, sub in self._nested.items():
            value = getattr(self, key)
            if isinstance(value, Mapping):
                setattr(self, key, sub.from_dict(value))  # type: ignore[attr-defined]
        self.logit_scale_init = float(self.logit_scale_init)


def default_config(backbone: str = "resnet50", text_path: str = "") -> ModelConfig:
    """A ModelConfig with the paper's defaults for a backbone name."""
    return ModelConfig(
        image=ImageEncoderConfig(name=backbone),
        text=TextEncoderConfig(path=text_path),
        preprocess=PreprocessConfig.for_backbone(backbone),
    )
