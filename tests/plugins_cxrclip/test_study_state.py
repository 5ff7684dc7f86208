"""Pure parts: per-study results and draft files, private writes, the heatmap PNG, the filter
for sentences that need a prior study, the text encoder's name."""
from __future__ import annotations

import json
import stat
from pathlib import Path

import numpy as np
import pytest

from plugins.cxrclip_findings.colormap import get_colormap
from viewer.io.private_files import free_path, write_private
from plugins.cxrclip_findings.heatmap_png import blend, compose
from plugins.cxrclip_findings.sentence_filter import needs_prior
from plugins.cxrclip_findings.study_state import DraftStore, ResultsStore, study_key
from viewer.plugin_api import ColorBar, OverlayLayer

UID_A, UID_B = "1.2.826.0.1.3680043.10.7.1", "1.2.826.0.1.3680043.10.7.2"


def test_results_store_keeps_each_study_apart_and_saves_drafts(tmp_path):
    drafts = DraftStore(tmp_path / "drafts")
    store = ResultsStore(drafts)
    store.get(UID_A).findings.append("finding of A")
    store.set_draft(UID_A, "Right pleural effusion.")
    assert store.get(UID_B).findings == [] and store.get(UID_B).draft == ""
    assert store.flush() == 1 and store.flush() == 0  # only changed drafts are written
    path = drafts.path_for(UID_A)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and UID_A not in path.name
    assert ResultsStore(drafts).get(UID_A).draft == "Right pleural effusion."
    assert drafts.saved_studies() == [UID_A]
    store.set_draft(UID_A, "  ")
    store.flush()
    assert not path.exists()  # an emptied draft leaves no file
    with pytest.raises(ValueError, match="StudyInstanceUID"):
        store.get("")


def test_draft_file_of_another_study_is_ignored(tmp_path):
    drafts = DraftStore(tmp_path)
    drafts.save(UID_A, "Cardiomegaly.")
    drafts.path_for(UID_B).write_text(drafts.path_for(UID_A).read_text())  # copied by hand
    assert drafts.load(UID_B) == "" and drafts.load(UID_A) == "Cardiomegaly."
    drafts.path_for(UID_A).write_text("{not json")
    assert drafts.load(UID_A) == ""


def test_scores_reset_for_another_model_but_the_draft_stays():
    results = ResultsStore().get(UID_A)
    results.findings, results.draft = ["x"], "No pneumothorax."
    results.reset_scores("model-2")
    assert results.findings == [] and results.draft == "No pneumothorax."
    assert results.model_id == "model-2"


def test_private_write_and_free_names(tmp_path):
    path = write_private(tmp_path / "a.json", b"{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_bytes() == b"{}"
    assert free_path(tmp_path, "a", ".json").name == "a-2.json"
    assert free_path(tmp_path, "b", ".json").name == "b.json"
    assert len(study_key(UID_A)) == 10 and study_key(UID_A) != study_key(UID_B)


def _layer(rgba_value, opacity=0.5):
    cmap = get_colormap("ember")
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[...] = rgba_value
    bar = ColorBar(cmap.name, -0.1, 0.3, "cosine similarity: large effusion",
                   colors=cmap.rgba_table(64))
    return OverlayLayer("heat", rgba, opacity, True, bar), cmap


def test_heatmap_png_blends_and_draws_the_colour_bar():
    gray = np.full((120, 100), 100, np.uint8)
    layer, cmap = _layer((255, 0, 0, 255))
    assert tuple(blend(gray, layer)[10, 10]) == (178, 50, 50)  # 100*0.5 + 255*0.5, rounded
    transparent, _ = _layer((255, 0, 0, 0))
    assert tuple(blend(gray, transparent)[0, 0]) == (100, 100, 100)
    out = compose(gray, layer)
    assert out.shape[0] == 120 and out.shape[1] > 100
    strip = out[:, 100:].reshape(-1, 3)
    colours = {tuple(int(v) for v in c) for c in strip}
    top, bottom = tuple(int(v) for v in cmap.lut[255]), tuple(int(v) for v in cmap.lut[0])
    assert top in colours and bottom in colours  # both ends of the bar are drawn
    assert (strip.max(axis=1) > 200).sum() > 20  # label and numbers in light text


@pytest.mark.parametrize("sentence, prior", [
    ("Pulmonary edema has improved since the prior study.", True),
    ("Compared to the prior radiograph, there is no significant change.", True),
    ("Increased opacity in the right lower lobe compared to prior.", True),
    ("Cardiomegaly is unchanged from the prior exam.", True),
    ("Interval removal of the chest tube.", True),
    ("Stable mild cardiomegaly.", True),
    ("Calcified granulomas consistent with prior granulomatous infection.", False),
    ("Median sternotomy wires and mediastinal clips from prior CABG.", False),
    ("Right pleural effusion.", False),
    ("No pneumothorax.", False),
])
def test_sentences_that_need_a_prior_study(sentence, prior):
    assert needs_prior(sentence) is prior


def test_nearest_sentences_leave_out_comparisons_without_a_prior(tiny_model_dir, bank_dir,
                                                                 tmp_path, helpers):
    from plugins.cxrclip_findings.service import FindingsService

    service = FindingsService.load(tiny_model_dir, bank_dir=bank_dir)
    handle = helpers.study_handle(helpers.make_study(tmp_path / "s"))
    prepared = service.prepare(handle.study_uid, handle.views)
    comparison = "Right pleural effusion, unchanged since the prior study."
    without = [n.sentence for n in service.nearest_sentences(prepared, k=30)]
    with_prior = [n.sentence for n in service.nearest_sentences(prepared, k=30, has_prior=True)]
    assert comparison not in without and len(without) == 6
    assert comparison in with_prior and len(with_prior) == 7


def test_text_encoder_name_of_the_demo_model():
    from cxrclip.checkpoint import read_card
    from plugins.cxrclip_findings.service import text_encoder_name

    demo = Path(__file__).resolve().parents[2] / "assets" / "models" / "cxrclip-demo"
    if not (demo / "config.json").is_file():
        pytest.skip("bundled demo model not present")
    assert json.loads((demo / "config.json").read_text())["model"]["text"]["path"].endswith(
        "text_encoder")  # the saved name says nothing ...
    assert text_encoder_name(demo, read_card(demo)) == "all-MiniLM-L6-v2 (BertModel, 6 layers, 384-d)"
