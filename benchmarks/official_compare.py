"""Ours vs the official CXR-CLIP code (kakaobrain/cxr-clip), same weights and inputs, side by side.

Run (the official code checked out OUTSIDE this repository; it is imported from there, never copied):

    git clone https://github.com/kakaobrain/cxr-clip /tmp/official-cxr-clip
    .venv/bin/python benchmarks/official_compare.py --official /tmp/official-cxr-clip \
        [--threads 2] [--repeats 15] [--train-repeats 3] [--batch 8] [--json out.json]

What it does, in one process on the CPU:

1. Builds the official model with its own code (``cxrclip.model.build_model``) from the paper's
   R50 + BERT-base config (the checkout's ``configs/model/clip_resnet_clinical.yaml`` and friends),
   random-initialised from a seed. Nothing is downloaded: the text encoder is the official
   ``pretrained: false`` branch (``BertModel(AutoConfig.from_pretrained(dir))``) on a local
   directory holding a default-sized ``BertConfig()`` and a BERT WordPiece tokenizer.
2. Saves it the way the official trainer saves checkpoints (``torch.save`` of
   ``{model, optimizer, scheduler, config, epoch, train_loss}``), converts that file with
   ``cxrclip convert-official`` and exports ONNX with ``cxrclip export-onnx``.
3. Parity: official vs ours (torch and ONNX Runtime) image and text embeddings on the same inputs,
   token ids of both tokenizers, and the official loss vs ``cxrclip.losses.CXRClipLoss``.
4. Inference timings, interleaved: 1 prompt, 14 prompts, one image forward (224 px),
   prompt -> probability on a 2-view study with cached image embeddings.
5. One training step (forward + backward + AdamW step + LR scheduler step), interleaved: the
   official model with its loss and its padding (``padding="max_length"``, 256 tokens, as its
   ``ImageTextDataset`` does) vs ours with ``CXRClipLoss`` and our collate (padding to the
   longest text).

Import shims (harness only, nothing is installed): the official package imports modules that are
not installed here and that the forward/backward does not need (``albumentations``, ``nltk``,
``pandas``, ``torchvision.transforms`` in its data code, pulled in by its evaluator). They get
empty stand-in modules. ``torchvision`` itself must not be installed (its wheel pulls a CUDA torch),
so ``torchvision.models.resnet.resnet50`` is a stand-in that returns this project's
torchvision-layout ResNet-50 (same module names, the same convolutions) with torchvision's
``avgpool``/``fc`` added; the official ``ResNet50`` wrapper then deletes ``fc``, converts to
SyncBatchNorm and runs its own forward. The official package's ``__init__`` (which imports its
trainer and data pipeline) is not run; its ``model``, ``loss``, ``optimizer``, ``scheduler`` and
``evaluator`` modules are imported under their own ``cxrclip`` name while ours is set aside.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import platform
import random
import shutil
import statistics
import sys
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEMO_TOKENIZER = ROOT / "assets" / "models" / "cxrclip-demo" / "text_encoder"
OFFICIAL_MARKER = Path("cxrclip") / "model" / "clip.py"
# Modules the official data/evaluation code imports at module level; none is used by the
# model's forward/backward or by the evaluator's encode_image/encode_text.
SHIMMED = ("albumentations", "albumentations.pytorch", "albumentations.pytorch.transforms", "nltk",
           "nltk.tokenize", "pandas", "torchvision", "torchvision.transforms", "torchvision.models",
           "torchvision.models.resnet")
OFFICIAL_MODULES = ("cxrclip.model", "cxrclip.loss", "cxrclip.optimizer", "cxrclip.scheduler",
                    "cxrclip.evaluator", "cxrclip.util")
PROMPT = "small left pleural effusion"
REPORT_SENTENCES = (
    "The lungs are clear without focal consolidation.", "There is no pleural effusion or pneumothorax.",
    "The cardiomediastinal silhouette is within normal limits.", "Heart size is mildly enlarged.",
    "There is a small left pleural effusion with adjacent atelectasis.",
    "Mild pulmonary vascular congestion is noted.", "A right internal jugular catheter terminates in the SVC.",
    "Degenerative changes are seen in the thoracic spine.", "No acute osseous abnormality is identified.",
    "Patchy opacity in the right lower lobe may represent pneumonia in the appropriate clinical setting.",
    "Endotracheal tube terminates 4 cm above the carina.", "Interval improvement of bibasilar atelectasis.",
)
IMPRESSIONS = ("No acute cardiopulmonary process.", "Small left pleural effusion.",
               "Mild cardiomegaly without edema.", "Right lower lobe pneumonia.",
               "Support devices in standard position.")


# ----- the official checkout and its imports ---------------------------------------------------
class OfficialCheckoutError(RuntimeError):
    """The path given with --official is not a kakaobrain/cxr-clip checkout."""


def check_checkout(path: Path) -> Path:
    """``path`` resolved, or OfficialCheckoutError naming what is missing and how to get it."""
    path = Path(path).expanduser().resolve()
    if not (path / OFFICIAL_MARKER).is_file():
        raise OfficialCheckoutError(
            f"{path} is not a checkout of the official CXR-CLIP code ({OFFICIAL_MARKER} not found). "
            "Clone it outside this repository: git clone https://github.com/kakaobrain/cxr-clip "
            "/tmp/official-cxr-clip, then pass --official /tmp/official-cxr-clip")
    return path


def torchvision_layout_resnet50(pretrained: bool = False, **_: Any) -> Any:
    """Stand-in for ``torchvision.models.resnet.resnet50``: our torchvision-layout ResNet-50 trunk
    plus torchvision's ``avgpool`` and ``fc`` (the official wrapper deletes ``fc``).

    ``pretrained`` is ignored: ImageNet weights would be a download; the model is random-initialised.
    """
    from torch import nn

    from cxrclip.encoders.resnet import Bottleneck, ResNet

    net = ResNet(Bottleneck, [3, 4, 6, 3])
    net.avgpool = nn.AdaptiveAvgPool2d((1, 1))
    net.fc = nn.Linear(net.out_dim, 1000)
    return net


@contextlib.contextmanager
def import_shims() -> Iterator[list[str]]:
    """While active, empty stand-ins in sys.modules for the SHIMMED modules that are not installed
    (yields their names); removed on exit, so that later probes (transformers looks for
    torchvision) see the real environment. Only ``torchvision.models.resnet.resnet50`` has content.
    """
    shimmed = []
    for name in SHIMMED:
        if name in sys.modules or _installed(name):
            continue
        module = types.ModuleType(name)
        module.__path__ = []  # a package, so that its submodules can be shims too
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
        shimmed.append(name)
    if "torchvision.models.resnet" in shimmed:
        sys.modules["torchvision.models.resnet"].resnet50 = torchvision_layout_resnet50
    try:
        yield shimmed
    finally:
        for name in shimmed:
            sys.modules.pop(name, None)


def _installed(name: str) -> bool:
    """Whether ``name`` can be imported for real (a shimmed parent means no)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ModuleNotFoundError, ValueError):
        return False


