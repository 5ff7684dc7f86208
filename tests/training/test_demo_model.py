"""The demo-model build script's pure parts: metric summary and checkpoint choice."""
import re
from pathlib import Path

import pytest

from training.demo_model import final_checkpoint, summarise_metrics


def test_summary_has_per_finding_auroc_and_macro_mean():
    results = {"binary": {"Cardiomegaly": {"auroc": 0.9, "f1": 0.5}, "Edema": {"auroc": 0.7},
                          "Fracture": {"auroc": None}, "No Finding": {"auroc": 0.95}},
               "retrieval": {"image_to_text": {"R@1": 0.25}, "n": 5},
               "zeroshot": {"accuracy": 0.5, "classes": ["A", "B"]}}
    summary = summarise_metrics(results)
    assert summary["zero-shot AUROC, Cardiomegaly"] == 0.9
    assert "zero-shot AUROC, Fracture" not in summary
    assert summary["zero-shot AUROC, macro over 2 findings"] == pytest.approx(0.8)  # No Finding apart
    assert summary["zero-shot AUROC, No Finding"] == 0.95
    assert summary["retrieval image→text R@1"] == 0.25
    assert summary["zero-shot 2-class accuracy (CheXpert5x200-style)"] == 0.5


def test_final_checkpoint_is_the_newest_step(tmp_path):
    for step in ("step_00000100", "step_00000020", "step_00000300"):
        (tmp_path / "checkpoints" / step).mkdir(parents=True)
    assert final_checkpoint(tmp_path).name == "step_00000300"
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        final_checkpoint(tmp_path / "empty")


def test_a_stopped_training_ends_the_build_with_75_and_adds_up_its_wall_time(tmp_path, monkeypatch):
    import subprocess

    from training import demo_model

    calls = []

    def stopped_train(*args):
        calls.append(args)
        if args[0] == "train":
            raise subprocess.CalledProcessError(75, ["cxrclip", *args])

    monkeypatch.setattr(demo_model, "_cxrclip", stopped_train)
    monkeypatch.setattr(demo_model, "generate_data", lambda build, **stages: None)
    (tmp_path / "train_seconds.txt").write_text("600.0\n")  # an earlier session trained 10 minutes
    argv = ["--work", str(tmp_path), "--out", str(tmp_path / "out"), "--bank-out", str(tmp_path / "bank")]
    assert demo_model.main(argv) == 75  # no evaluation or export of a half-trained model
    assert [c[0] for c in calls] == ["train"]
    assert float((tmp_path / "train_seconds.txt").read_text()) >= 600.0
    assert not (tmp_path / "out").exists()


def test_the_card_describes_the_run_from_the_config():
    from training.demo_model import run_summary

    run = run_summary()
    assert run["image"] == "resnet10_slim" and run["size"] >= 64 and run["epochs"] >= 1
    assert run["batch"] >= 1 and 0 < run["lr"] < 1


def test_another_config_is_trained_and_described(tmp_path, monkeypatch):
    from training import demo_model

    config = tmp_path / "frozen.yaml"
    text = re.sub(r"\n  freeze_text_layers: \d+", "", demo_model.CONFIG.read_text())
    config.write_text(text.replace("train:\n", "train:\n  freeze_text_layers: 2\n", 1))
    calls = []
    monkeypatch.setattr(demo_model, "_cxrclip", lambda *args: calls.append(args))
    build, _, _ = demo_model.parse_args(["--work", str(tmp_path), "--config", str(config)])
    demo_model.train(build)
    assert calls[0][:2] == ("train", str(config))
    run = demo_model.run_summary(build.config)
    assert run["freeze_text_layers"] == 2
    assert demo_model._text_training(4).startswith("embeddings and the first 4 layers frozen")
    assert demo_model._text_training(0) == "fine-tuned"


