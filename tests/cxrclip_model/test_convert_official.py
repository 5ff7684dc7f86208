"""Conversion of published CXR-CLIP checkpoints, built here from the key manifest."""
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cxrclip.checkpoint import load_model, read_card
from cxrclip.config import ImageEncoderConfig, ModelConfig, PreprocessConfig, TextEncoderConfig
from cxrclip.convert_official import (ConversionError, build_config, convert_official, detect_backbone, map_keys,
                                      read_official)
from cxrclip.model import CXRClip
from cxrclip.text_encoder import load_tokenizer

ENCODER = {"r50": "resnet50", "swint": "swin_tiny"}
TEXTS = ["small left pleural effusion", "no pneumonia", "the heart is normal size"]


def reference_model(backbone, text_dir, state):
    """CXRClip with the given (current-name) weights loaded directly, the ground truth."""
    config = ModelConfig(image=ImageEncoderConfig(name=ENCODER[backbone]), text=TextEncoderConfig(path=str(text_dir)),
                         preprocess=PreprocessConfig.for_backbone(ENCODER[backbone]))
    model = CXRClip(config)
    model.load_state_dict(state, strict=True)
    return model.eval()


def embeddings(model, tokenizer):
    # transformers' Swin needs >= 224 px (smaller grids break its window attention).
    size = 224 if model.config.image.name.startswith("swin") else 64
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(3))
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.encode_image(x), model.encode_text(batch["input_ids"], batch["attention_mask"])


def assert_same_embeddings(converted_dir, reference, text_dir):
    loaded = load_model(converted_dir)
    expected = embeddings(reference, load_tokenizer(text_dir))
    for ours, theirs in zip(embeddings(loaded.model, loaded.tokenizer), expected, strict=True):
        # Same weights, same inputs; the two models may take different CPU/BLAS code paths (3e-8 seen
        # on another CPU), so compare the unit-norm embeddings to 1e-5 absolute, not bit for bit.
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    return loaded


def assert_every_weight_intact(converted_dir, state):
    """Stored tensors are copied, not computed: each must be bit-identical to the original."""
    converted = load_file(str(converted_dir / "model.safetensors"))
    assert sorted(converted) == sorted(state)
    for key, value in state.items():
        assert converted[key].dtype == value.dtype and torch.equal(converted[key], value), key


@pytest.mark.parametrize("backbone, legacy_names", [("r50", False), ("swint", True)])
def test_convert_full_image_layout_with_small_text_model(backbone, legacy_names, manifest, tinybert_dir,
                                                         helpers, tmp_path):
    state = helpers.random_state(helpers.official_shapes(manifest, backbone, tinybert_dir))
    path = helpers.save_official(tmp_path / f"{backbone}_mc.tar",
                                 helpers.to_legacy(state, legacy_names=legacy_names), backbone)
    with pytest.raises(pickle.UnpicklingError, match="omegaconf.listconfig.ListConfig"):
        torch.load(path, weights_only=True)  # the fixture really is what torch's safe loader refuses
    model_id = convert_official(path, tmp_path / "out", tinybert_dir)
    assert_every_weight_intact(tmp_path / "out", state)
    loaded = assert_same_embeddings(tmp_path / "out", reference_model(backbone, tinybert_dir, state), tinybert_dir)
    assert loaded.model_id == model_id and model_id.startswith(f"cxrclip-{backbone}_mc-")
    assert loaded.config.image.name == ENCODER[backbone]
    assert loaded.config.preprocess == PreprocessConfig.official(ENCODER[backbone], 224, 224)
    assert loaded.config.preprocess.mean == ((0.5,) * 3 if backbone == "swint" else (0.485, 0.456, 0.406))
    assert (loaded.config.preprocess.interpolation, loaded.config.preprocess.resize_rounding) == ("bilinear", "floor")
    card = read_card(tmp_path / "out")
    assert f"converted from official CXR-CLIP checkpoint {backbone}_mc.tar" in card.source
    assert card.data == "MIMIC-CXR + CheXpert" and "epoch=3" in card.extra["official checkpoint"]


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["r50", "swint"])
def test_convert_full_official_layout_bert_base(backbone, manifest, clinicalbert_dir, helpers, tmp_path):
    """The complete published layout (BERT-base, vocab 28996) with legacy buffers."""
    state = helpers.random_state(helpers.official_shapes(manifest, backbone), seed=5)
    path = helpers.save_official(tmp_path / f"{backbone}_m.tar", helpers.to_legacy(state), backbone)
    assert set(helpers.to_legacy(state)) - set(state)  # legacy buffers really are in the file
    convert_official(path, tmp_path / "out", clinicalbert_dir, backbone=backbone)
    assert_every_weight_intact(tmp_path / "out", state)