@contextlib.contextmanager
def _official_package(checkout: Path) -> Iterator[None]:
    """While active, ``cxrclip`` is the official package (its ``__init__`` not run); ours after."""
    ours = {n: m for n, m in sys.modules.items() if n == "cxrclip" or n.startswith("cxrclip.")}
    for name in ours:
        del sys.modules[name]
    package = types.ModuleType("cxrclip")
    package.__path__ = [str(checkout / "cxrclip")]
    sys.modules["cxrclip"] = package
    try:
        yield
    finally:
        for name in [n for n in sys.modules if n == "cxrclip" or n.startswith("cxrclip.")]:
            del sys.modules[name]
        sys.modules.update(ours)


def import_official(checkout: Path) -> types.SimpleNamespace:
    """The official modules we call, imported from the checkout; ours are restored afterwards."""
    import cxrclip.encoders.resnet  # noqa: F401  (ours, needed later by the resnet50 stand-in)
    # Imported before the shims: transformers and torch._dynamo probe for torchvision and pandas.
    import transformers.tokenization_utils  # noqa: F401
    from transformers import AutoConfig, AutoModel, BertModel, SwinModel, ViTModel  # noqa: F401

    with import_shims(), _official_package(checkout):
        modules = {name.split(".")[1]: importlib.import_module(name) for name in OFFICIAL_MODULES}
    return types.SimpleNamespace(**modules)


