"""One phantom study: anatomy + findings -> two rendered views + report + labels.

Every random choice comes from generators seeded by ``(seed, index, purpose)``,
so a study is reproducible on its own, independent of worker scheduling.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.phantoms.anatomy import Anatomy, adapt_anatomy, sample_anatomy
from training.phantoms.devices import draw_devices
from training.phantoms.findings import Finding, sample_findings
from training.phantoms.frontal import frontal_layers, unfractured_bone
from training.phantoms.lateral import lateral_layers
from training.phantoms.layers import Layers, compose
from training.phantoms.lesions import DRAWERS
from training.phantoms.regions import RegionRecorder, ViewRegions
from training.phantoms.render import to_display
from training.phantoms.report import Report, write_report

GENERATOR_VERSION = "1.3"
VIEWS = ("frontal", "lateral")
# Id suffix of a study's intact twin: the same study with its rib fracture left out (``intact_twin``).
TWIN_SUFFIX = "-intact"


@dataclass
class PhantomStudy:
    """A generated study before it is written to disk."""

    seed: int
    index: int
    anatomy: Anatomy
    findings: list[Finding]
    report: Report
    images: dict[str, np.ndarray] = field(default_factory=dict)   # view -> float [0, 1]
    visit: int = 0               # 0 = the study of (seed, index); k > 0 = its k-th prior
    base_anatomy: Anatomy | None = None   # the patient's anatomy before findings adapt it
    regions: ViewRegions = field(default_factory=dict)   # finding -> view -> normalised boxes
    twin_of: str | None = None   # the study this one is the fracture-free twin of (``intact_twin``)

    @property
    def study_id(self) -> str:
        """``phantom-<seed>-<index>``, unique per seed and index; a twin adds ``TWIN_SUFFIX``."""
        return f"phantom-{self.seed}-{self.index:06d}" + (TWIN_SUFFIX if self.twin_of else "")

    @property
    def frontal_position(self) -> str:
        """``PA`` or ``AP``."""
        return self.anatomy.projection


def _rng(seed: int, index: int, purpose: int, visit: int = 0) -> np.random.Generator:
    # visit 0 keeps the original seeding, so existing studies stay byte-identical
    return np.random.default_rng([seed, index, purpose] + ([visit] if visit else []))


def draw_findings(layers: Layers, anat: Anatomy, findings: list[Finding], view: str,
                  seed: int, index: int, visit: int = 0,
                  recorder: RegionRecorder | None = None) -> None:
    """Draw every finding into one view's layers (``recorder`` notes what each one changed)."""
    for k, f in enumerate(findings):
        rng = _rng(seed, index, 100 + k, visit)
        if recorder is not None:
            recorder.before(layers)
        if f.name == "Support Devices":
            draw_devices(layers, anat, f, view, rng)
        else:
            DRAWERS[f.name](layers, anat, f, view, rng)
        if recorder is not None:
            recorder.after(f.name, layers)


def _record_anatomy(recorder: RegionRecorder, layers: Layers, anat: Anatomy,
                    findings: list[Finding], view: str, size: int) -> None:
    """Regions of the findings drawn through the anatomy (the fracture only on the frontal)."""
    names = [f.name for f in findings]
    intact = unfractured_bone(anat, size) if view == "frontal" and "Fracture" in names else None
    recorder.anatomy(names, layers, intact)


def render_views(anat: Anatomy, findings: list[Finding], size: int, seed: int,
                 index: int, visit: int = 0,
                 recorder: RegionRecorder | None = None,
                 break_rib: bool = True) -> dict[str, np.ndarray]:
    """Render the frontal and lateral views (float32 in [0, 1], 1 = white); with a
    ``recorder``, also note each finding's region per view (the pixels are the same).
    ``break_rib=False`` draws a Fracture finding's rib whole (the intact twin)."""
    fracture = None
    for f in findings:
        if f.name == "Fracture" and break_rib:
            fracture = {"side": f.side, "rib": f.params.get("rib", 6), "at": 0.45,
                        "step": 0.012 + 0.006 * f.level, "angle": 5.0 + 3.0 * f.level}
    out = {}
    for view in VIEWS:
        layers = (frontal_layers(anat, size, fracture) if view == "frontal"
                  else lateral_layers(anat, size))
        draw_findings(layers, anat, findings, view, seed, index, visit, recorder)
        if recorder is not None:
            _record_anatomy(recorder, layers, anat, findings, view, size)
            recorder.finish_view(view, anat.rotation_deg * (0.5 if view == "lateral" else 1.0))
        out[view] = to_display(compose(layers), anat, _rng(seed, index, 3 + len(view), visit),
                               lateral=view == "lateral")
    return out


def base_anatomy(seed: int, index: int) -> Anatomy:
    """The patient's own anatomy for ``(seed, index)``, the same at every visit."""
    return sample_anatomy(_rng(seed, index, 1))


def generate_study(seed: int, index: int, size: int = 512,
                   findings: list[Finding] | None = None,
                   anatomy: Anatomy | None = None, visit: int = 0,
                   record_regions: bool = True) -> PhantomStudy:
    """Generate one study; ``findings``/``anatomy`` force the ground truth when given.

    ``visit`` > 0 renders an earlier study of the same patient (see
    ``training.phantoms.priors``): the same anatomy, its own noise, finding shapes and
    report wording; its findings must be given. ``record_regions`` notes each finding's
    box per view in ``regions`` (`training.phantoms.regions`; the pixels do not change).
    """
    if size < 64:
        raise ValueError(f"image size must be at least 64 pixels, got {size}")
    if visit < 0 or (visit and findings is None):
        raise ValueError(f"visit {visit}: a prior visit (> 0) needs its findings given; "
                         "use training.phantoms.priors.prior_of")
    base = anatomy or base_anatomy(seed, index)
    gt = sample_findings(_rng(seed, index, 2)) if findings is None else list(findings)
    anat = adapt_anatomy(base, gt)
    report = write_report(gt, _rng(seed, index, 9, visit))
    recorder = RegionRecorder() if record_regions else None
    images = render_views(anat, gt, size, seed, index, visit, recorder)
    return PhantomStudy(seed=seed, index=index, anatomy=anat, findings=gt, report=report,
                        images=images, visit=visit, base_anatomy=base,
                        regions=recorder.regions if recorder else {})


def intact_twin(study: PhantomStudy, size: int) -> PhantomStudy | None:
    """The study without its rib fracture, or None when it has none.

    Every other pixel source is kept (anatomy, the other findings' shapes, noise), so the two
    frontal views differ only at the broken rib; the report and labels are written for the
    findings without the fracture. Training draws a study and its twin into one batch
    (``data.twin_suffix``), so telling their reports apart needs the fracture.
    """
    if not any(f.name == "Fracture" for f in study.findings):
        return None
    if study.visit:
        raise ValueError("an intact twin is made from a current study (visit 0)")
    kept = [f for f in study.findings if f.name != "Fracture"]
    report = write_report(kept, _rng(study.seed, study.index, 9))
    recorder = RegionRecorder()
    images = render_views(study.anatomy, study.findings, size, study.seed, study.index,
                          recorder=recorder, break_rib=False)
    regions = {name: boxes for name, boxes in recorder.regions.items() if name != "Fracture"}
    return PhantomStudy(seed=study.seed, index=study.index, anatomy=study.anatomy, findings=kept,
                        report=report, images=images, base_anatomy=study.base_anatomy,
                        regions=regions, twin_of=study.study_id)