@pytest.fixture
def small_r50(manifest, tinybert_dir, helpers):
    return helpers.random_state(helpers.official_shapes(manifest, "r50", tinybert_dir))


def test_extra_weight_fails_with_listing(small_r50, tinybert_dir, helpers, tmp_path):
    state = dict(small_r50, **{"image_encoder.resnet.fc.weight": torch.zeros(1000, 2048),
                               "image_encoder.resnet.fc.bias": torch.zeros(1000)})
    path = helpers.save_official(tmp_path / "r50_m.tar", state, "r50")
    with pytest.raises(ConversionError, match=r"unexpected keys: image_encoder.resnet.fc.bias, "
                                              r"image_encoder.resnet.fc.weight \(2\)"):
        convert_official(path, tmp_path / "out", tinybert_dir)
    assert not (tmp_path / "out").exists()


def test_missing_weight_fails_with_listing(small_r50, tinybert_dir, helpers, tmp_path):
    state = dict(small_r50)
    del state["image_encoder.resnet.layer3.2.bn2.running_mean"]
    path = helpers.save_official(tmp_path / "r50_m.tar", state, "r50")
    with pytest.raises(ConversionError, match=r"missing keys: image_encoder.resnet.layer3.2.bn2.running_mean"):
        convert_official(path, tmp_path / "out", tinybert_dir)


def test_wrong_text_encoder_is_a_shape_error_with_hint(manifest, tinybert_dir, minilm_dir, helpers, tmp_path):
    state = helpers.random_state(helpers.official_shapes(manifest, "r50", tinybert_dir))
    path = helpers.save_official(tmp_path / "r50_m.tar", state, "r50")
    with pytest.raises(ConversionError, match=r"(shape mismatch|missing keys).*--text-encoder"):
        convert_official(path, tmp_path / "out", minilm_dir)


def test_backbone_option_must_agree(small_r50, tinybert_dir, helpers, tmp_path):
    path = helpers.save_official(tmp_path / "r50_m.tar", small_r50, "r50")
    with pytest.raises(ConversionError, match="--backbone swint given but the weights are a r50 model"):
        convert_official(path, tmp_path / "out", tinybert_dir, backbone="swint")
    with pytest.raises(ConversionError, match="cannot tell the backbone"):
        detect_backbone({"logit_scale": torch.zeros(())})


def test_map_keys_renames_legacy_swin_but_not_bert():
    state = {"image_encoder.image_encoder.encoder.layers.0.blocks.1.attention.self.query.weight": 1,
             "image_encoder.image_encoder.encoder.layers.0.blocks.1.attention.output.dense.bias": 2,
             "image_encoder.image_encoder.encoder.layers.0.blocks.1.output.dense.weight": 3,
             "image_encoder.image_encoder.encoder.layers.0.blocks.1.attention.self.relative_position_index": 4,
             "text_encoder.text_encoder.encoder.layer.0.attention.self.query.weight": 5,
             "text_encoder.text_encoder.encoder.layer.0.output.dense.weight": 6,
             "text_encoder.text_encoder.embeddings.position_ids": 7}
    mapped, dropped = map_keys(state)
    assert mapped == {"image_encoder.image_encoder.encoder.layers.0.blocks.1.attention.q_proj.weight": 1,
                      "image_encoder.image_encoder.encoder.layers.0.blocks.1.attention.o_proj.bias": 2,
                      "image_encoder.image_encoder.encoder.layers.0.blocks.1.mlp.fc2.weight": 3,
                      "text_encoder.text_encoder.encoder.layer.0.attention.self.query.weight": 5,
                      "text_encoder.text_encoder.encoder.layer.0.output.dense.weight": 6}
    assert len(dropped) == 2