def official_config(checkout: Path, text_dir: Path) -> dict[str, Any]:
    """The paper's R50 training config composed from the checkout's YAML files (as hydra would),
    with the text encoder and tokenizer pointed at ``text_dir`` and ``pretrained: false`` for BERT."""
    from omegaconf import OmegaConf

    configs = checkout / "configs"
    base = OmegaConf.load(configs / "train.yaml")["base"]
    base["output"] = {"checkpoint": "checkpoints/", "tensorboard": "tensorboard/"}  # was ${hydra:run.dir}
    groups = {"model": "model/clip_resnet_clinical", "loss": "loss/cxr_clip", "optimizer": "optimizer/adamw",
              "scheduler": "scheduler/cosine_epoch15_warmup1", "tokenizer": "tokenizer/clinical_bert",
              "transform": "transform/clahe"}
    cfg = OmegaConf.create({"base": base, **{k: OmegaConf.load(configs / f"{v}.yaml") for k, v in groups.items()}})
    cfg.model.text_encoder.name = cfg.tokenizer.pretrained_model_name_or_path = str(text_dir)
    cfg.model.text_encoder.pretrained = False
    config = OmegaConf.to_container(cfg, resolve=True)
    config["scheduler"]["config"].update(total_steps=15 * 1000, warmup_steps=1000)  # what its trainer adds
    return config


# ----- building the shared weights ---------------------------------------------------------------
def write_text_dir(out: Path, **bert_shape: int) -> Path:
    """A local BERT directory: ``BertConfig(**bert_shape)`` (default: BERT-base, vocab 30522) and
    the demo model's BERT WordPiece tokenizer (uncased, 30522 tokens)."""
    from transformers import BertConfig

    out.mkdir(parents=True, exist_ok=True)
    BertConfig(**bert_shape).save_pretrained(str(out))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy2(DEMO_TOKENIZER / name, out / name)
    return out


def build_official_model(official: types.SimpleNamespace, config: dict, tokenizer: Any, seed: int) -> Any:
    """The official CXRClip, random-initialised from ``seed`` by its own constructors."""
    import torch

    torch.manual_seed(seed)
    return official.model.build_model(config["model"], config["loss"], tokenizer).eval()


def save_like_official_trainer(official: types.SimpleNamespace, model: Any, config: dict, path: Path) -> Path:
    """``torch.save`` the dict the official trainer writes after an epoch (cxrclip/trainer.py)."""
    import torch

    optimizer = official.optimizer.build_optimizer(model, config["optimizer"])
    scheduler = official.scheduler.build_scheduler(optimizer, config["scheduler"])
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "config": config, "epoch": 1, "train_loss": 0.0}, path)
    return path


def convert_and_export(checkpoint: Path, text_dir: Path, out: Path, onnx: bool = True) -> Path:
    """``cxrclip convert-official`` then (with ``onnx``) ``cxrclip export-onnx``; each must exit 0."""
    from cxrclip.cli import main as cxrclip_main

    shutil.rmtree(out, ignore_errors=True)
    commands = [["convert-official", str(checkpoint), str(out), "--text-encoder", str(text_dir), "--no-onnx"]]
    for argv in commands + ([["export-onnx", str(out)]] if onnx else []):
        status = cxrclip_main(argv)
        if status != 0:
            raise RuntimeError(f"`cxrclip {' '.join(argv)}` exited with status {status}")
    return out


