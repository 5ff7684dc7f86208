"""Datasets over study manifests: training pairs (two views x two texts) and evaluation items.

Randomness of a sample depends only on (seed, epoch, index), never on the worker
that loads it, so a resumed run sees exactly the same augmentations. The sampler
therefore hands ``(index, epoch)`` pairs to the dataset (``EpochTaggedSampler``).
A missing or unreadable image makes the dataset try another study (a fixed,
index-derived sequence), log a warning naming the file (once per file) and report
how many it skipped, so batches keep their size (needed by the DDP gather) and
training does not stop on a bad file. When ``max_tries`` studies in a row fail
(the cache is missing or the image root is wrong) it raises ``DataUnavailable``.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from cxrclip.config import PreprocessConfig
from training.data.augment import TrainAugment
from training.data.image_cache import read_gray_uint8
from training.data.manifest import Manifest, StudyRecord
from training.data.text import fit_sentences, label_vector, study_texts

log = logging.getLogger(__name__)
FRONTAL = ("PA", "AP", "FRONTAL", "AP AXIAL", "PA LLD")
LATERAL = ("LATERAL", "LAT", "LL", "RL", "LARGE LATERAL", "XTABLE LATERAL")
NOT_FRONTAL = LATERAL + ("LAO", "RAO", "LPO", "RPO", "OBLIQUE")


def view_kind(position: str | None) -> str | None:
    """"frontal", "lateral" or None (oblique, unknown) for a manifest view position."""
    value = (position or "").strip().upper()
    if value in FRONTAL:
        return "frontal"
    if value in LATERAL:
        return "lateral"
    return None
LOAD_ERRORS = (OSError, ValueError, cv2.error)


class DataUnavailable(RuntimeError):
    """The training images cannot be loaded (missing cache, wrong image root).

    The message names files that failed and how to fix it; the CLI prints it
    without a traceback and exits with status 2.
    """

    def summary(self) -> str:
        """The message without the worker traceback a DataLoader worker adds when re-raising."""
        text = str(self)
        if "Original Traceback" not in text:
            return text
        return text.rsplit(f"{type(self).__name__}: ", 1)[-1].strip()


class _WarnOnce:
    """Log one warning per unreadable file (per process), naming the file and the reason."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, path: str, exc: Exception, study_id: str) -> None:
        if path in self.seen:
            return
        self.seen.add(path)
        log.warning("unreadable image %s (study %s): %s; another study is used in its place",
                    path, study_id, exc)


class ImageLoadError(OSError):
    """One image could not be read; ``path`` names the file."""

    def __init__(self, path: str, cause: Exception) -> None:
        super().__init__(f"{path}: {type(cause).__name__}: {cause}")
        self.path = path
        self.cause = cause


def _preprocess(pixels: np.ndarray, config: PreprocessConfig) -> torch.Tensor:
    from cxrclip.preprocess import preprocess_image

    return preprocess_image(pixels, config)


