"""ModelConfig and friends: dict round-trips, strict keys, value checks, presets."""
import math

import pytest

from cxrclip.config import (IMAGENET_MEAN, IMAGENET_STD, OFFICIAL_RESIZE, ModelConfig, PreprocessConfig, ProjectionConfig,
                            TextEncoderConfig, default_config)


def test_round_trip_through_dict_keeps_everything():
    config = default_config("swin_tiny", "/models/bert")
    config.projection = ProjectionConfig(kind="mlp", dim=256, dropout=0.2)
    data = config.to_dict()
    assert data["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert data["text"]["path"] == "/models/bert"
    again = ModelConfig.from_dict(data)
    assert again == config
    assert isinstance(again.preprocess.mean, tuple)


def test_defaults_match_the_paper():
    config = ModelConfig()
    assert config.image.name == "resnet50"
    assert config.text.pooling == "eos" and config.text.max_length == 256
    assert config.projection.kind == "linear" and config.projection.dim == 512
    assert config.logit_scale_init == pytest.approx(math.log(1 / 0.07))
    assert config.preprocess == PreprocessConfig(224, 224, IMAGENET_MEAN, IMAGENET_STD)


def test_unknown_key_names_key_and_allowed_keys():
    with pytest.raises(ValueError, match=r"unknown key 'pooler'.*allowed keys: \['path', 'pooling'"):
        ModelConfig.from_dict({"text": {"pooler": "eos"}})
    with pytest.raises(ValueError, match="unknown key 'imag'"):
        ModelConfig.from_dict({"imag": {}})


@pytest.mark.parametrize("make, fragment", [
    (lambda: TextEncoderConfig(pooling="foo"), r"text.pooling must be one of \['eos', 'bos', 'mean'\], got 'foo'"),
    (lambda: ProjectionConfig(kind="conv"), r"projection.kind must be one of \['linear', 'mlp'\]"),
    (lambda: ProjectionConfig(dropout=1.5), r"dropout must be in \[0, 1\)"),
    (lambda: PreprocessConfig(image_size=224, resize_shorter=200), r"resize_shorter \(200\) must be >= image_size"),
    (lambda: PreprocessConfig(mean=(0.5, 0.5)), "mean must have 3 values"),
    (lambda: PreprocessConfig(std=(0.5, 0.0, 0.5)), "std values must be > 0"),
])
def test_bad_values_are_explained(make, fragment):
    with pytest.raises(ValueError, match=fragment):
        make()


def test_preprocess_presets():
    assert PreprocessConfig.imagenet().mean == (0.485, 0.456, 0.406)
    assert PreprocessConfig.imagenet().std == (0.229, 0.224, 0.225)
    half = PreprocessConfig.half(384, 400)
    assert (half.image_size, half.resize_shorter, half.mean, half.std) == (384, 400, (0.5,) * 3, (0.5,) * 3)
    assert PreprocessConfig.for_backbone("swin_tiny").mean == (0.5, 0.5, 0.5)
    assert PreprocessConfig.for_backbone("resnet50").std == IMAGENET_STD


def test_nested_dicts_in_constructor_become_configs():
    config = ModelConfig(text={"path": "x", "pooling": "mean"})
    assert isinstance(config.text, TextEncoderConfig) and config.text.pooling == "mean"


def test_old_preprocess_dicts_keep_the_old_resize_and_official_values_round_trip():
    # config.json files written before the resize keys existed: our documented default behaviour.
    old = PreprocessConfig.from_dict({"image_size": 128, "resize_shorter": 128, "mean": [0.5] * 3, "std": [0.5] * 3})
    assert (old.interpolation, old.resize_rounding, old.crop_offset, old.resize_dtype) == (
        "bicubic", "round", "floor", "float32")
    official = PreprocessConfig.official("swin_tiny")
    assert official.to_dict()["interpolation"] == "bilinear" and official.mean == (0.5,) * 3
    assert PreprocessConfig.from_dict(official.to_dict()) == official
    assert {k: getattr(official, k) for k in OFFICIAL_RESIZE} == OFFICIAL_RESIZE
    assert PreprocessConfig.official("resnet50", 224, 256).resize_shorter == 256