# ----- the two inference paths -------------------------------------------------------------------
def official_evaluator(official: types.SimpleNamespace, model: Any, tokenizer: Any, config: dict) -> Any:
    """An object carrying what the official ``Evaluator.encode_image``/``encode_text`` read, so
    those methods (its inference code) run unchanged without building its data pipeline."""
    import torch

    state = types.SimpleNamespace(model=model, device=torch.device("cpu"),
                                  datamodule=types.SimpleNamespace(tokenizer=tokenizer), ckpt_config=config)
    evaluator = official.evaluator.Evaluator
    return types.SimpleNamespace(encode_image=lambda x: evaluator.encode_image(state, x),
                                 encode_text=lambda t: evaluator.encode_text(state, t))


def official_probability(evaluator: Any, image_emb: np.ndarray, prompt: str, negative: str) -> float:
    """Prompt -> probability the official way (its ``zeroshot_binary``): cosine similarity of the
    cached view embeddings to [negative, prompt], softmax over the pair, mean over the views."""
    from scipy.special import softmax
    from sklearn import metrics

    text_emb = evaluator.encode_text([negative, prompt])
    return float(softmax(metrics.pairwise.cosine_similarity(image_emb, text_emb), axis=1)[:, 1].mean())


def study_views(n: int, seed: int = 1) -> list:
    from cxrclip.engine import ViewInput

    rng = np.random.default_rng(seed)
    return [ViewInput(f"view{i}", (rng.random((600, 500)) * 255).astype(np.uint8)) for i in range(n)]


def parity(evaluator: Any, engines: dict[str, Any], official_tokenizer: Any, pixels: np.ndarray,
           texts: list[str]) -> dict[str, float]:
    """Max |diff| of image/text embeddings (official vs each engine) and token-id agreement."""
    import torch

    ref_image = evaluator.encode_image(torch.from_numpy(pixels))
    ref_text = evaluator.encode_text(texts)
    out: dict[str, float] = {}
    for name, engine in engines.items():
        out[f"image max |diff| {name}"] = float(np.abs(engine.towers.encode_image(pixels) - ref_image).max())
        out[f"text max |diff| {name}"] = float(np.abs(engine.embed_texts(texts) - ref_text).max())
        ids, _mask = engine.towers.tokenize(texts, int(engine.config.text.max_length))
        theirs = official_tokenizer(texts, padding="longest", return_tensors="np")["input_ids"]
        out[f"token ids identical {name}"] = float(ids.shape == theirs.shape and bool((ids == theirs).all()))
    return out


# ----- timing --------------------------------------------------------------------------------------
def interleaved_ms(tasks: dict[str, Callable[[int], object]], repeats: int, warmup: int = 1,
                   pause_s: float = 0.05) -> dict[str, list[float]]:
    """Wall times (ms) of each task, run in turn (rotating order) ``repeats`` times after ``warmup``.

    ``fn(i)`` gets the repetition index so that each call can use new text (no cache hits).
    The pause lets the other runtime's worker threads go idle before the next timed call.
    """
    names = list(tasks)
    for i in range(warmup):
        for name in names:
            tasks[name](-1 - i)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        for name in names[i % len(names):] + names[:i % len(names)]:
            time.sleep(pause_s)
            start = time.perf_counter()
            tasks[name](i)
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def summarize(times: list[float]) -> dict[str, float]:
    """Median and 90th percentile (nearest rank) of a list of times."""
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, max(0, int(np.ceil(0.9 * len(ordered))) - 1))]
    return {"median": statistics.median(ordered), "p90": p90, "n": len(ordered)}