class Payload:
    """Unpickling this object would create the marker file (it must never happen)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_needing_code_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "code_was_executed"
    path = tmp_path / "evil.tar"
    torch.save({"model": {"logit_scale": torch.zeros(())}, "config": Payload(marker)}, path)
    refused = r"refused to load .*evil.tar: it contains a pickled object \(builtins\.getattr\).*Nothing from it was run"
    with pytest.raises(ConversionError, match=refused):
        read_official(path)
    with pytest.raises(ConversionError, match="refused"):
        convert_official(path, tmp_path / "out", tmp_path)
    assert not marker.exists()
    # Sanity: the payload really would run code when unpickled unsafely.
    assert pickle.loads(pickle.dumps(Payload(marker))) is None and marker.exists()


@pytest.mark.parametrize("backbone", ["r50", "swint"])
def test_official_trainer_pickle_is_read_as_plain_data(backbone, helpers, tmp_path):
    """ListConfig, omegaconf nodes/metadata, typing.Any, defaultdict and numpy scalars become plain data."""
    state = {"logit_scale": torch.tensor(2.5), "w": torch.arange(6.0).reshape(2, 3)}
    path = helpers.save_official(tmp_path / f"{backbone}_m.tar", state, backbone)
    with zipfile.ZipFile(path) as archive:
        pickled = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    for name in (b"omegaconf.listconfig", b"ListConfig", b"ContainerMetadata", b"AnyNode", b"defaultdict",
                 b"typing", b"multiarray"):
        assert name in pickled, name  # what the official trainer's file really holds
    data = read_official(path)
    config = data["config"]
    scale = config["transform"]["train"]["RandomResizedCrop"]["scale"]
    assert type(scale) is list and scale == [0.8, 1.1]
    assert type(config["transform"]["test"]) is dict and config["transform"]["test"]["Resize"] == {"size": 224}
    assert config["model"]["text_encoder"]["pooling"] == "eos" and config["scheduler"]["config"]["total_steps"] == 15000
    assert type(data["train_loss"]) is float and data["train_loss"] == 1.25 and data["epoch"] == 3
    assert data["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert torch.equal(data["optimizer"]["state"][2]["exp_avg"], torch.full((4,), 0.02))
    assert data["scheduler"]["wsteps"] == 1000
    assert all(torch.equal(data["model"][k], v) for k, v in state.items())


def test_numpy_scalars_of_each_kind_become_python_numbers(tmp_path):
    import numpy as np

    values = {"f16": np.float16(0.5), "f32": np.float32(-2.25), "i64": np.int64(-7), "u8": np.uint8(200),
              "flag": np.bool_(True), "big": np.array(3.0, dtype=">f8")[()]}
    torch.save({"model": {"x": torch.zeros(1)}, "values": values}, tmp_path / "n.tar")
    read = read_official(tmp_path / "n.tar")["values"]
    assert read == {"f16": 0.5, "f32": -2.25, "i64": -7, "u8": 200, "flag": True, "big": 3.0}
    assert [type(v) for v in read.values()] == [float, float, int, int, bool, float]


def test_code_hidden_in_an_omegaconf_config_is_refused(helpers, tmp_path):
    marker = tmp_path / "code_was_executed"
    config = helpers.official_config("r50")
    config["model"]["extra"] = [Payload(marker)]
    torch.save({"model": {"logit_scale": torch.zeros(())}, "config": config}, tmp_path / "evil.tar")
    with pytest.raises(ConversionError, match=r"refused to load .*evil.tar: .*\(builtins\.getattr\)"):
        read_official(tmp_path / "evil.tar")
    assert not marker.exists()


def test_torchscript_archive_is_refused_without_loading(tmp_path):
    path = tmp_path / "scripted.tar"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("scripted/data.pkl", b"")
        archive.writestr("scripted/constants.pkl", b"")
    with pytest.raises(ConversionError, match="TorchScript archive"):
        read_official(path)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.tar").write_bytes(b"not a torch file")
    with pytest.raises(ConversionError, match="cannot read"):
        read_official(tmp_path / "junk.tar")
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        read_official(tmp_path / "missing.tar")


def test_text_pooling_is_read_from_the_text_encoder_section():
    state = {"image_projection.projection.weight": torch.zeros(256, 2048)}
    official = {"model": {"image_encoder": {"pooling": "avg"}, "text_encoder": {"pooling": "mean"}}}
    config = build_config("r50", state, official, "/bert", "r50_m")
    assert (config.text.pooling, config.projection.dim, config.projection.kind) == ("mean", 256, "linear")
    assert build_config("swint", state, None, "/bert", "x").text.pooling == "eos"
    with pytest.raises(ConversionError, match="pooling is 'cls'"):
        build_config("r50", state, {"text_encoder": {"pooling": "cls"}}, "/bert", "x")


def test_allow_list_holds_data_types_only():
    from cxrclip.safe_unpickle import allowed_globals

    table = allowed_globals()
    for name in ("builtins.getattr", "builtins.eval", "builtins.exec", "builtins.__import__", "os.system",
                 "subprocess.Popen", "posix.system", "numpy.core.multiarray._reconstruct", "numpy.ndarray",
                 "pathlib.Path", "functools.partial", "operator.attrgetter", "torch.load", "omegaconf.OmegaConf"):
        assert name not in table, name
    assert not any(callable(v) for k, v in table.items() if k.startswith(("typing.", "builtins.dict")))
