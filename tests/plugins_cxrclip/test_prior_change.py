"""Per-finding change between the open study and its prior ("Compare with prior").

Pure rules on real `FindingScore`s; the plugin with the tiny model (prior scores kept in the
prior's own results, not recomputed when known); the demo model on the bundled current +
prior sample pair (effusion grew, pneumothorax resolved, the prompt's prior column).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from cxrclip.zero_shot import FindingScore, ViewScore
from plugins.cxrclip_findings.compare_panel import COLUMNS
from plugins.cxrclip_findings.prior_change import compare_findings, match_views
from plugins.cxrclip_findings.prompt_panel import PRIOR_COLUMN

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "assets" / "sample_studies"
CURRENT = SAMPLES / "02_cardiomegaly_bilateral_effusions"
PRIOR = SAMPLES / "04_prior_of_02_pneumothorax_effusion"  # the same patient, 97 days earlier
WAIT = 180_000


def _score(name: str, p: float, op: float | None = None) -> FindingScore:
    return FindingScore(name, 0.0, p, calibrated=op is not None, operating_point=op,
                        positive=None if op is None else p >= op)


def test_change_and_crossings_use_the_operating_point() -> None:
    now = [_score("Effusion", 0.90, 0.25), _score("PTX", 0.05, 0.10), _score("Heart", 0.60, 0.22),
           _score("Edema", 0.20, 0.15), _score("Only now", 0.5, 0.3)]
    then = [_score("Effusion", 0.20, 0.25), _score("PTX", 0.95, 0.10), _score("Heart", 0.55, 0.22),
            _score("Edema", 0.10, 0.15)]
    changes = {c.finding: c for c in compare_findings(now, then)}
    assert set(changes) == {"Effusion", "PTX", "Heart", "Edema"}
    assert changes["Effusion"].delta == pytest.approx(0.70) and changes["Effusion"].crossing == "new"
    assert changes["PTX"].delta == pytest.approx(-0.90) and changes["PTX"].crossing == "resolved"
    assert changes["Heart"].crossing == "still present"
    assert changes["Edema"].crossing == "new"  # 0.10 < op 0.15 <= 0.20
    assert changes["Effusion"].threshold_label == "op 0.25"
    assert [c.finding for c in compare_findings(now, then)][:2] == ["PTX", "Effusion"]  # |delta| order


def test_uncalibrated_scores_cross_at_half_labelled_uncalibrated() -> None:
    (change,) = compare_findings([_score("Effusion", 0.45)], [_score("Effusion", 0.55)])
    assert (change.threshold, change.calibrated, change.crossing) == (0.5, False, "resolved")
    assert change.threshold_label == "0.5 (uncalibrated)"
    with pytest.raises(ValueError, match="Effusion: the current score is calibrated"):
        compare_findings([_score("Effusion", 0.45, 0.3)], [_score("Effusion", 0.55)])


def test_views_are_matched_by_label() -> None:
    now = [ViewScore("a", "PA", 0, 0.9, 0), ViewScore("b", "LL", 0, 0.8, 0)]
    then = [ViewScore("c", "PA", 0, 0.3, 0)]
    matched = match_views(now, then)
    assert list(matched) == ["a"] and matched["a"].view_id == "c"


@pytest.fixture
def tiny_plugin(qtbot, fake_host, tiny_model_dir, bank_dir, tmp_path, monkeypatch, helpers):
    monkeypatch.setenv("CXRCLIP_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("CXRCLIP_SENTENCE_BANK", str(bank_dir))
    plugin = helpers.activate_plugin(qtbot, fake_host, tmp_path / "s.ini")
    qtbot.waitUntil(lambda: plugin.controller.service is not None, timeout=WAIT)
    yield plugin
    plugin.deactivate()


def _open(qtbot, plugin, handle) -> None:
    plugin.study_opened(handle)
    qtbot.waitUntil(lambda: plugin.controller.study.handle is handle and bool(plugin.controller.findings)
                    and plugin.findings_panel.tree.topLevelItemCount() > 0, timeout=WAIT)


def _compare(qtbot, plugin, host, prior) -> None:
    host.prior_study = prior
    plugin.prior_changed(prior)
    qtbot.waitUntil(lambda: len(plugin.change_panel.rows()) == len(plugin.controller.findings),
                    timeout=WAIT)


def test_prior_scores_stay_in_the_prior_results_and_are_reused(qtbot, tiny_plugin, fake_host,
                                                              helpers, two_studies):
    c = tiny_plugin.controller
    current, prior = (helpers.study_handle(f) for f in two_studies)
    _open(qtbot, tiny_plugin, prior)  # read once as the open study
    prior_findings = c.results.peek(prior.study_uid).findings
    _open(qtbot, tiny_plugin, current)
    current_findings = c.findings
    assert tiny_plugin.change_panel.tree.isHidden()
    _compare(qtbot, tiny_plugin, fake_host, prior)
    assert not tiny_plugin.change_panel.tree.isHidden()
    assert c.results.peek(prior.study_uid).findings is prior_findings  # known: not scored again
    assert c.findings is current_findings and c.current.study_uid == current.study_uid
    by_name = {f.finding: f.probability for f in prior_findings}
    for row in tiny_plugin.change_panel.rows():
        now = next(f.probability for f in current_findings if f.finding == row[0])
        assert row[1] == f"{by_name[row[0]]:.2f}" and row[2] == f"{now:.2f}"
        assert row[3] == f"{now - by_name[row[0]]:+.2f}"
        assert row[4] == "0.5 (uncalibrated)"  # the tiny model has no calibration
    assert "Uncalibrated model" in tiny_plugin.change_panel.note.text()
    tiny_plugin.prior_changed(None)
    assert tiny_plugin.change_panel.tree.isHidden() and tiny_plugin.change_panel.rows() == []


@pytest.mark.slow
def test_demo_model_on_the_sample_pair(qtbot, demo_plugin, fake_host, helpers):
    plugin, c = demo_plugin, demo_plugin.controller
    current, prior = helpers.study_handle(CURRENT), helpers.study_handle(PRIOR)
    assert current.study_uid != prior.study_uid
    _open(qtbot, plugin, current)
    _compare(qtbot, plugin, fake_host, prior)
    panel = plugin.change_panel
    assert not panel.tree.isHidden() and panel.tree.headerItem().text(3) == COLUMNS[3] == "\u0394"
    assert "of 2024-04-06" in panel.title.text()
    rows = {r[0]: r for r in panel.rows()}
    assert len(rows) == 14
    effusion, ptx = rows["Pleural Effusion"], rows["Pneumothorax"]
    assert float(effusion[3]) > 0 and effusion[5] == "still present"   # the effusion grew (mild -> moderate)
    assert float(ptx[3]) < -0.5 and ptx[5] == "resolved"   # the pneumothorax resolved
    assert ptx[4].startswith("op ")          # the demo model is calibrated
    assert "calibrated operating point" in panel.note.text()
    # the prior's scores live in the prior's results, the open study's in its own
    assert c.current.study_uid == current.study_uid
    prior_scores = {f.finding: f.probability for f in c.results.peek(prior.study_uid).findings}
    assert prior_scores["Pneumothorax"] > 0.5 > {f.finding: f.probability for f in c.findings}["Pneumothorax"]

    # the prompt is scored on both studies; the Prior column shows the prior's PA view
    plugin.prompt_panel.set_prompt("pleural effusion")
    views = plugin.prompt_panel.views
    qtbot.waitUntil(lambda: views.topLevelItemCount() == 2 and any(
        views.topLevelItem(i).text(PRIOR_COLUMN) for i in range(2)), timeout=WAIT)
    assert not views.isColumnHidden(PRIOR_COLUMN)
    texts = {views.topLevelItem(i).text(0): views.topLevelItem(i).text(PRIOR_COLUMN) for i in range(2)}
    then = c.prior.prompt_score("pleural effusion")
    assert texts["PA"] == f"{then.views[0].probability:.2f}" and texts["LL"] == ""
    assert "Prior:" in plugin.prompt_panel.prior_label.text()
    assert c.prompt_scores["pleural effusion"].probability > then.probability

    # a study without a prior: the comparison ends, the change column and Prior column go
    fake_host.prior_study = None
    plugin.prior_changed(None)
    _open(qtbot, plugin, helpers.study_handle(SAMPLES / "01_normal"))
    assert panel.tree.isHidden() and panel.rows() == [] and "No prior study" in panel.title.text()
    assert views.isColumnHidden(PRIOR_COLUMN) and plugin.prompt_panel.prior_label.isHidden()