def test_stage_two_fine_tunes_the_fp16_stage_one_weights_with_the_label_term(tmp_path, monkeypatch,
                                                                             tiny_text_dir):
    """`--stage1-model`: its weights, rounded to fp16 like the bundled model, are kept in
    stage1/ and are where stage 2a starts; stage 2 starts from stage 2a's final checkpoint."""
    import subprocess

    import tiny_encoder
    import torch
    from safetensors.torch import load_file

    from training import demo_model

    given = tiny_encoder.save_tiny_model(tmp_path / "given", tiny_text_dir)
    work = tmp_path / "work"
    calls = []

    def stop_in_stage_two(*args):
        calls.append(args)
        if args[1] == "training/configs/demo_fracture.yaml":
            (work / "run-focus" / "checkpoints" / "step_00000600").mkdir(parents=True)
            return
        raise subprocess.CalledProcessError(75, ["cxrclip", *args])

    monkeypatch.setattr(demo_model, "_cxrclip", stop_in_stage_two)
    monkeypatch.setattr(demo_model, "generate_data", lambda build, **stages: None)
    argv = ["--work", str(work), "--out", str(tmp_path / "out"), "--stage1-model", str(given),
            "--focus-config", str(demo_model.FOCUS_CONFIG)]
    assert demo_model.main(argv) == 75
    assert [c[:2] for c in calls] == [("train", "training/configs/demo_fracture.yaml"),
                                      ("train", "training/configs/demo_finetune.yaml")]  # stage 1 was given
    assert f"train.init_from={work / 'stage1'}" in calls[0]
    assert f"train.init_from={work / 'run-focus' / 'checkpoints' / 'step_00000600'}" in calls[1]
    assert (work / "focus_seconds.txt").is_file() and (work / "finetune_seconds.txt").is_file()
    kept = load_file(str(work / "stage1" / "model.safetensors"))
    original = load_file(str(given / "model.safetensors"))
    assert kept.keys() == original.keys()
    name = next(k for k in kept if k.endswith("weight") and original[k].numel() > 16)
    assert kept[name].dtype == torch.float16
    assert torch.equal(kept[name], original[name].to(torch.float16))


def test_without_stage_2a_stage_two_starts_from_stage_one(tmp_path, monkeypatch):
    from training import demo_model

    calls = []
    monkeypatch.setattr(demo_model, "_cxrclip", lambda *args: calls.append(args))
    build, _, _ = demo_model.parse_args(["--work", str(tmp_path)])
    assert build.focus_config is None  # the default: the shipped model was built without stage 2a
    demo_model.finetune(build)
    assert f"train.init_from={tmp_path / 'stage1'}" in calls[0]


def test_stage_2a_puts_the_whole_loss_on_fracture():
    from training.demo_model import _focus_text, focus_summary

    focus = focus_summary()
    assert focus["findings"] == ["Fracture"] and focus["contrastive"] is False
    assert focus["head"] is True and focus["label_term"] is False
    assert focus["label_views"] == "frontal" and focus["oversample"] == {"Fracture": 5.0}
    assert _focus_text(focus, 1800.0) == (
        "Stage 2a: from the stage-1 weights, a linear label head on the image embeddings alone (image-text terms "
        "off) on Fracture only, "
        "studies with Fracture drawn 5 times as often, each study scored on its frontal view, at a constant "
        "learning rate; 600 steps at lr 0.0001, wall time 30.0 min. ")


def test_the_stage_two_config_trains_the_balanced_label_term():
    from training.demo_model import _stage_two_text, finetune_summary

    tune = finetune_summary()
    assert tune["label_weight"] > 0 and tune["label_balance"] is True and tune["unit_contrast"] is True
    assert tune["steps"] >= 1 and 0 < tune["lr"] < 1
    assert tune["oversample"] == {"Fracture": 4.0} and tune["augmented"] is False
    assert _stage_two_text(tune) == ("the label term (weight 1, balanced, along the unit contrast: each finding's "
                                     "zero-shot contrast trained on the report's labels), a linear label head on "
                                     "the image embeddings (weight 3) on Fracture, each study scored on its "
                                     "frontal view, studies with Fracture drawn 4 times as often, no augmentation")


