"""Radiology reports (FINDINGS + IMPRESSION) and CheXpert-style labels from ground truth.

Sentences come from small template sets with synonyms, severity words, laterality
and location. Labels are derived from what the text says: 1 stated, -1 hedged
("possible", "cannot exclude"), 0 explicitly negated, and left out when unmentioned.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from training.phantoms.findings import Finding

SIZE_WORDS = {"mild": ("small", "small", "trace"), "moderate": ("moderate",),
              "severe": ("large", "large", "sizable")}
DEGREE_WORDS = {"mild": ("mild", "mild", "minimal"), "moderate": ("moderate",),
                "severe": ("severe", "marked", "extensive")}
ADVERB = {"mild": "mildly", "moderate": "moderately", "severe": "markedly"}
ZONE_PHRASES = {"upper": ("{s} upper lung zone", "{s} apex"),
                "mid": ("{s} mid lung zone", "{s} perihilar region"),
                "lower": ("{s} lung base", "{s} lower lung zone")}
NORMAL_IMPRESSIONS = ("No acute cardiopulmonary process.", "No acute cardiopulmonary abnormality.",
                      "Normal chest radiograph.", "No radiographic evidence of acute disease.")
# One finding's negation (generator 1.1), said when the finding is absent. Since generator 1.3
# each table also holds the finding's zero-shot negative anchor ("no <term>", the binary prompt
# of assets/prompts/class_prompts.json), so the model sees the negatives it is scored against.
SINGLE_NEGATIONS = {
    "Cardiomegaly": ("No cardiomegaly.", "The heart is not enlarged."),
    "Enlarged Cardiomediastinum": ("No enlarged cardiomediastinum.", "The mediastinum is not widened."),
    "Lung Lesion": ("No pulmonary nodule or mass is identified.", "No lung nodules or masses.",
                    "No lung lesion."),
    "Atelectasis": ("No atelectasis.", "No focal atelectasis at the lung bases."),
    "Pleural Other": ("No pleural thickening or calcification.", "No calcified pleural plaque.",
                      "No pleural abnormality."),
    "Support Devices": ("No support devices are present.", "No indwelling catheter or tube is seen.",
                        "No support devices."),
    "Fracture": ("No acute osseous abnormality.", "No displaced rib fracture.", "No fracture."),
}
LUNG_OPACITY_CHILDREN = ("Edema", "Consolidation", "Pneumonia", "Lung Lesion", "Atelectasis")


@dataclass
class Report:
    """Report text plus the labels its sentences imply."""

    findings: str
    impression: str
    labels: dict[str, int] = field(default_factory=dict)


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _where(rng: np.random.Generator, f: Finding) -> str:
    side = f.side or "right"
    if f.location and " lobe" in f.location or f.location == "lingula":
        if rng.random() < 0.7:
            return f"the {f.location}"
    return "the " + _pick(rng, ZONE_PHRASES[f.zone or "mid"]).format(s=side)


def _sides(f: Finding) -> str:
    return "bilateral" if f.side == "bilateral" else (f.side or "right")


class _Writer:
    """Accumulates sentences and labels for one study."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.findings: list[str] = []
        self.impression: list[str] = []
        self.labels: dict[str, int] = {}

    def label(self, name: str, value: int) -> None:
        """Record a label; a positive beats an uncertain beats a negative."""
        order = {1: 3, -1: 2, 0: 1}
        if name not in self.labels or order[value] > order[self.labels[name]]:
            self.labels[name] = value

    def say(self, sentence: str, impression: str | None, **labels: int) -> None:
        """Add a FINDINGS sentence, an optional IMPRESSION phrase and their labels."""
        self.findings.append(_cap(sentence))
        if impression:
            self.impression.append(_cap(impression))
        for k, val in labels.items():
            self.label(k.replace("_", " "), val)


