"""Checkpoint directory format: round trip, fp16, model ids, cards, errors, atomic writes."""
import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from cxrclip import checkpoint as ckpt
from cxrclip.checkpoint import CheckpointError, ModelCard, load_model, read_card, save_model
from cxrclip.model import CXRClip
from cxrclip.text_encoder import load_tokenizer

TEXTS = ["small left pleural effusion", "no pneumonia"]


@pytest.fixture(scope="module")
def model_and_tokenizer(tinybert_dir):
    from cxrclip.config import ImageEncoderConfig, ModelConfig, PreprocessConfig, TextEncoderConfig

    torch.manual_seed(1)
    config = ModelConfig(image=ImageEncoderConfig(name="resnet18", image_size=64),
                         text=TextEncoderConfig(path=str(tinybert_dir)), preprocess=PreprocessConfig(64, 72),
                         name="tiny")
    return CXRClip(config).eval(), load_tokenizer(tinybert_dir)


@pytest.fixture(scope="module")
def saved(model_and_tokenizer, tmp_path_factory):
    model, tokenizer = model_and_tokenizer
    out = tmp_path_factory.mktemp("ckpt") / "model"
    card = ModelCard(title="Tiny test model", data="phantoms", metrics={"auc": 0.75})
    return out, save_model(model, tokenizer, out, card=card)


def _embed(model, tokenizer, seed=0):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.encode_image(x), model.encode_text(batch["input_ids"], batch["attention_mask"])


def test_layout_and_config_json(saved):
    out, model_id = saved
    assert sorted(os.listdir(out)) == ["MANIFEST.sha256", "MODEL_CARD.md", "config.json", "model.safetensors",
                                       "model_card.json", "text_encoder"]
    assert {"config.json", "tokenizer.json"} <= set(os.listdir(out / "text_encoder"))
    data = json.loads((out / "config.json").read_text())
    assert data["format_version"] == 1 and data["model_id"] == model_id and data["dtype"] == "float32"
    assert data["model"]["preprocess"]["resize_shorter"] == 72
    assert model_id.startswith("tiny-") and len(model_id) == len("tiny-") + 16
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_round_trip_gives_identical_embeddings(saved, model_and_tokenizer):
    out, model_id = saved
    loaded = load_model(out)
    assert loaded.model_id == model_id and loaded.config.preprocess.resize_shorter == 72
    assert loaded.config.text.path == str(out / "text_encoder")
    assert not loaded.model.training and loaded.model.tokenizer is loaded.tokenizer
    for a, b in zip(_embed(loaded.model, loaded.tokenizer), _embed(*model_and_tokenizer), strict=True):
        # Identical weights and inputs; 1e-5 on unit-norm embeddings allows for other CPU/BLAS code paths.
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_card_is_rendered_and_readable(saved):
    out, _ = saved
    card = read_card(out)
    assert card.title == "Tiny test model" and card.metrics == {"auc": 0.75}
    text = (out / "MODEL_CARD.md").read_text()
    assert text.startswith("# Tiny test model\n") and "| auc | 0.75 |" in text and "## Training data" in text


def test_card_from_str_and_dict():
    assert ModelCard.from_any("hello").description == "hello"
    assert ModelCard.from_any({"title": "x"}).title == "x"
    with pytest.raises(ValueError, match="unknown model card field 'auc'"):
        ModelCard.from_any({"auc": 1})


def test_fp16_halves_file_and_loads_as_float32(model_and_tokenizer, saved, tmp_path):
    model, tokenizer = model_and_tokenizer
    model_id = save_model(model, tokenizer, tmp_path / "half", dtype=torch.float16)
    weights = load_file(str(tmp_path / "half" / "model.safetensors"))
    assert weights["image_encoder.resnet.conv1.weight"].dtype == torch.float16
    assert weights["image_encoder.resnet.bn1.num_batches_tracked"].dtype == torch.long
    size_full = (saved[0] / "model.safetensors").stat().st_size
    assert (tmp_path / "half" / "model.safetensors").stat().st_size < 0.55 * size_full
    loaded = load_model(tmp_path / "half")
    assert loaded.model.logit_scale.dtype == torch.float32 and loaded.model_id == model_id != saved[1]
    for a, b in zip(_embed(loaded.model, loaded.tokenizer), _embed(model, tokenizer), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=5e-3)


def test_model_id_is_stable_and_follows_weights(model_and_tokenizer, saved, tmp_path):
    model, tokenizer = model_and_tokenizer
    assert save_model(model, tokenizer, tmp_path / "again") == saved[1]
    changed = CXRClip(model.config)
    changed.load_state_dict(model.state_dict())
    with torch.no_grad():
        changed.logit_scale += 0.1
    assert save_model(changed, tokenizer, tmp_path / "changed") != saved[1]


def test_overwrite_replaces_and_failure_keeps_old(model_and_tokenizer, tmp_path, monkeypatch):
    model, tokenizer = model_and_tokenizer
    out = tmp_path / "m"
    first = save_model(model, tokenizer, out)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_model(model, tokenizer, out, overwrite=False)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ckpt, "_save_text_encoder", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_model(model, tokenizer, out)
    assert load_model(out).model_id == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_missing_things_are_named(tmp_path, saved):
    with pytest.raises(FileNotFoundError, match="model directory .*nope does not exist"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="(?s)config.json is missing.*convert-official"):
        load_model(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((saved[0] / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_model(broken)


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_unsupported_format_version(saved, tmp_path):
    out = _copy(saved[0], tmp_path / "v9")
    data = json.loads((out / "config.json").read_text())
    data["format_version"] = 9
    (out / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="unsupported format_version 9"):
        load_model(out)


def test_missing_unexpected_and_mismatched_weights(saved, tmp_path):
    out = _copy(saved[0], tmp_path / "bad")
    (out / "MANIFEST.sha256").unlink()  # else the manifest reports the changed file first
    weights = load_file(str(out / "model.safetensors"))
    good = dict(weights)
    del weights["logit_scale"]
    weights["image_encoder.resnet.fc.weight"] = torch.zeros(2, 2)
    save_file(weights, str(out / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing keys: logit_scale \(1\); unexpected keys: "
                                              r"image_encoder.resnet.fc.weight \(1\)"):
        load_model(out)
    good["text_projection.projection.bias"] = torch.zeros(7)
    save_file(good, str(out / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"'text_projection.projection.bias': checkpoint has \[7\], "
                                              r"model expects \[512\]"):
        load_model(out)


def test_many_missing_keys_are_summarised():
    expected = {f"k{i}": torch.zeros(1) for i in range(20)}
    with pytest.raises(CheckpointError, match=r"missing keys: k0, k1, .* \.\.\. \(20 in all\)"):
        ckpt.check_state_dict(expected, {}, "file.safetensors")
