"""`cxrclip eval` on a tiny trained model: all tasks run and write consistent JSON."""
from __future__ import annotations

import json

from training.cli import main
from training.config import load_config
from training.trainer.loop import Trainer


def test_train_then_eval(overrides_for, toy_manifest, tmp_path, capsys):
    out = tmp_path / "run"
    trainer = Trainer(load_config(None, overrides_for(toy_manifest, out, **{"train.epochs": 1})))
    trainer.fit()
    trainer.close()
    model_dir = out / "best"
    assert (model_dir / "config.json").is_file()
    result_file = tmp_path / "results.json"
    rc = main(["eval", str(model_dir), "--data", str(toy_manifest), "--split", "test",
               "--tasks", "zeroshot,binary,retrieval,linear_probe", "--batch-size", "4",
               "--device", "cpu", "--out", str(result_file)])
    assert rc == 0
    res = json.loads(result_file.read_text())
    assert res["n_studies"] == 8 and res["unreadable_images"] == 0
    assert res["zeroshot"]["classes"] == ["Edema", "Pleural Effusion"]
    assert 0.0 <= res["zeroshot"]["accuracy"] <= 1.0
    r = res["retrieval"]["image_to_text"]
    assert r["R@1"] <= r["R@5"] <= r["R@10"] == 1.0  # only 6 texts: R@10 must be 1
    assert set(res["binary"]) == {"Edema", "Pleural Effusion"}
    assert "retrieval.image_to_text.R@1" in capsys.readouterr().out