def _airspace(w: _Writer, f: Finding) -> None:
    r = w.rng
    where = _where(r, f)
    deg = _pick(r, DEGREE_WORDS[f.severity])
    bron = " with air bronchograms" if f.params.get("bronchograms") else ""
    if f.name == "Lung Opacity":
        noun = _pick(r, ("hazy opacity", "ill-defined opacity", "airspace opacity"))
        if f.uncertain:
            w.say(f"Possible subtle {noun} in {where}.", f"Possible {noun} in {where}.",
                  Lung_Opacity=-1)
        else:
            w.say(f"There is {deg} {noun} in {where}.", f"{_cap(noun)} in {where}.",
                  Lung_Opacity=1)
    elif f.name == "Consolidation":
        if f.uncertain:
            w.say(f"Patchy opacity in {where}, possibly early consolidation.",
                  f"Opacity in {where}, cannot exclude consolidation.", Lung_Opacity=1,
                  Consolidation=-1)
        else:
            adj = _pick(r, ("focal", "patchy", "dense")) if f.level > 1 else deg
            w.say(f"There is {adj} consolidation in {where}{bron}.",
                  f"{_cap(where[4:])} consolidation.", Consolidation=1)
    else:  # Pneumonia
        if f.uncertain:
            w.say(f"Patchy opacity in {where}.",
                  f"Opacity in {where}, " + _pick(r, ("cannot exclude pneumonia.",
                                                       "possibly pneumonia."))[:-1] + ".",
                  Lung_Opacity=1, Pneumonia=-1)
        else:
            noun = _pick(r, ("airspace consolidation", "consolidation", "airspace opacity"))
            labels = {"Pneumonia": 1}
            if "consolidation" in noun:
                labels["Consolidation"] = 1
            w.say(f"{_cap(deg)} {noun} in {where}{bron}.",
                  f"{_cap(where[4:])} {noun}, " + _pick(r, ("consistent with pneumonia.",
                                                             "compatible with pneumonia.",
                                                             "concerning for pneumonia.")),
                  **{k.replace(" ", "_"): v for k, v in labels.items()})


def _pleura(w: _Writer, f: Finding) -> None:
    r = w.rng
    if f.name == "Pleural Effusion":
        size = _pick(r, SIZE_WORDS[f.severity])
        plural = "s" if f.side == "bilateral" else ""
        text = f"{size} {_sides(f)} pleural effusion{plural}"
        if f.uncertain:
            w.say(f"Blunting of the {_sides(f)} costophrenic angle{plural}, possibly a {size} effusion.",
                  f"Possible {text}.", Pleural_Effusion=-1)
        else:
            extra = _pick(r, ("", "", " layering dependently"))
            where = "both hemidiaphragms" if plural else f"the {f.side} hemidiaphragm"
            finding = _pick(r, (f"There {'are' if plural else 'is a'} {text}{extra}.",
                                f"{_cap(size)} {_sides(f)} pleural fluid obscuring {where}.",
                                f"Fluid in the {_sides(f)} pleural space{plural}, {'' if plural else 'a '}{size} effusion{plural}."))
            w.say(finding, _pick(r, (f"{_cap(text)}.", f"{_cap(size)} {_sides(f)} effusion{plural}.")),
                  Pleural_Effusion=1)
    elif f.name == "Pneumothorax":
        size = _pick(r, SIZE_WORDS[f.severity])
        if f.uncertain:
            w.say(f"Possible tiny {f.side} apical pneumothorax.",
                  f"Cannot exclude a small {f.side} apical pneumothorax.", Pneumothorax=-1)
        else:
            w.say(_pick(r, (f"There is a {size} {f.side} pneumothorax with a visible pleural line.",
                            f"{_cap(size)} {f.side} apical pneumothorax; the lung edge is seen below the apex.",
                            f"Pleural air at the {f.side} apex, a {size} pneumothorax.")),
                  f"{_cap(size)} {f.side} pneumothorax.", Pneumothorax=1)
    else:  # Pleural Other
        what = f.kind or "pleural thickening"
        side = "bilateral" if f.side == "bilateral" else f.side
        w.say(f"{_cap(side)} {what} along the lateral chest wall.",
              f"{_cap(side)} {what}." if r.random() < 0.7 else None, Pleural_Other=1)


def _cardiomegaly(w: _Writer, f: Finding) -> None:
    r = w.rng
    s = _pick(r, (f"The heart is {ADVERB[f.severity]} enlarged.",
                  f"{_cap(DEGREE_WORDS[f.severity][0])} cardiomegaly."))
    w.say(s, _pick(r, ("Cardiomegaly.", f"{_cap(DEGREE_WORDS[f.severity][0])} cardiomegaly.")),
          Cardiomegaly=1)


def _enlarged_cardiomediastinum(w: _Writer, f: Finding) -> None:
    r = w.rng
    w.say(_pick(r, ("The mediastinum is widened.", "Widened superior mediastinum.",
                    "The mediastinal contour is enlarged.")),
          "Widened mediastinum.", Enlarged_Cardiomediastinum=1)


