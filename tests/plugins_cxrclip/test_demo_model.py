"""Ranking checks with the bundled demo model on the bundled sample studies (slow).

Skipped only where ``assets/models/cxrclip-demo`` is absent (a checkout without the
bundled weights); rebuild it with ``make demo-model``.
"""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "assets" / "models" / "cxrclip-demo"
SAMPLES = REPO / "assets" / "sample_studies"
WAIT = 180_000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.full_prompts,
    pytest.mark.skipif(not (DEMO / "config.json").is_file(),
                       reason="bundled demo model assets/models/cxrclip-demo is not present"),
]


def _sample(word: str) -> Path:
    return next(p for p in sorted(SAMPLES.iterdir()) if word in p.name)


def _open(qtbot, plugin, helpers, folder: Path):
    handle = helpers.study_handle(folder)
    plugin.study_opened(handle)
    qtbot.waitUntil(lambda: plugin.findings_panel.tree.topLevelItemCount() == 14
                    and plugin.controller.study.handle is handle, timeout=WAIT)
    return handle


# What each sample study shows (assets/sample_studies/README.md).
TRUE_FINDINGS = {"normal": {"No Finding"}, "cardiomegaly": {"Cardiomegaly", "Pleural Effusion"},
                 "pneumothorax": {"Pneumothorax"}}


def test_each_sample_study_ranks_one_of_its_findings_first(qtbot, demo_plugin, helpers):
    for word, truth in TRUE_FINDINGS.items():
        _open(qtbot, demo_plugin, helpers, _sample(word))
        assert demo_plugin.findings_panel.row_findings()[0] in truth, word


def test_cardiomegaly_far_more_likely_on_the_cardiomegaly_study(qtbot, demo_plugin, helpers):
    """Called positive (at or above its calibrated operating point) on the cardiomegaly study,
    negative on the normal one, and at least ten times as likely there."""
    scores = {}
    for word in ("cardiomegaly", "normal"):
        _open(qtbot, demo_plugin, helpers, _sample(word))
        scores[word] = next(f for f in demo_plugin.controller.findings if f.finding == "Cardiomegaly")
    assert scores["cardiomegaly"].calibrated and scores["cardiomegaly"].positive is True
    assert scores["normal"].positive is False
    assert scores["cardiomegaly"].probability > 10 * scores["normal"].probability


def test_pneumothorax_prompt_higher_on_pneumothorax_study(qtbot, demo_plugin, helpers):
    probabilities = {}
    for word in ("pneumothorax", "normal"):
        _open(qtbot, demo_plugin, helpers, _sample(word))
        demo_plugin.controller.prompt_scores.clear()
        demo_plugin.prompt_panel.set_prompt("large right pneumothorax")
        qtbot.waitUntil(lambda: "large right pneumothorax" in demo_plugin.controller.prompt_scores,
                        timeout=WAIT)
        probabilities[word] = demo_plugin.controller.prompt_scores["large right pneumothorax"].probability
    assert probabilities["pneumothorax"] > probabilities["normal"]


def test_pneumothorax_heatmap_points_at_the_right_lung_against_a_normal_chest(qtbot, demo_plugin, helpers):
    """Sample 03 has a right pneumothorax (image left on the PA view): its finding map peaks
    there, and the colour bar says the map is measured against a normal chest."""
    import numpy as np

    from plugins.cxrclip_findings.overlays import LAYER_NAME

    handle = _open(qtbot, demo_plugin, helpers, _sample("pneumothorax"))
    tree = demo_plugin.findings_panel.tree
    row = next(tree.topLevelItem(i) for i in range(tree.topLevelItemCount())
               if demo_plugin.findings_panel.row_findings()[i] == "Pneumothorax")
    demo_plugin.findings_panel._clicked(row, 0)
    frontal = handle.views[0].view_id
    qtbot.waitUntil(lambda: LAYER_NAME in demo_plugin.host.overlays.get(frontal, {}), timeout=WAIT)
    bar = demo_plugin.host.overlays[frontal][LAYER_NAME].colorbar
    assert bar.label.startswith("evidence for the score vs a normal chest: ")
    controller = demo_plugin.controller
    prepared = controller.study.ensure_prepared(controller.service)
    maps = controller.service.finding_heatmaps(prepared, "Pneumothorax")
    heat = maps[frontal]
    row_peak, col_peak = np.unravel_index(np.nanargmax(heat), heat.shape)
    assert col_peak < heat.shape[1] / 2, (row_peak, col_peak, heat.shape)