def inference_tasks(evaluator: Any, engines: dict[str, Any], pixels: np.ndarray) -> dict[str, dict[str, Callable]]:
    """Per measurement, one callable per contender (``official``, ``ours torch``, ``ours onnx``)."""
    import torch

    from cxrclip.engine import StudyInput
    from cxrclip.prompts import CHEXPERT_14, negative_prompt

    study = StudyInput("study", study_views(2))
    cached = {name: engine.encode_views(study.views) for name, engine in engines.items()}
    image_emb = next(iter(cached.values()))
    tensor = torch.from_numpy(pixels)

    def prompts_14(i: int) -> list[str]:
        return [f"{finding.lower()} {i}" for finding in CHEXPERT_14]

    def prompt(i: int) -> str:
        return f"{PROMPT} {i}"

    out = {"1 prompt": {"official": lambda i: evaluator.encode_text([prompt(i)])},
           "14 prompts": {"official": lambda i: evaluator.encode_text(prompts_14(i))},
           "image forward, 224 px": {"official": lambda i: evaluator.encode_image(tensor)},
           "prompt -> probability, 2 cached views": {
               "official": lambda i: official_probability(evaluator, image_emb, prompt(i),
                                                          negative_prompt(prompt(i)))}}
    for name, engine in engines.items():
        out["1 prompt"][f"ours {name}"] = lambda i, e=engine: e.embed_texts([prompt(i)])
        out["14 prompts"][f"ours {name}"] = lambda i, e=engine: e.embed_texts(prompts_14(i))
        out["image forward, 224 px"][f"ours {name}"] = lambda i, e=engine: e.towers.encode_image(pixels)
        out["prompt -> probability, 2 cached views"][f"ours {name}"] = \
            lambda i, e=engine: e.score(study, [prompt(i)])
    return out


# ----- one training step -----------------------------------------------------------------------------
def report_texts(batch: int, seed: int) -> tuple[list[str], list[str]]:
    """Report-like findings (4-7 sentences) and impressions (1-2 sentences), deterministic."""
    rng = random.Random(seed)
    findings = [" ".join(rng.sample(REPORT_SENTENCES, rng.randint(4, 7))) for _ in range(batch)]
    impressions = [" ".join(rng.sample(IMPRESSIONS, rng.randint(1, 2))) for _ in range(batch)]
    return findings, impressions


def train_inputs(batch: int, seed: int, size: int = 224) -> dict[str, Any]:
    """Two random views per study (``size`` px, already normalised) and two report sections."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    findings, impressions = report_texts(batch, seed)
    return {"images": torch.randn(batch, 3, size, size, generator=gen),
            "images2": torch.randn(batch, 3, size, size, generator=gen),
            "texts": findings, "texts2": impressions}


def official_batch(inputs: dict[str, Any], tokenizer: Any, max_length: int) -> dict[str, Any]:
    """The batch the official ImageTextDataset.collate_fn builds: text padded to ``max_length``."""
    def tokens(texts: list[str]) -> Any:
        return tokenizer(texts, padding="max_length", truncation=True, return_tensors="pt", max_length=max_length)

    return {"images": inputs["images"], "image_views": inputs["images2"],
            "text_tokens": tokens(inputs["texts"]), "text_tokens2": tokens(inputs["texts2"])}


def our_batch(inputs: dict[str, Any], tokenizer: Any, max_length: int) -> dict[str, Any]:
    """The batch our training collate builds (``TrainCollate``: text padded to the longest)."""
    from training.data.dataset import TrainCollate

    samples = [{"image": a, "image2": b, "text": t, "text2": t2, "skipped": False, "study_id": str(i)}
               for i, (a, b, t, t2) in enumerate(zip(inputs["images"], inputs["images2"], inputs["texts"],
                                                     inputs["texts2"], strict=True))]
    return TrainCollate(tokenizer, max_length)(samples)


class NoOpSummaryWriter:
    """Stands in for the official trainer's tensorboard writer, which its loss logs to."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        """Discard the value (the official trainer would write it to tensorboard)."""


