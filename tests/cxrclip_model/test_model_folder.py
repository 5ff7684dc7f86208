"""A model folder either loads correctly or says what is wrong: one exception class, named file, fix.

Each broken folder is a copy of a saved tiny model with one thing damaged, checked through
``load_model``, ``Engine.load`` and the CLI (``cxrclip info`` / ``cxrclip score``, exit status 1).
"""
import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from cxrclip.checkpoint import ModelFolderError, load_model, save_model
from cxrclip.cli import main
from cxrclip.engine import Engine
from cxrclip.manifest import MANIFEST_FILE, write_manifest
from cxrclip.model import CXRClip
from cxrclip.text_encoder import load_tokenizer


@pytest.fixture(scope="module")
def saved(tinybert_dir, tmp_path_factory):
    from cxrclip.config import ImageEncoderConfig, ModelConfig, PreprocessConfig, TextEncoderConfig

    torch.manual_seed(2)
    config = ModelConfig(image=ImageEncoderConfig(name="resnet18", image_size=64),
                         text=TextEncoderConfig(path=str(tinybert_dir)), preprocess=PreprocessConfig(64, 64),
                         name="tiny-folder")
    out = tmp_path_factory.mktemp("folder") / "model"
    save_model(CXRClip(config).eval(), load_tokenizer(tinybert_dir), out)
    return out


@pytest.fixture
def copy(saved, tmp_path):
    """A fresh copy of the saved folder; ``manifest=False`` drops MANIFEST.sha256 (an older model)."""
    def make(manifest: bool = True):
        out = shutil.copytree(saved, tmp_path / "m")
        if not manifest:
            (out / MANIFEST_FILE).unlink()
        return out

    return make


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "cxr.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 90), dtype=np.uint8)).save(path)
    return path