def test_the_stage_two_card_names_a_label_head_when_the_config_has_one(tmp_path):
    from cxrclip.prompts import CHEXPERT_14
    from training.demo_model import FINETUNE_CONFIG, _stage_two_text, finetune_summary

    CHEXPERT_13 = [name for name in CHEXPERT_14 if name != "No Finding"]
    others = ["Cardiomegaly", "Edema", "Pneumothorax"]
    config = tmp_path / "head.yaml"
    weights = {name: 0.0 if name in others else 1.0 for name in CHEXPERT_13}
    config.write_text(f"base: {FINETUNE_CONFIG}\nloss:\n  head_label_weight: 3.0\n  head_views: frontal\n"
                      "  head_finding_weights: {" + ", ".join(f"{k}: {v}" for k, v in weights.items()) + "}\n")
    tune = finetune_summary(config)
    assert tune["head_weight"] == 3.0 and tune["head_views"] == "frontal"
    assert "Fracture" in tune["head_findings"] and not set(others) & set(tune["head_findings"])
    assert "a linear label head on the image embeddings (weight 3) on Enlarged Cardiomediastinum, " in \
        _stage_two_text(tune)
    assert _stage_two_text(tune).endswith("Fracture, Support Devices, each study scored on its frontal view, "
                                          "studies with Fracture drawn 4 times as often, no augmentation")


def test_the_shipped_stage_two_holds_the_head_on_fracture_for_2000_steps():
    from training.demo_model import _stage_two_text, finetune_summary

    tune = finetune_summary()
    assert tune["steps"] == 2000 and tune["head_weight"] == 3.0
    assert tune["head_findings"] == ["Fracture"] and tune["head_views"] == "frontal"
    assert "a linear label head on the image embeddings (weight 3) on Fracture, each study scored on its frontal " \
           "view, studies with Fracture drawn 4 times as often" in _stage_two_text(tune)


def test_the_ood_guard_sets_include_phantoms_drawn_at_1024_px(tmp_path, monkeypatch):
    """Phantom DICOMs and the sample studies are drawn at 1024 px: the guard's statistics and
    threshold views include such renders (seeds 6 and 7), the rest stays at the model's size."""
    from training import demo_model

    calls = []
    monkeypatch.setattr(demo_model, "_cxrclip", lambda *args: calls.append(args))
    build, _, _ = demo_model.parse_args(["--work", str(tmp_path), "--out", str(tmp_path / "out")])
    demo_model.generate_data(build, train_stage1=False, train_stage2=False)
    made = {Path(c[c.index("--out") + 1]).name: (c[c.index("--seed") + 1], c[c.index("--size") + 1])
            for c in calls}
    assert made == {"heldout": ("2", "224"), "val": ("3", "224"), "ood": ("4", "224"),
                    "ood-1024": ("6", "1024"), "val-1024": ("7", "1024")}
    calls.clear()
    demo_model.calibrate(build)
    (call,) = calls
    ood_data = [call[i + 1] for i, a in enumerate(call) if a == "--ood-data"]
    assert [Path(p).name for p in ood_data] == ["ood", "ood-1024"]
    assert Path(call[call.index("--ood-threshold-data") + 1]).name == "val-1024"


def test_the_stage_two_set_has_fracture_twins_when_its_config_draws_them(tmp_path, monkeypatch):
    import dataclasses

    from training import demo_model

    calls = []
    monkeypatch.setattr(demo_model, "_cxrclip", lambda *args: calls.append(args))
    build, _, _ = demo_model.parse_args(["--work", str(tmp_path), "--out", str(tmp_path / "out")])
    for suffix, folder in (("-intact", "finetune-twins"), ("", "finetune")):
        config = tmp_path / f"stage2{suffix}.yaml"
        config.write_text(f"base: {demo_model.FINETUNE_CONFIG}\ndata: {{twin_suffix: '{suffix}'}}\n")
        calls.clear()
        demo_model.generate_data(dataclasses.replace(build, finetune_config=config), train_stage1=False)
        (call,) = [c for c in calls if c[c.index("--seed") + 1] == str(build.finetune_seed)]
        assert Path(call[call.index("--out") + 1]).name == folder
        assert ("--fracture-twins" in call) == bool(suffix)
        text = demo_model._stage_two_text(demo_model.finetune_summary(config))
        assert ("intact twin" in text) == bool(suffix)