def official_step_fn(official: types.SimpleNamespace, model: Any, config: dict, batch: dict) -> Callable:
    """One official training step (cxrclip/trainer.py ``train`` without AMP: it is CUDA-only)."""
    import torch

    official.util.GlobalEnv.get().summary_writer.train = NoOpSummaryWriter()
    loss_func = official.loss.build_loss(config["loss"])
    optimizer = official.optimizer.build_optimizer(model, config["optimizer"])
    scheduler = official.scheduler.build_scheduler(optimizer, config["scheduler"])
    device = torch.device("cpu")

    def step(_: int) -> float:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_func(**model(batch, device), is_train=True)["total"]
        loss.backward()
        optimizer.step()
        scheduler.step()
        return float(loss.detach())

    return step


def our_step_fn(model: Any, batch: dict) -> Callable:
    """One step of our recipe in float32: model forward, CXRClipLoss, backward, AdamW, LR schedule."""
    import torch

    from cxrclip.losses import CXRClipLoss
    from training.trainer.optim import param_groups

    loss_fn = CXRClipLoss(i2i_weight=1.0, t2t_weight=0.5)
    optimizer = torch.optim.AdamW(param_groups(model, 1e-4), lr=5e-5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 1000))

    def step(_: int) -> float:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        out = model(images=batch["image"], input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    images_view2=batch["image2"], input_ids_section2=batch["input_ids2"],
                    attention_mask_section2=batch["attention_mask2"])
        loss = loss_fn(out["image_emb"], out["image_emb_view2"], out["text_emb"], out["text_emb_section2"],
                       out["logit_scale"]).total
        loss.backward()
        optimizer.step()
        scheduler.step()
        return float(loss.detach())

    return step


def loss_parity(official: types.SimpleNamespace, official_model: Any, config: dict, obatch: dict,
                our_model: Any, ubatch: dict) -> float:
    """|official loss - ours| on the same weights and inputs in eval mode (no dropout, BN running stats)."""
    import torch

    from cxrclip.losses import CXRClipLoss

    official_model.eval()
    our_model.eval()
    with torch.no_grad():
        theirs = official.loss.build_loss(config["loss"])(**official_model(obatch, torch.device("cpu")),
                                                          is_train=False)["total"]
        out = our_model(images=ubatch["image"], input_ids=ubatch["input_ids"],
                        attention_mask=ubatch["attention_mask"], images_view2=ubatch["image2"],
                        input_ids_section2=ubatch["input_ids2"], attention_mask_section2=ubatch["attention_mask2"])
        ours = CXRClipLoss(1.0, 0.5)(out["image_emb"], out["image_emb_view2"], out["text_emb"],
                                     out["text_emb_section2"], out["logit_scale"]).total
    return abs(float(theirs) - float(ours))


# ----- the run ----------------------------------------------------------------------------------------
def prepare(args: argparse.Namespace, official: types.SimpleNamespace) -> dict[str, Any]:
    """Official model, its checkpoint, our converted folder (cached in --workdir), both tokenizers."""
    from transformers import AutoTokenizer

    text_dir = write_text_dir(args.workdir / "text_encoder")
    config = official_config(args.official, text_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(text_dir))  # as the official load_tokenizer does
    model = build_official_model(official, config, tokenizer, args.seed)
    checkpoint = args.workdir / "r50_random.tar"
    ours_dir = args.workdir / "converted"
    if args.rebuild or not (ours_dir / "onnx").is_dir():
        save_like_official_trainer(official, model, config, checkpoint)
        start = time.perf_counter()
        convert_and_export(checkpoint, text_dir, ours_dir)
        print(f"converted + exported in {time.perf_counter() - start:.0f} s", flush=True)
    return {"config": config, "tokenizer": tokenizer, "model": model, "ours_dir": ours_dir}


