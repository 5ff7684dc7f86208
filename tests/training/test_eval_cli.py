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


class _HashEmbedder:
    """Texts -> fixed unit vectors (one per distinct string), and a record of what was asked."""

    def __init__(self):
        self.vectors: dict[str, "torch.Tensor"] = {}

    def texts(self, texts):
        import torch

        for t in texts:
            if t not in self.vectors:
                g = torch.Generator().manual_seed(len(self.vectors))
                self.vectors[t] = torch.nn.functional.normalize(torch.randn(8, generator=g), dim=0)
        return torch.stack([self.vectors[t] for t in texts])


def test_binary_text_pair_and_ensemble():
    import torch

    from cxrclip.prompts import class_prompts
    from training.evaluation.runner import _binary_text

    emb = _HashEmbedder()
    neg, pos = _binary_text(emb, "Edema", "pair", rsna=False)
    assert torch.equal(neg, emb.vectors["no pulmonary edema"]) and torch.equal(pos, emb.vectors["pulmonary edema"])
    neg, pos = _binary_text(emb, "Edema", "ensemble", rsna=False)
    mean = torch.stack([emb.vectors[p] for p in class_prompts("Edema")]).mean(dim=0)
    assert torch.allclose(pos, mean / mean.norm())
    assert torch.equal(neg, emb.vectors["no pulmonary edema"])
    neg, pos = _binary_text(emb, "Pneumonia", "ensemble", rsna=True)  # RSNA keeps its pair
    assert torch.equal(pos, emb.vectors["Findings suggesting pneumonia"])