class StudyPairDataset(Dataset):
    """Training samples from one or more manifests (one split); ``augment=None`` for validation."""

    def __init__(self, manifests: Sequence[Manifest], split: str, preprocess: PreprocessConfig,
                 augment: TrainAugment | None, seed: int = 0, shuffle_sentences: bool = True,
                 max_tries: int = 10) -> None:
        self.items: list[tuple[Manifest, StudyRecord]] = [
            (m, r) for m in manifests for r in m.split(split)]
        if not self.items:
            names = [str(m.root) for m in manifests]
            raise ValueError(f"no studies with split {split!r} in manifests {names}; "
                             "check data.train / data.train_split")
        self.preprocess = preprocess
        self.post = dataclasses.replace(preprocess, resize_shorter=preprocess.image_size)
        self.augment = augment
        self.seed = seed
        self.shuffle_sentences = shuffle_sentences
        self.max_tries = max_tries
        self._warn = _WarnOnce()

    def __len__(self) -> int:
        return len(self.items)

    def _rng(self, index: int, epoch: int, attempt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, index, attempt])

    def _view(self, manifest: Manifest, rel: str, rng: np.random.Generator) -> torch.Tensor:
        path = manifest.image_path(rel)
        try:
            pixels = read_gray_uint8(path)
        except LOAD_ERRORS as exc:
            raise ImageLoadError(str(path), exc) from exc
        if self.augment is None:  # validation: the evaluation preprocessing only
            return _preprocess(pixels, self.preprocess)
        return _preprocess(self.augment(pixels, rng), self.post)

    def load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        """One sample without the skip logic (raises on an unreadable image)."""
        manifest, record = self.items[index]
        if len(record.images) >= 2:
            first, second = (int(i) for i in rng.choice(len(record.images), size=2, replace=False))
        else:
            first = second = 0
        paths = [record.images[first], record.images[second]]
        positions = list(record.view_positions) + [None] * len(record.images)
        text1, text2 = study_texts(record, rng, self.shuffle_sentences)
        return {"image": self._view(manifest, paths[0], rng),
                "image2": self._view(manifest, paths[1], rng),
                "text": text1, "text2": text2, "study_id": record.study_id,
                "labels": label_vector(record.labels or {}),
                "frontal": [view_kind(positions[first]) == "frontal", view_kind(positions[second]) == "frontal"]}

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        failures: list[str] = []
        for attempt in range(self.max_tries):
            rng = self._rng(index, epoch, attempt)
            candidate = index if attempt == 0 else int(rng.integers(len(self.items)))
            study_id = self.items[candidate][1].study_id
            try:
                sample = self.load(candidate, rng)
            except ImageLoadError as exc:
                failures.append(exc.path)
                self._warn(exc.path, exc.cause, study_id)
                continue
            except LOAD_ERRORS as exc:  # not an image file: e.g. a broken text section
                failures.append(f"study {study_id}")
                self._warn(f"study {study_id}", exc, study_id)
                continue
            sample["skipped"] = len(failures)
            return sample
        raise DataUnavailable(self._unavailable_message(failures))

    def _unavailable_message(self, failures: list[str]) -> str:
        roots = sorted({str(m.image_root) for m, _ in self.items})
        distinct = list(dict.fromkeys(failures))
        shown = ", ".join(distinct[:3]) + (f" (+{len(distinct) - 3} more)" if len(distinct) > 3 else "")
        return (f"{len(failures)} studies in a row could not be loaded (data.max_replacement_tries="
                f"{self.max_tries}): {shown}. Are the images under {', '.join(roots)}? Run "
                "`cxrclip prepare` without --no-images (or again, to fill in missing files), "
                "or point data.train at the manifest folder that holds images/")


