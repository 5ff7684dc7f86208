"""Sentence splitting, normalisation, de-duplication and report source readers."""
from __future__ import annotations

import pytest

from cxrclip.sentences import (
    ReportSourceError,
    collect_sentences,
    read_openi_xml,
    read_report_source,
    sentence_key,
    split_sentences,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FINDINGS: Heart is normal. Lungs are clear.", ["Heart is normal.", "Lungs are clear."]),
        (
            "IMPRESSION: 1. No acute process. 2. Stable 1.5 cm nodule.",
            ["No acute process.", "Stable 1.5 cm nodule."],
        ),
        ("1) Mild edema.\n2) Small left effusion.", ["Mild edema.", "Small left effusion."]),
        (
            "Opacity, e.g. atelectasis, approx. 2 cm in size. Nothing else.",
            ["Opacity, e.g. atelectasis, approx. 2 cm in size.", "Nothing else."],
        ),
        ("ETT tip 3.2 cm above the carina. No pneumothorax!", ["ETT tip 3.2 cm above the carina.", "No pneumothorax!"]),
        ("Tubes, lines etc. are unchanged. Heart normal.", ["Tubes, lines etc. are unchanged.", "Heart normal."]),
        ("  Lungs   are\n\tclear  ", ["Lungs are clear"]),
        ("No. ___. - Normal.", ["Normal."]),
        ("PA AND LATERAL VIEWS OF THE CHEST: heart size normal", ["heart size normal"]),
        # numbered impressions as MIMIC writes them (wrapped, collapsed, without periods)
        (
            "IMPRESSION:\n\n 1.  Endotracheal tube in standard position.\n 2.  Increased left basilar opacity,\n"
            " likely atelectasis.\n 3.  Small effusion.",
            ["Endotracheal tube in standard position.", "Increased left basilar opacity, likely atelectasis.",
             "Small effusion."],
        ),
        ("1. No acute process 2. Stable nodule", ["No acute process", "Stable nodule"]),
        ("1.No acute process. 2.Stable nodule.", ["No acute process.", "Stable nodule."]),
        ("Compared to prior, 1. Effusion 2. Edema", ["Compared to prior", "Effusion", "Edema"]),
        # numbers that are not a 1, 2, ... run stay in the text
        ("Effusion 10. Edema stable.", ["Effusion 10.", "Edema stable."]),
        ("Nodule in segment 2. Stable since 2019.", ["Nodule in segment 2.", "Stable since 2019."]),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_split_rejects_non_text() -> None:
    with pytest.raises(TypeError, match="must be str"):
        split_sentences(None)  # type: ignore[arg-type]


def test_sentence_key_is_case_and_period_insensitive() -> None:
    assert sentence_key("No  effusion.") == sentence_key("no effusion") == "no effusion"


def test_collect_counts_dedups_case_insensitively_and_sorts() -> None:
    reports = ["Lungs are clear. No effusion.", "no effusion. Heart normal.", "NO EFFUSION"]
    counted = collect_sentences(reports)
    assert [(c.text, c.count) for c in counted] == [
        ("No effusion.", 3),
        ("Lungs are clear.", 1),
        ("Heart normal.", 1),
    ]


def test_read_csv_picks_known_column_and_option(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_text('id,Findings,impression\n1,"Lungs clear. Heart ok.",Normal\n2,,Edema\n', encoding="utf-8")
    assert read_report_source(path) == ["Lungs clear. Heart ok."]
    assert read_report_source(path, column="impression") == ["Normal", "Edema"]
    with pytest.raises(ReportSourceError, match="--column"):
        read_report_source(path, column="report_text")


def test_read_txt_skips_blank_and_comment_lines(tmp_path) -> None:
    path = tmp_path / "r.txt"
    path.write_text("# header\nLungs clear.\n\nNo effusion.\n", encoding="utf-8")
    assert read_report_source(path) == ["Lungs clear.", "No effusion."]


def test_read_openi_xml_folder(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "1.xml").write_text(
        "<eCitation><MedlineCitation><Article><Abstract>"
        '<AbstractText Label="COMPARISON">None.</AbstractText>'
        '<AbstractText Label="INDICATION">Cough.</AbstractText>'
        '<AbstractText Label="FINDINGS">The lungs are clear.</AbstractText>'
        '<AbstractText Label="IMPRESSION">Normal chest.</AbstractText>'
        "</Abstract></Article></MedlineCitation></eCitation>",
        encoding="utf-8",
    )
    (tmp_path / "2.xml").write_text('<r><AbstractText Label="FINDINGS"/></r>', encoding="utf-8")
    assert read_report_source(tmp_path) == ["The lungs are clear.", "Normal chest."]


def test_bad_sources_name_the_problem(tmp_path) -> None:
    with pytest.raises(ReportSourceError, match="does not exist"):
        read_report_source(tmp_path / "missing.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ReportSourceError, match="unsupported"):
        read_report_source(tmp_path / "x.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReportSourceError, match="no .xml"):
        read_report_source(empty)
    (empty / "bad.xml").write_text("<a>")
    with pytest.raises(ReportSourceError, match="not valid XML"):
        read_report_source(empty)


def test_select_sections_keeps_findings_and_impression() -> None:
    from cxrclip.sentences import select_sections

    report = ("EXAMINATION: CHEST (PA AND LAT)\nINDICATION: ___F with cough\nCOMPARISON: None.\n"
              "FINDINGS:\nThe lungs are\nclear. No effusion.\n\nIMPRESSION:\nNo acute process.\n")
    kept = select_sections(report, ["findings", "IMPRESSION"])
    assert split_sentences(kept) == ["The lungs are clear.", "No effusion.", "No acute process."]
    assert select_sections("Lungs clear.", ["findings"]) == "Lungs clear."
    counted = collect_sentences([report, "FINDINGS: No effusion."], sections=["findings"])
    assert [(c.text, c.count) for c in counted] == [("No effusion.", 2), ("The lungs are clear.", 1)]


def test_select_sections_takes_combined_headers() -> None:
    from cxrclip.sentences import header_parts, select_sections

    assert header_parts("FINDINGS AND IMPRESSION:") == {"FINDINGS AND IMPRESSION", "FINDINGS", "IMPRESSION"}
    assert header_parts("FINDINGS/IMPRESSION :") >= {"FINDINGS", "IMPRESSION"}
    report = "INDICATION: Cough.\nFINDINGS AND IMPRESSION:\n1. Small effusion.\n2. No pneumothorax.\n"
    assert split_sentences(select_sections(report, ["impression"])) == ["Small effusion.", "No pneumothorax."]


def test_openi_report_one_reader_for_bank_and_adapter(tmp_path) -> None:
    from cxrclip.openi import read_openi_report
    from training.data.adapters.openi import parse_report

    xml = tmp_path / "1.xml"
    xml.write_text('<eCitation><uId id="CXR1"/><Abstract>'
                   '<AbstractText Label="FINDINGS">The heart is\n   normal.</AbstractText>'
                   '<AbstractText Label="IMPRESSION">No acute disease.</AbstractText>'
                   '<AbstractText Label="COMPARISON"></AbstractText></Abstract>'
                   '<parentImage id="CXR1_1_IM-0001-3001"/><parentImage id="CXR1_1_IM-0001-4001"/>'
                   '</eCitation>')
    report = read_openi_report(xml)
    assert report.study_id == "CXR1"
    assert report.sections == {"FINDINGS": "The heart is normal.", "IMPRESSION": "No acute disease."}
    assert report.image_ids == ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"]
    assert parse_report(xml) == ("CXR1", "The heart is normal.", "No acute disease.", report.image_ids)
    assert read_openi_xml(xml) == ["The heart is normal.", "No acute disease."]
