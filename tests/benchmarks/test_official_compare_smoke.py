"""benchmarks/official_compare.py: its parts that need no official checkout, and (when a checkout
of kakaobrain/cxr-clip is available) the official model -> checkpoint -> convert -> parity path
on a small text encoder."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.benchmarks.conftest import script_module

ROOT = Path(__file__).resolve().parents[2]
KEYS = ROOT / "tests" / "cxrclip_model" / "official_cxrclip_checkpoint_keys.json"
TINY_BERT = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)


@pytest.fixture(scope="module")
def oc():
    """benchmarks/official_compare.py as a module."""
    yield from script_module("official_compare")


def official_checkout() -> Path | None:
    """The checkout named by CXRCLIP_OFFICIAL_CHECKOUT, only when set (a leftover scratch folder
    must not change what CI runs)."""
    named = os.environ.get("CXRCLIP_OFFICIAL_CHECKOUT")
    if not named:
        return None
    candidate = Path(named)
    return candidate if (candidate / "cxrclip" / "model" / "clip.py").is_file() else None


def test_resnet50_stand_in_has_the_published_r50_layout(oc):
    """What the official wrapper keeps (all but fc) is exactly the published r50 image_encoder keys."""
    published = {k.removeprefix("image_encoder.resnet."): v for k, v in json.loads(KEYS.read_text())["r50"].items()
                 if k.startswith("image_encoder.resnet.")}
    net = oc.torchvision_layout_resnet50(pretrained=True)
    assert list(net.fc.weight.shape) == [1000, 2048]
    del net.fc  # as the official ResNet50 wrapper does
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert ours == published


def test_import_shims_only_for_missing_modules_and_only_while_active(oc, monkeypatch):
    monkeypatch.setattr(oc, "SHIMMED", ("json", "not_installed_pkg_1d7", "not_installed_pkg_1d7.sub",
                                        "torchvision", "torchvision.models", "torchvision.models.resnet"))
    real_json = sys.modules["json"]
    with oc.import_shims() as shimmed:
        assert "json" not in shimmed and sys.modules["json"] is real_json
        assert "not_installed_pkg_1d7.sub" in shimmed
        from not_installed_pkg_1d7 import sub  # noqa: F401  (the shim is importable)
        from torchvision.models.resnet import resnet50
        assert resnet50 is oc.torchvision_layout_resnet50
    assert "not_installed_pkg_1d7" not in sys.modules and "torchvision" not in sys.modules


def test_interleaved_ms_rotates_order_and_defeats_caches(oc):
    calls: list[tuple[str, int]] = []
    tasks = {name: (lambda i, n=name: calls.append((n, i))) for name in ("a", "b", "c")}
    times = oc.interleaved_ms(tasks, repeats=3, warmup=1, pause_s=0.0)
    assert {n: len(t) for n, t in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert calls[:3] == [("a", -1), ("b", -1), ("c", -1)]
    assert [n for n, _ in calls[3:]] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert sorted(i for n, i in calls[3:] if n == "b") == [0, 1, 2]


def test_summarize_median_and_p90(oc):
    stats = oc.summarize([float(v) for v in range(10, 0, -1)])
    assert stats == {"median": pytest.approx(5.5), "p90": 9.0, "n": 10}
    assert oc.summarize([4.0]) == {"median": 4.0, "p90": 4.0, "n": 1}


def test_missing_checkout_is_a_clear_message(oc, tmp_path, capsys):
    assert oc.main(["--official", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "git clone https://github.com/kakaobrain/cxr-clip" in err


def test_official_pads_to_256_ours_to_the_longest(oc):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(oc.DEMO_TOKENIZER))
    inputs = oc.train_inputs(batch=3, seed=0, size=32)
    assert oc.report_texts(3, 0) == (inputs["texts"], inputs["texts2"])  # deterministic
    theirs = oc.official_batch(inputs, tokenizer, 256)
    ours = oc.our_batch(inputs, tokenizer, 256)
    longest = max(int(m.sum()) for m in theirs["text_tokens"]["attention_mask"])
    assert theirs["text_tokens"]["input_ids"].shape == (3, 256)
    assert ours["input_ids"].shape == (3, longest) and longest < 256
    assert (ours["input_ids"] == theirs["text_tokens"]["input_ids"][:, :longest]).all()


@pytest.mark.slow  # about 40 s of CPU (ResNet-50 builds, checkpoint writes, one step on each side)
@pytest.mark.skipif(official_checkout() is None,
                    reason="no checkout of the official CXR-CLIP code: git clone https://github.com/kakaobrain/"
                           "cxr-clip /tmp/official-cxr-clip and set CXRCLIP_OFFICIAL_CHECKOUT to it")
def test_official_checkpoint_converts_to_the_same_numbers(oc, tmp_path):
    """Official model (tiny BERT) -> its trainer's checkpoint -> convert-official -> same embeddings
    and loss; one training step on each side gives a finite loss."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer

    import cxrclip
    from cxrclip.checkpoint import load_model
    from cxrclip.engine import Engine

    checkout = official_checkout()
    official = oc.import_official(checkout)
    assert Path(cxrclip.__file__).parent == ROOT / "cxrclip"  # ours is back in place
    text_dir = oc.write_text_dir(tmp_path / "text", **TINY_BERT)
    config = oc.official_config(checkout, text_dir)
    assert config["base"]["text_max_length"] == 256 and config["model"]["image_encoder"]["name"] == "resnet"
    tokenizer = AutoTokenizer.from_pretrained(str(text_dir))
    model = oc.build_official_model(official, config, tokenizer, seed=0)
    checkpoint = oc.save_like_official_trainer(official, model, config, tmp_path / "r50_tiny.tar")
    folder = oc.convert_and_export(checkpoint, text_dir, tmp_path / "ours", onnx=False)
    engine = Engine.load(folder, runtime="torch", device="cpu")
    evaluator = oc.official_evaluator(official, model, tokenizer, config)
    pixels = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    found = oc.parity(evaluator, {"torch": engine}, tokenizer, pixels, ["small left pleural effusion", "no edema"])
    assert found["image max |diff| torch"] < 1e-5 and found["text max |diff| torch"] < 1e-5
    assert found["token ids identical torch"] == 1.0

    loaded = load_model(folder)
    inputs = oc.train_inputs(batch=2, seed=0, size=64)
    obatch, ubatch = oc.official_batch(inputs, tokenizer, 256), oc.our_batch(inputs, loaded.tokenizer, 256)
    assert oc.loss_parity(official, model, config, obatch, loaded.model, ubatch) < 1e-4
    before = loaded.model.text_projection.projection.weight.detach().clone()
    losses = [oc.official_step_fn(official, model, config, obatch)(0), oc.our_step_fn(loaded.model, ubatch)(0)]
    assert all(np.isfinite(losses))
    assert not torch.equal(before, loaded.model.text_projection.projection.weight)