def run_inference(args: argparse.Namespace, official: types.SimpleNamespace, built: dict) -> dict:
    from cxrclip.engine import Engine
    from cxrclip.prompts import CHEXPERT_14

    engines = {rt: Engine.load(built["ours_dir"], runtime=rt, device="cpu", num_threads=args.threads)
               for rt in ("torch", "onnx")}
    evaluator = official_evaluator(official, built["model"], built["tokenizer"], built["config"])
    pixels = np.stack([engines["torch"]._preprocess(v.pixels) for v in study_views(2, seed=7)])
    texts = [PROMPT, "no pneumothorax", *(f.lower() for f in CHEXPERT_14)]
    result: dict[str, Any] = {"parity": parity(evaluator, engines, built["tokenizer"], pixels, texts)}
    print(json.dumps(result["parity"], indent=1), flush=True)
    for label, tasks in inference_tasks(evaluator, engines, pixels[:1]).items():
        times = interleaved_ms(tasks, args.repeats, warmup=2)
        result[label] = {name: summarize(t) for name, t in times.items()}
        print(label, {n: round(s["median"], 1) for n, s in result[label].items()}, flush=True)
    return result


def run_training(args: argparse.Namespace, official: types.SimpleNamespace, built: dict) -> dict:
    from cxrclip.checkpoint import load_model

    loaded = load_model(built["ours_dir"])
    max_length = int(built["config"]["base"]["text_max_length"])
    inputs = train_inputs(args.batch, args.seed)
    obatch = official_batch(inputs, built["tokenizer"], max_length)
    ubatch = our_batch(inputs, loaded.tokenizer, int(loaded.config.text.max_length))
    result: dict[str, Any] = {
        "loss |official - ours|, eval mode": loss_parity(official, built["model"], built["config"], obatch,
                                                         loaded.model, ubatch),
        "padded length official": int(obatch["text_tokens"]["input_ids"].shape[1]),
        "padded length ours (findings, impressions)": [int(ubatch["input_ids"].shape[1]),
                                                       int(ubatch["input_ids2"].shape[1])],
        "real token lengths (findings)": [int(n) for n in obatch["text_tokens"]["attention_mask"].sum(1)],
    }
    tasks = {"official": official_step_fn(official, built["model"], built["config"], obatch),
             "ours torch": our_step_fn(loaded.model, ubatch)}
    times = interleaved_ms(tasks, args.train_repeats, warmup=1, pause_s=0.5)
    result["training step"] = {name: summarize(t) for name, t in times.items()}
    print(json.dumps(result, indent=1), flush=True)
    return result


def print_tables(result: dict) -> None:
    """Markdown tables: medians and p90 per contender, ratios ours / official."""
    print("\n| median (p90), ms | official | ours torch | ours ONNX | torch / official | ONNX / official |")
    print("|---|---|---|---|---|---|")
    for label in ("1 prompt", "14 prompts", "image forward, 224 px", "prompt -> probability, 2 cached views",
                  "training step"):
        row = result.get(label)
        if row is None:
            continue
        cells = [f"{row[n]['median']:,.1f} ({row[n]['p90']:,.1f})" if n in row else "—"
                 for n in ("official", "ours torch", "ours onnx")]
        ratios = [f"{row[n]['median'] / row['official']['median']:.2f}" if n in row else "—"
                  for n in ("ours torch", "ours onnx")]
        print(f"| {label} | {' | '.join(cells)} | {' | '.join(ratios)} |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of kakaobrain/cxr-clip")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per inference measurement")
    parser.add_argument("--train-repeats", type=int, default=3, help="timed training steps per side")
    parser.add_argument("--batch", type=int, default=8, help="studies per training step (2 views, 2 texts each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cxrclip-official-compare"))
    parser.add_argument("--rebuild", action="store_true", help="rebuild the converted model even if cached")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        args.official = check_checkout(args.official)
    except OfficialCheckoutError as exc:
        print(f"official_compare: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    official = import_official(args.official)
    load_before = os.getloadavg()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads; "
          f"torch {torch.__version__}; load average {load_before[0]:.2f}", flush=True)
    built = prepare(args, official)
    result = {"machine": {"cpus": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
                          "load average before": load_before[0]}}
    result.update(run_inference(args, official, built))
    if not args.skip_training:
        result.update(run_training(args, official, built))
    result["machine"]["load average after"] = os.getloadavg()[0]
    print_tables(result)
    print(f"\nload average before {load_before[0]:.2f}, after {result['machine']['load average after']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