class EvalDataset(Dataset):
    """One preprocessed frontal image per study, with its retrieval text and labels."""

    def __init__(self, manifests: Sequence[Manifest], split: str,
                 preprocess: PreprocessConfig) -> None:
        self.items = [(m, r) for m in manifests for r in m.split(split)]
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.items)

    @staticmethod
    def pick_image(record: StudyRecord) -> str:
        """The first frontal image, else the first image not known to be lateral or oblique
        (a null view), else the first image."""
        views = [(view or "").upper() for view in record.view_positions]
        for rel, view in zip(record.images, views):
            if view in FRONTAL:
                return rel
        for rel, view in zip(record.images, views):
            if view not in NOT_FRONTAL:
                return rel
        return record.images[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        manifest, record = self.items[index]
        try:
            pixels = read_gray_uint8(manifest.image_path(self.pick_image(record)))
            image = _preprocess(pixels, self.preprocess)
            ok = True
        except LOAD_ERRORS as exc:
            log.warning("evaluation image of %s unreadable: %s", record.study_id, exc)
            image = torch.zeros(3, self.preprocess.image_size, self.preprocess.image_size)
            ok = False
        return {"image": image, "ok": ok, "index": index}


class EpochTaggedSampler(DistributedSampler):
    """DistributedSampler that yields ``(index, epoch)`` and can start mid-epoch.

    ``start`` skips that many of this rank's samples of the current epoch (resume).
    Works without a process group when ``num_replicas`` and ``rank`` are given.
    With ``weights`` (one per study, ``data.oversample``) each epoch draws its indices with
    replacement, with probability proportional to the weights, from a generator seeded by
    (seed, epoch): every rank draws the same list and takes its own stride of it, and an epoch
    keeps its length, so steps per epoch and resume are as without weights.
    With ``partners`` (one per study: the index of its twin, or -1; ``data.twin_suffix``) each
    drawn study with a twin is followed by that twin in the rank's list, which is then cut to
    its usual length.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int,
                 shuffle: bool = True, weights: np.ndarray | None = None,
                 partners: np.ndarray | None = None) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle,
                         seed=seed, drop_last=True)
        self.start = 0
        if weights is not None and (len(weights) != len(dataset) or not np.all(np.asarray(weights) > 0)):
            raise ValueError(f"sampling weights: need {len(dataset)} positive weights, got {len(weights)}")
        if partners is not None and len(partners) != len(dataset):
            raise ValueError(f"twin partners: need {len(dataset)} entries, got {len(partners)}")
        self.probabilities = None if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
        self.partners = partners

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` samples of the next iteration only."""
        self.start = int(start)

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        indices = list(super().__iter__()) if self.probabilities is None else self._weighted_draw()
        if self.partners is not None:
            indices = self._with_twins(indices)
        indices = indices[self.start:]
        self.start = 0
        return iter([(i, self.epoch) for i in indices])

    def _with_twins(self, indices: list[int]) -> list[int]:
        """Each index followed by its twin's, cut to the original length."""
        out: list[int] = []
        for i in indices:
            out.append(i)
            if self.partners[i] >= 0:
                out.append(int(self.partners[i]))
            if len(out) >= len(indices):
                break
        return out[:len(indices)]

    def _weighted_draw(self) -> list[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        drawn = rng.choice(len(self.probabilities), size=self.total_size, replace=True, p=self.probabilities)
        return [int(i) for i in drawn[self.rank:self.total_size:self.num_replicas]]


def twin_partners(study_ids: Sequence[str], suffix: str) -> np.ndarray:
    """For each study, the index of its twin (the study whose id is its id plus ``suffix``, or
    the one whose id it is minus ``suffix``), or -1 when it has none."""
    if not suffix:
        raise ValueError("twin suffix must not be empty")
    position = {sid: i for i, sid in enumerate(study_ids)}
    partners = np.full(len(study_ids), -1, dtype=np.int64)
    for i, sid in enumerate(study_ids):
        if sid.endswith(suffix) and sid[:-len(suffix)] in position:
            j = position[sid[:-len(suffix)]]
            partners[i], partners[j] = j, i
    return partners


class TrainCollate:
    """Stack images; tokenize both texts, each padded to the longest in the batch.

    A text longer than ``max_length`` tokens keeps its leading whole sentences
    (``training.data.text.fit_sentences``), so label texts lose negatives, not findings.
    """

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def _tokens(self, texts: list[str]) -> dict[str, torch.Tensor]:
        texts = fit_sentences(texts, self.tokenizer, self.max_length)
        enc = self.tokenizer(texts, padding="longest", truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        t1 = self._tokens([s["text"] for s in samples])
        t2 = self._tokens([s["text2"] for s in samples])
        labels = ({"labels": torch.from_numpy(np.stack([s["labels"] for s in samples]))}
                  if all("labels" in s for s in samples) else {})  # samples built elsewhere may have none
        frontal = ({"frontal": torch.tensor([s["frontal"] for s in samples], dtype=torch.bool)}
                   if all("frontal" in s for s in samples) else {})
        return {**labels, **frontal, "image": torch.stack([s["image"] for s in samples]),
                "image2": torch.stack([s["image2"] for s in samples]),
                "input_ids": t1["input_ids"], "attention_mask": t1["attention_mask"],
                "input_ids2": t2["input_ids"], "attention_mask2": t2["attention_mask"],
                "skipped": sum(int(s["skipped"]) for s in samples),
                "study_ids": [s["study_id"] for s in samples]}
