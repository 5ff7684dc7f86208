"""The cxrclip CLI core: info, convert-official, entry-point discovery, clean errors."""
import json
import sys
from importlib.metadata import EntryPoint

import pytest

from cxrclip import cli
from cxrclip.checkpoint import ModelCard, save_model
from cxrclip.model import CXRClip
from cxrclip.text_encoder import load_tokenizer


@pytest.fixture(scope="module")
def model_dir(tinybert_dir, tmp_path_factory):
    from cxrclip.config import ImageEncoderConfig, ModelConfig, TextEncoderConfig

    config = ModelConfig(image=ImageEncoderConfig(name="resnet18", image_size=64),
                         text=TextEncoderConfig(path=str(tinybert_dir), pooling="mean"), name="clitest")
    out = tmp_path_factory.mktemp("cli") / "model"
    model_id = save_model(CXRClip(config), load_tokenizer(tinybert_dir), out,
                          card=ModelCard(title="CLI card", data="phantoms", metrics={"recall@5": 0.4}))
    return out, model_id


def test_info_prints_summary(model_dir, capsys):
    out, model_id = model_dir
    assert cli.main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert model_id in text and "resnet18" in text and "pooling mean" in text
    assert "CLI card" in text and "metric recall@5: 0.4" in text


def test_info_json(model_dir, capsys):
    out, model_id = model_dir
    assert cli.main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model_id"] == model_id and info["model"]["text"]["pooling"] == "mean"
    assert info["card"]["data"] == "phantoms"


def test_user_error_is_short_without_traceback(tmp_path, capsys):
    assert cli.main(["info", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"cxrclip: error: model directory {tmp_path / 'missing'} does not exist")
    assert "Traceback" not in err and "convert-official" in err
    assert 1 <= err.count("\n") <= 3  # the problem, then the fix


def test_usage_errors_return_nonzero(capsys):
    assert cli.main(["convert-official"]) == 2
    assert "--text-encoder" in capsys.readouterr().err
    assert cli.main([]) == 2
    assert cli.main(["--help"]) == 0


def test_convert_official_command(manifest, tinybert_dir, helpers, tmp_path, capsys):
    state = helpers.random_state(helpers.official_shapes(manifest, "r50", tinybert_dir))
    path = helpers.save_official(tmp_path / "r50_mcc.tar", helpers.to_legacy(state), "r50")
    rc = cli.main(["convert-official", str(path), str(tmp_path / "out"), "--text-encoder", str(tinybert_dir),
                   "--backbone", "r50", "--fp16"])
    assert rc == 0 and "model id cxrclip-r50_mcc-" in capsys.readouterr().out
    info = json.loads((tmp_path / "out" / "config.json").read_text())
    assert info["dtype"] == "float16"
    assert cli.main(["convert-official", str(tmp_path / "nope.tar"), str(tmp_path / "o2"),
                     "--text-encoder", str(tinybert_dir)]) == 1
    assert "checkpoint file not found" in capsys.readouterr().err


def _fake_entry_points(tmp_path, monkeypatch, body):
    module = tmp_path / "fake_cmds_mod.py"
    module.write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [EntryPoint("hello", "fake_cmds_mod:register_hello", cli.ENTRY_POINT_GROUP),
           EntryPoint("train", "no_such_module_xyz.cli:register_train", cli.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(cli, "entry_points", lambda group: eps if group == cli.ENTRY_POINT_GROUP else [])


HELLO = '''
def register_hello(subparsers):
    p = subparsers.add_parser("hello", help="say hello")
    p.add_argument("--name", default="world")
    p.set_defaults(func=lambda args: print(f"hello {args.name}") or 3)
'''


def test_entry_point_commands_are_discovered(tmp_path, monkeypatch, capsys):
    _fake_entry_points(tmp_path, monkeypatch, HELLO)
    assert cli.main(["hello", "--name", "xray"]) == 3
    assert capsys.readouterr().out == "hello xray\n"


def test_broken_entry_point_only_fails_its_own_command(tmp_path, monkeypatch, capsys, model_dir):
    _fake_entry_points(tmp_path, monkeypatch, HELLO)
    assert cli.main(["train", "config.yaml"]) == 2
    err = capsys.readouterr().err
    assert "the 'train' command is unavailable: ModuleNotFoundError" in err and "no_such_module_xyz" in err
    assert cli.main(["info", str(model_dir[0])]) == 0
    assert capsys.readouterr().err == ""
    assert cli.main(["--help"]) == 0
    captured = capsys.readouterr()
    assert "hello" in captured.out and "train" in captured.out and captured.err == ""


def test_core_commands_do_not_import_providers(tmp_path, monkeypatch, model_dir):
    _fake_entry_points(tmp_path, monkeypatch, "raise RuntimeError('imported!')\n")
    sys.modules.pop("fake_cmds_mod", None)
    assert cli.main(["info", str(model_dir[0])]) == 0
    assert "fake_cmds_mod" not in sys.modules