def _edema(w: _Writer, f: Finding) -> None:
    r = w.rng
    deg = _pick(r, DEGREE_WORDS[f.severity])
    if f.uncertain:
        w.say("Mild vascular congestion, possibly early edema.",
              "Possible mild pulmonary edema.", Edema=-1)
    else:
        extra = " and Kerley B lines" if f.level > 1 else ""
        w.say(_pick(r, (f"There is {deg} pulmonary edema with perihilar haziness{extra}.",
                        f"{_cap(deg)} interstitial edema with redistribution of the pulmonary vessels{extra}.",
                        f"Bilateral perihilar airspace opacities in keeping with {deg} pulmonary edema.")),
              _pick(r, (f"{_cap(deg)} pulmonary edema.",
                        f"{_cap(deg)} pulmonary edema, in keeping with congestive heart failure.")), Edema=1)


def _atelectasis(w: _Writer, f: Finding) -> None:
    where = f"the {f.side} lung base"
    if f.kind == "lobar":
        lobe = f"{f.side} lower lobe"
        w.say(f"Dense opacity at {where} consistent with {lobe} collapse (atelectasis).",
              f"{_cap(lobe)} atelectasis.", Atelectasis=1)
    elif f.uncertain:
        w.say(f"Linear opacity at {where}, likely atelectasis.",
              f"Probable {f.kind} atelectasis at {where}.", Atelectasis=-1)
    else:
        w.say(f"{_cap(f.kind or 'plate-like')} atelectasis at {where}.",
              f"{_cap(f.side)} basilar atelectasis.", Atelectasis=1)


def _lung_lesion(w: _Writer, f: Finding) -> None:
    r = w.rng
    size = f.params.get("size_cm", 2.0)
    where = _where(r, f)
    noun = f.kind or "nodule"
    if f.uncertain:
        w.say(f"Possible {size} cm {noun} in {where}.",
              f"Possible {noun} in {where}; CT recommended.", Lung_Lesion=-1)
    else:
        w.say(f"There is a {size} cm {_pick(r, ('well-defined', 'rounded', 'lobulated'))} "
              f"{noun} in {where}.", f"{_cap(noun)} in {where}; recommend CT.",
              Lung_Lesion=1)


def _fracture(w: _Writer, f: Finding) -> None:
    r = w.rng
    rib = f.params.get("rib", 6)
    nth = {1: "st", 2: "nd", 3: "rd"}.get(rib, "th")
    if f.uncertain:
        w.say(f"Possible nondisplaced fracture of the {f.side} {rib}{nth} rib.",
              f"Possible {f.side} {rib}{nth} rib fracture.", Fracture=-1)
    else:
        w.say(f"{_pick(r, ('Acute', 'Mildly displaced'))} fracture of the {f.side} "
              f"{rib}{nth} rib laterally.", f"{_cap(f.side)} {rib}{nth} rib fracture.",
              Fracture=1)


def _support_devices(w: _Writer, f: Finding) -> None:
    phrases = {"endotracheal tube": "Endotracheal tube terminates approximately 5 cm above "
                                    "the carina.",
               "enteric tube": "Enteric tube courses below the diaphragm with its tip in "
                               "the stomach.",
               "central venous catheter": "Right internal jugular central venous catheter "
                                          "terminates in the lower SVC.",
               "pacemaker": "Left chest wall pacemaker with leads in the right atrium and "
                            "right ventricle."}
    for kind in (f.kind or "").split(","):
        w.say(phrases[kind.strip()], None, Support_Devices=1)
    w.impression.append(_pick(w.rng, ("Support devices as described.",
                                      "Lines and tubes in expected position.")))


WRITERS: dict[str, Callable[[_Writer, Finding], None]] = {
    "Consolidation": _airspace,
    "Pneumonia": _airspace,
    "Lung Opacity": _airspace,
    "Pleural Effusion": _pleura,
    "Pneumothorax": _pleura,
    "Pleural Other": _pleura,
    "Cardiomegaly": _cardiomegaly,
    "Enlarged Cardiomediastinum": _enlarged_cardiomediastinum,
    "Edema": _edema,
    "Atelectasis": _atelectasis,
    "Lung Lesion": _lung_lesion,
    "Fracture": _fracture,
    "Support Devices": _support_devices,
}


