"""A small registry of image encoders, in the spirit of timm's ``create_model``.

Encoder modules register a factory with :func:`register_image_encoder`; the
model builds them by name with :func:`create_model`, so adding a backbone never
means editing an if/elif chain. Built-in encoders are registered when
``cxrclip.encoders`` is imported, which :func:`list_models` and
:func:`create_model` do on first use (no work at import time).
"""
from __future__ import annotations

from typing import Any, TypeVar
from collections.abc import Callable

from torch import nn

F = TypeVar("F", bound=Callable[..., nn.Module])

_IMAGE_ENCODERS: dict[str, Callable[..., nn.Module]] = {}


def register_image_encoder(name: str) -> Callable[[F], F]:
    """Decorator registering ``factory(**kwargs) -> nn.Module`` under ``name``."""

    def decorator(factory: F) -> F:
        if name in _IMAGE_ENCODERS and _IMAGE_ENCODERS[name] is not factory:
            raise ValueError(f"image encoder {name!r} is already registered")
        _IMAGE_ENCODERS[name] = factory
        return factory

    return decorator


def _ensure_builtins() -> None:
    import cxrclip.encoders  # noqa: F401  (registers resnet18/50, swin_tiny)


def list_models() -> list[str]:
    """Sorted names of all registered image encoders."""
    _ensure_builtins()
    return sorted(_IMAGE_ENCODERS)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the image encoder registered as ``name`` with constructor ``kwargs``."""
    _ensure_builtins()
    try:
        factory = _IMAGE_ENCODERS[name]
    except KeyError:
        raise ValueError(
            f"unknown image encoder {name!r}; available: {sorted(_IMAGE_ENCODERS)}"
        ) from None
    return factory(**kwargs)
