"""The ONNX Runtime path of `cxrclip.Engine`: export, runtime selection, parity with torch, no torch import.

Stated tolerances (float32 on CPU, torch vs ONNX Runtime): |Δ probability| <= 1e-4,
cosine of embeddings >= 0.99999, similarity maps within 1e-4; token ids identical.
Exports go to copies under tmp (never into assets/).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "assets" / "models" / "cxrclip-demo"
PROB_TOL, COS_MIN, MAP_TOL = 1e-4, 0.99999, 1e-4


def _copy_without_onnx(source: Path, target: Path) -> Path:
    """A copy of a model folder without its onnx/ exports, with a manifest that fits the copy."""
    from cxrclip.manifest import write_manifest

    shutil.copytree(source, target, ignore=shutil.ignore_patterns("onnx"))
    write_manifest(target)
    return target


@pytest.fixture(scope="session")
def demo_onnx_dir(tmp_path_factory) -> Path:
    """The demo model exported with `export_onnx` (about 45 s on 2 cores)."""
    from cxrclip.onnx_export import export_onnx

    folder = _copy_without_onnx(DEMO, tmp_path_factory.mktemp("onnx") / "demo")
    export_onnx(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_onnx_dir(tmp_path_factory, tiny_model_dir: Path) -> Path:
    """The tiny random ResNet18 + 2-layer MiniLM model, exported through the CLI."""
    from cxrclip.cli import main

    folder = _copy_without_onnx(tiny_model_dir, tmp_path_factory.mktemp("onnx") / "tiny")
    assert main(["export-onnx", str(folder), "--opset", "18"]) == 0
    return folder


def _views(n: int = 3) -> list:
    from cxrclip.engine import ViewInput

    rng = np.random.default_rng(7)
    shapes = [(300, 240), (256, 256), (180, 320)]
    views = []
    for i in range(n):
        h, w = shapes[i % len(shapes)]
        ramp = np.add.outer(np.linspace(0, 120, h), np.linspace(0, 100, w))
        views.append(ViewInput(f"v{i}", np.clip(ramp + rng.normal(0, 20, (h, w)), 0, 255).astype(np.uint8), f"view {i}"))
    return views


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _assert_engines_agree(onnx_engine, torch_engine) -> None:
    from cxrclip.engine import StudyInput

    study = StudyInput("s", _views())
    img_o, mean_o = onnx_engine.view_vectors(study.views)
    img_t, mean_t = torch_engine.view_vectors(study.views)
    assert _cosines(img_o, img_t).min() >= COS_MIN
    assert np.abs(mean_o - mean_t).max() <= MAP_TOL * np.abs(mean_t).max()  # the OOD guard's vector
    if torch_engine.ood_guard is not None:
        ood_o, ood_t = onnx_engine.out_of_distribution(study.views), torch_engine.out_of_distribution(study.views)
        assert len(ood_t) == 3 and [v.flag for v in ood_o] == [v.flag for v in ood_t]
        assert max(abs(a.score - b.score) for a, b in zip(ood_o, ood_t)) <= 1e-3 * max(v.score for v in ood_t)
    prompts = ["small left pleural effusion", "cardiomegaly", "no acute cardiopulmonary process"]
    txt_o, txt_t = onnx_engine.encode_text(prompts), torch_engine.encode_text(prompts)
    assert _cosines(txt_o, txt_t).min() >= COS_MIN
    score_o, score_t = onnx_engine.score(study, prompts), torch_engine.score(study, prompts)
    for p_o, p_t in zip(score_o.prompts, score_t.prompts):
        assert abs(p_o.probability - p_t.probability) <= PROB_TOL
        assert [abs(a.probability - b.probability) <= PROB_TOL for a, b in zip(p_o.views, p_t.views)] == [True] * 3
    zero_o = {s.finding: s.probability for s in onnx_engine.zero_shot(study, max_prompts=3)}
    zero_t = {s.finding: s.probability for s in torch_engine.zero_shot(study, max_prompts=3)}
    assert zero_o.keys() == zero_t.keys() and len(zero_o) == 14
    assert max(abs(zero_o[k] - zero_t[k]) for k in zero_o) <= PROB_TOL
    for kind in ("similarity", "probability"):
        map_o = onnx_engine.similarity_map(study.views[0], "pleural effusion", kind=kind)
        map_t = torch_engine.similarity_map(study.views[0], "pleural effusion", kind=kind)
        assert np.array_equal(np.isnan(map_o), np.isnan(map_t))
        assert np.nanmax(np.abs(map_o - map_t)) <= MAP_TOL
    assert onnx_engine.logit_scale == pytest.approx(torch_engine.logit_scale, rel=1e-6)


def test_export_writes_graphs_record_and_manifest(demo_onnx_dir: Path):
    from cxrclip.manifest import check_manifest
    from cxrclip.onnx_export import PARITY_TOLERANCE

    onnx_dir = demo_onnx_dir / "onnx"
    assert sorted(p.name for p in onnx_dir.iterdir()) == ["export.json", "image.onnx", "text.onnx", "tokenizer.json"]
    info = json.loads((onnx_dir / "export.json").read_text())
    assert info["opset"] == 18 and info["model_id"] == json.loads((demo_onnx_dir / "config.json").read_text())["model_id"]
    assert info["versions"]["onnxruntime"] and info["versions"]["torch"]
    parity = info["parity"]
    assert parity["token_ids_identical"] is True
    assert parity["probability_max_abs"] <= PARITY_TOLERANCE["probability_max_abs"]
    assert parity["text_embedding_min_cosine"] >= COS_MIN and parity["image_embedding_min_cosine"] >= COS_MIN
    # The demo's float16 weights stay float16 in the graphs (exact values, half the size).
    assert info["float16_initializers"]["text.onnx"] > 50
    assert (onnx_dir / "text.onnx").stat().st_size < 60e6
    manifest = (demo_onnx_dir / "MANIFEST.sha256").read_text()
    assert "  onnx/text.onnx\n" in manifest and "  onnx/export.json\n" in manifest
    assert check_manifest(demo_onnx_dir) is None
    assert not list(demo_onnx_dir.glob(".onnx*")), "temporary export folders must be removed"


def test_graphs_have_dynamic_batch_and_sequence_axes(tiny_onnx_dir: Path):
    import onnx

    text = onnx.load(str(tiny_onnx_dir / "onnx" / "text.onnx"), load_external_data=False)
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in text.graph.input]
    assert all(isinstance(d[0], str) and isinstance(d[1], str) for d in dims), dims
    image = onnx.load(str(tiny_onnx_dir / "onnx" / "image.onnx"), load_external_data=False)
    pixel_dims = [d.dim_param or d.dim_value for d in image.graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(pixel_dims[0], str) and pixel_dims[1:] == [3, 64, 64]
    assert [o.name for o in image.graph.output] == ["image_embedding", "feature_map"]


def test_auto_picks_onnx_and_matches_torch_on_demo(demo_onnx_dir: Path):
    from cxrclip.engine import Engine

    onnx_engine = Engine.load(demo_onnx_dir, device="cpu")
    torch_engine = Engine.load(demo_onnx_dir, device="cpu", runtime="torch")
    assert (onnx_engine.runtime, torch_engine.runtime) == ("onnx", "torch")
    assert onnx_engine.model is None and onnx_engine.model_id == torch_engine.model_id
    assert onnx_engine.device == "cpu"
    _assert_engines_agree(onnx_engine, torch_engine)


def test_sessions_do_not_busy_wait_after_a_run(demo_onnx_dir: Path):
    """Spinning workers of one session took the cores from the other session and the UI
    thread (benchmarks/RESULTS.md); every session the engine builds has spinning off."""
    from cxrclip.engine import Engine

    towers = Engine.load(demo_onnx_dir, device="cpu", runtime="onnx", num_threads=2).towers
    for session in (towers.image_session, towers.text_session):
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
        assert options.intra_op_num_threads == 2


def test_onnx_matches_torch_on_tiny_random_model(tiny_onnx_dir: Path):
    from cxrclip.engine import Engine

    _assert_engines_agree(Engine.load(tiny_onnx_dir, device="cpu", runtime="onnx"),
                          Engine.load(tiny_onnx_dir, device="cpu", runtime="torch"))


def test_tokenizers_path_gives_the_same_ids(demo_onnx_dir: Path):
    from cxrclip.engine import Engine

    onnx_engine = Engine.load(demo_onnx_dir, device="cpu")
    torch_engine = Engine.load(demo_onnx_dir, device="cpu", runtime="torch")
    texts = ["Small LEFT pleural effusion.", "no pneumothorax", "ünïcödé – opacities; 3 cm nodule",
             " ".join(["the heart size is normal"] * 40)]
    for max_length in (64, 8):
        ids_o, mask_o = onnx_engine.towers.tokenize(texts, max_length)
        ids_t, mask_t = torch_engine.towers.tokenize(texts, max_length)
        assert ids_o.shape == ids_t.shape and ids_o.shape[1] == max_length  # the long text is truncated
        assert np.array_equal(ids_o, ids_t) and np.array_equal(mask_o, mask_t)
    assert ids_o[0, 0] == 101 and ids_o[0, -1] == 102  # [CLS] ... [SEP] after truncation to 8


def test_onnx_engine_process_imports_neither_torch_nor_transformers(demo_onnx_dir: Path):
    script = (
        "import sys, numpy as np\n"
        "from cxrclip.engine import Engine, StudyInput, ViewInput\n"
        "e = Engine.load(sys.argv[1], num_threads=1)\n"
        "v = [ViewInput('a', np.full((200, 180), 90, np.uint8)), ViewInput('b', np.eye(150, dtype=np.uint8) * 200)]\n"
        "s = StudyInput('s', v)\n"
        "p = e.score(s, ['pleural effusion']).prompts[0].probability\n"
        "z = e.zero_shot(s, max_prompts=2)\n"
        "m = e.similarity_map(v[0], 'effusion', kind='probability')\n"
        "print(e.runtime, 0 < p < 1, len(z), m.shape, 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(demo_onnx_dir)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["onnx", "True", "14", "(200,", "180)", "False", "False"]


def test_auto_falls_back_to_torch_and_onnx_runtime_names_the_fix(tiny_model_dir: Path):
    from cxrclip.engine import Engine
    from cxrclip.runtime_onnx import OnnxUnavailable

    engine = Engine.load(tiny_model_dir, device="cpu")
    assert engine.runtime == "torch" and "export-onnx" in engine.runtime_note
    with pytest.raises(OnnxUnavailable, match=r"onnx/image\.onnx is missing.*cxrclip export-onnx"):
        Engine.load(tiny_model_dir, device="cpu", runtime="onnx")
    with pytest.raises(ValueError, match="runtime must be one of"):
        Engine.load(tiny_model_dir, runtime="tensorrt")


def test_bfloat16_request_uses_torch(tiny_onnx_dir: Path):
    from cxrclip.engine import Engine
    from cxrclip.runtime_onnx import OnnxUnavailable

    engine = Engine.load(tiny_onnx_dir, device="cpu", dtype="bfloat16")
    assert engine.runtime == "torch" and "bfloat16" in engine.runtime_note
    with pytest.raises(OnnxUnavailable, match="float32"):
        Engine.load(tiny_onnx_dir, device="cpu", runtime="onnx", dtype="bfloat16")


def test_changed_onnx_file_is_refused_by_the_manifest(tiny_onnx_dir: Path, tmp_path: Path):
    from cxrclip.checkpoint import ModelFolderError
    from cxrclip.engine import Engine

    folder = shutil.copytree(tiny_onnx_dir, tmp_path / "m")
    with open(folder / "onnx" / "text.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelFolderError, match=r"onnx/text\.onnx does not match its SHA-256 sum"):
        Engine.load(folder, device="cpu")


def test_exports_of_another_model_are_not_used(tiny_onnx_dir: Path, tmp_path: Path):
    from cxrclip.engine import Engine
    from cxrclip.manifest import write_manifest

    folder = shutil.copytree(tiny_onnx_dir, tmp_path / "m")
    record = folder / "onnx" / "export.json"
    record.write_text(record.read_text().replace('"model_id": "', '"model_id": "other-'))
    write_manifest(folder)
    engine = Engine.load(folder, device="cpu")
    assert engine.runtime == "torch" and "exported from model 'other-" in engine.runtime_note


def test_cli_export_errors_are_one_line(tmp_path: Path, capsys):
    from cxrclip.cli import main

    assert main(["export-onnx", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    assert main(["export-onnx", str(tmp_path), "--opset", "7"]) == 1
    assert "--opset must be between 13 and 23, got 7" in capsys.readouterr().err


def test_fp16_shrink_round_trips_exactly(demo_onnx_dir: Path):
    import onnx
    from onnx import TensorProto, numpy_helper

    from cxrclip.onnx_export import expand_fp16, shrink_exact_fp16

    model = onnx.load(str(demo_onnx_dir / "onnx" / "image.onnx"))
    shrunk = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert expand_fp16(model) > 0
    assert all(i.data_type != TensorProto.FLOAT16 for i in model.graph.initializer)
    expanded = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for name, half in shrunk.items():
        if name.endswith("__fp16"):
            assert np.array_equal(expanded[name.removesuffix("__fp16")], half.astype(np.float32))
    assert shrink_exact_fp16(model) == sum(name.endswith("__fp16") for name in shrunk)


def test_swin_model_exports_and_matches_torch(tmp_path: Path, minilm_dir: Path):
    import torch
    from transformers import AutoConfig

    from cxrclip.checkpoint import save_model
    from cxrclip.config import ImageEncoderConfig, ModelConfig, PreprocessConfig, ProjectionConfig, TextEncoderConfig
    from cxrclip.engine import Engine
    from cxrclip.model import CXRClip
    from cxrclip.onnx_export import export_onnx
    from cxrclip.text_encoder import load_tokenizer

    torch.manual_seed(1)
    config = ModelConfig(
        image=ImageEncoderConfig(name="swin_tiny", image_size=64,
                                 options={"embed_dim": 8, "depths": [1, 1], "num_heads": [1, 2], "window_size": 4}),
        text=TextEncoderConfig(path=str(minilm_dir), pooling="eos", max_length=16),
        projection=ProjectionConfig(kind="mlp", dim=16), preprocess=PreprocessConfig.imagenet(64), name="swin-test")
    model = CXRClip(config, text_model_config=AutoConfig.from_pretrained(str(minilm_dir), num_hidden_layers=1))
    folder = tmp_path / "swin"
    save_model(model, load_tokenizer(minilm_dir), folder)
    info = export_onnx(folder)
    assert info["parity"]["probability_max_abs"] <= PROB_TOL
    _assert_engines_agree(Engine.load(folder, device="cpu"), Engine.load(folder, device="cpu", runtime="torch"))


def test_cli_info_names_the_runtime(tiny_onnx_dir: Path, tiny_model_dir: Path, capsys):
    from cxrclip.cli import main

    assert main(["info", str(tiny_onnx_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runtime"].startswith("ONNX Runtime (opset 18, exported ")
    assert main(["info", str(tiny_model_dir)]) == 0
    assert "runtime: torch runtime (" in capsys.readouterr().out