def _negatives(w: _Writer, names: set[str]) -> None:
    r = w.rng
    options: list[tuple[str, dict[str, int]]] = []
    if not names & {"Cardiomegaly", "Enlarged Cardiomediastinum"}:
        options.append((_pick(r, ("The cardiomediastinal silhouette is normal.",
                                  "Heart size and mediastinal contours are normal.")),
                        {"Cardiomegaly": 0, "Enlarged Cardiomediastinum": 0}))
    elif "Cardiomegaly" not in names:
        options.append(("Heart size is normal.", {"Cardiomegaly": 0}))
    elif "Enlarged Cardiomediastinum" not in names:
        options.append(("Mediastinal contours are normal.", {"Enlarged Cardiomediastinum": 0}))
    lung = {"Lung Opacity", "Consolidation", "Pneumonia", "Edema", "Lung Lesion", "Atelectasis"}
    if not names & lung:
        options.append((_pick(r, ("The lungs are clear.", "No focal consolidation.", "No consolidation.",
                                  "No focal airspace opacity to suggest pneumonia.")),
                        {"Consolidation": 0, "Pneumonia": 0}))
        options.append((_pick(r, ("No pneumonia.", "No evidence of pneumonia.")), {"Pneumonia": 0}))
        options.append((_pick(r, ("No focal lung opacity.", "No airspace or interstitial opacity.",
                                  "No lung opacity.")),
                        {"Lung Opacity": 0}))
    for name, sentences in SINGLE_NEGATIONS.items():
        if name not in names:
            options.append((_pick(r, sentences), {name: 0}))
    if "Edema" not in names:
        options.append(("No pulmonary edema.", {"Edema": 0}))
    pl = {"Pleural Effusion", "Pneumothorax"} - names
    if pl == {"Pleural Effusion", "Pneumothorax"}:
        options.append((_pick(r, ("No pleural effusion or pneumothorax.",
                                  "No pleural effusion. No pneumothorax.")),
                        {"Pleural Effusion": 0, "Pneumothorax": 0}))
        if r.random() < 0.5:
            options.append(("The costophrenic angles are sharp, with no effusion.", {"Pleural Effusion": 0}))
    else:
        for n in pl:
            options.append((f"No {n.lower()}.", {n: 0}))
    for sentence, labels in options:
        if r.random() < 0.55:
            w.findings.append(sentence)
            for k, v in labels.items():
                w.label(k, v)


def write_report(findings: list[Finding], rng: np.random.Generator) -> Report:
    """Compose FINDINGS and IMPRESSION for these ground-truth findings and derive labels."""
    w = _Writer(rng)
    order = ("Support Devices", "Cardiomegaly", "Enlarged Cardiomediastinum", "Edema",
             "Consolidation", "Pneumonia", "Lung Opacity", "Lung Lesion", "Atelectasis",
             "Pleural Effusion", "Pneumothorax", "Pleural Other", "Fracture")
    for name in order:
        for f in findings:
            if f.name != name:
                continue
            WRITERS[name](w, f)
    names = {f.name for f in findings}
    _negatives(w, names)
    _derive_labels(w.labels)
    pathology = [k for k, v in w.labels.items() if v in (1, -1) and k not in ("Support Devices", "No Finding")]
    if not pathology:
        w.impression = [i for i in w.impression if "device" in i.lower() or "tubes" in i.lower()]
        w.impression.append(_pick(rng, NORMAL_IMPRESSIONS))
    devices = [i for i in w.impression if "device" in i.lower() or "tubes" in i.lower()]
    impression = [i for i in w.impression if i not in devices]
    if not impression:   # only chronic or incidental findings stated above
        impression.append(_pick(rng, NORMAL_IMPRESSIONS[:2]))
    impression += devices
    if len(impression) > 2 and rng.random() < 0.4:
        text = " ".join(f"{i + 1}. {s}" for i, s in enumerate(impression))
    else:
        text = " ".join(impression)
    return Report(" ".join(w.findings), text, dict(sorted(w.labels.items())))


def _derive_labels(labels: dict[str, int]) -> None:
    """CheXpert-style dependencies: children imply Lung Opacity; No Finding if nothing else."""
    children = [labels.get(c) for c in LUNG_OPACITY_CHILDREN]
    if 1 in children:
        labels["Lung Opacity"] = 1
    elif -1 in children and labels.get("Lung Opacity") != 1:
        labels["Lung Opacity"] = -1
    others = [v for k, v in labels.items() if k not in ("Support Devices", "No Finding")]
    if not any(v in (1, -1) for v in others):
        labels["No Finding"] = 1
