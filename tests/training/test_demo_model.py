"""The demo-model build script's pure parts: metric summary and checkpoint choice."""
import pytest

from training.demo_model import final_checkpoint, summarise_metrics


def test_summary_has_per_finding_auroc_and_macro_mean():
    results = {"binary": {"Cardiomegaly": {"auroc": 0.9, "f1": 0.5}, "Edema": {"auroc": 0.7},
                          "Fracture": {"auroc": None}},
               "retrieval": {"i2t": {"R@1": 0.25}}}
    summary = summarise_metrics(results)
    assert summary["zero_shot_auroc"] == {"Cardiomegaly": 0.9, "Edema": 0.7}
    assert summary["zero_shot_auroc_macro"] == pytest.approx(0.8)
    assert summary["retrieval"] == {"i2t": {"R@1": 0.25}}


def test_final_checkpoint_is_the_newest_step(tmp_path):
    for step in ("step_00000100", "step_00000020", "step_00000300"):
        (tmp_path / "checkpoints" / step).mkdir(parents=True)
    assert final_checkpoint(tmp_path).name == "step_00000300"
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        final_checkpoint(tmp_path / "empty")