def assert_refused(folder, pattern, capsys, png):
    """load_model, Engine.load and both CLI commands give one ModelFolderError message naming the file."""
    with pytest.raises(ModelFolderError, match=pattern) as caught:
        load_model(folder)
    message = str(caught.value)
    assert 1 <= len(message.splitlines()) <= 3, message
    with pytest.raises(ModelFolderError, match=pattern):
        Engine.load(folder, device="cpu")
    capsys.readouterr()
    assert main(["info", str(folder)]) == 1
    assert message in capsys.readouterr().err
    assert main(["score", str(png), "--prompt", "effusion", "--model", str(folder), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    return message


def test_manifest_lists_every_file_with_its_sha256(saved):
    lines = (saved / MANIFEST_FILE).read_text().splitlines()
    listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in lines}
    files = sorted(p.relative_to(saved).as_posix() for p in saved.rglob("*")
                   if p.is_file() and p.name != MANIFEST_FILE)
    assert sorted(listed) == files and "text_encoder/tokenizer.json" in listed
    for name, digest in listed.items():
        assert hashlib.sha256((saved / name).read_bytes()).hexdigest() == digest


def test_folders_with_and_without_manifest_load(copy):
    with_manifest = load_model(copy())
    shutil.rmtree(with_manifest.path)
    assert load_model(copy(manifest=False)).model_id == with_manifest.model_id


def test_info_says_the_folder_checks_out(saved, capsys):
    assert main(["info", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "check: ok (files match MANIFEST.sha256)" in out and "bicubic resize" in out


def test_changed_file_is_named_by_the_manifest(copy, capsys, png):
    folder = copy()
    config = json.loads((folder / "config.json").read_text())
    config["model"]["text"]["pooling"] = "bos"
    (folder / "config.json").write_text(json.dumps(config))
    message = assert_refused(folder, r"config.json does not match its SHA-256 sum in .*MANIFEST.sha256", capsys, png)
    assert "delete MANIFEST.sha256" in message
    (folder / MANIFEST_FILE).unlink()  # changed on purpose: without the manifest it loads
    assert load_model(folder).config.text.pooling == "bos"


def test_deleted_tokenizer_json_is_named(copy, capsys, png):
    folder = copy()
    (folder / "text_encoder" / "tokenizer.json").unlink()
    assert_refused(folder, r"text_encoder/tokenizer.json is missing \(listed in .*MANIFEST.sha256\)", capsys, png)
    (folder / MANIFEST_FILE).unlink()
    message = assert_refused(folder, r"text_encoder/tokenizer.json is missing: the folder has no tokenizer "
                                     r"vocabulary", capsys, png)
    assert "Copy the model folder again" in message


def test_tokenizer_of_another_size_is_refused(copy, capsys, png):
    folder = copy(manifest=False)
    from transformers import BertTokenizer

    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / "text_encoder" / name).unlink(missing_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "effusion", "no"]
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(str(folder / "text_encoder"))
    assert_refused(folder, r"tokenizer in .*text_encoder has 7 tokens but the text encoder has 28996 token "
                           r"embeddings", capsys, png)


@pytest.mark.parametrize("content, pattern", [
    ("[1, 2, 3]", r"config.json holds a JSON list, not an object"),
    ('{"format_version": 1, "model_id": "x"}', r"config.json has no 'model' section"),
    ("{not json", r"config.json is not valid JSON"),
])
def test_bad_config_json(copy, capsys, png, content, pattern):
    folder = copy(manifest=False)
    (folder / "config.json").write_text(content)
    assert_refused(folder, pattern, capsys, png)


def test_invalid_model_section_names_the_key(copy, capsys, png):
    folder = copy(manifest=False)
    config = json.loads((folder / "config.json").read_text())
    config["model"]["projection"]["kind"] = "conv"
    (folder / "config.json").write_text(json.dumps(config))
    assert_refused(folder, r"config.json: the 'model' section is invalid: projection.kind must be one of", capsys, png)


def test_truncated_weights_are_named(copy, capsys, png):
    folder = copy(manifest=False)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    message = assert_refused(folder, r"model.safetensors is damaged or incomplete", capsys, png)
    assert "SafetensorError" in message


def test_nan_weights_are_refused(copy, capsys, png):
    folder = copy(manifest=False)
    state = load_file(str(folder / "model.safetensors"))
    state["image_projection.projection.weight"][0, 0] = float("nan")
    state["logit_scale"] = torch.tensor(float("inf"))
    save_file(state, str(folder / "model.safetensors"))
    assert_refused(folder, r"model.safetensors has NaN or infinite values in image_projection.projection.weight, "
                           r"logit_scale \(2\)", capsys, png)


def test_weights_of_another_model_are_named(copy, capsys, png):
    folder = copy(manifest=False)
    state = load_file(str(folder / "model.safetensors"))
    del state["logit_scale"]
    save_file(state, str(folder / "model.safetensors"))
    message = assert_refused(folder, r"model.safetensors does not match the model; missing keys: logit_scale",
                             capsys, png)
    assert "do not belong to the model described in" in message


def test_missing_folder_and_plain_file(tmp_path, capsys, png):
    assert_refused(tmp_path / "nope", r"model directory .*nope does not exist", capsys, png)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelFolderError, match="is a file, not a model folder"):
        load_model(tmp_path / "file")


def test_damaged_manifest_is_named(copy, capsys, png):
    folder = copy()
    (folder / MANIFEST_FILE).write_text("not a sum line\n")
    assert_refused(folder, r"MANIFEST.sha256 is malformed \(line 1\)", capsys, png)


def test_manifest_rewritten_after_an_intended_change(copy):
    folder = copy()
    (folder / "MODEL_CARD.md").write_text("# edited\n")
    with pytest.raises(ModelFolderError, match="MODEL_CARD.md does not match"):
        load_model(folder)
    write_manifest(folder)
    assert load_model(folder).model_id.startswith("tiny-folder-")


def test_exported_from_the_package():
    import cxrclip

    assert cxrclip.ModelFolderError is ModelFolderError and issubclass(ModelFolderError, ValueError)


def test_unknown_image_encoder_names_the_config(copy, capsys, png):
    folder = copy(manifest=False)
    config = json.loads((folder / "config.json").read_text())
    config["model"]["image"]["name"] = "resnet77"
    (folder / "config.json").write_text(json.dumps(config))
    message = assert_refused(folder, r"config.json: cannot build the model it describes \(unknown image encoder "
                                     r"'resnet77'", capsys, png)
    assert "Upgrade cxrclip" in message
