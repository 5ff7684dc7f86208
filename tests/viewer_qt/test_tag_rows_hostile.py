"""Tag rows of a file whose element has a VR pydicom does not know (a byte flip in an
explicit-VR header): the row says unreadable, every other row is listed."""
from __future__ import annotations

from pathlib import Path

import pydicom

from viewer.qt.tag_rows import dataset_rows

SOURCE = "MR2_UNCR.dcm"  # pydicom-data, explicit VR little endian


def _flip_vr(source: Path, target: Path, keyword: str, new_vr: bytes) -> None:
    ds = pydicom.dcmread(source)
    tag = pydicom.tag.Tag(keyword)
    header = tag.group.to_bytes(2, "little") + tag.element.to_bytes(2, "little")
    old_vr = ds[tag].VR.encode()
    data = source.read_bytes()
    assert data.count(header + old_vr) == 1
    target.write_bytes(data.replace(header + old_vr, header + new_vr))


def test_unknown_vr_is_one_unreadable_row(pydicom_data_dir: Path, tmp_path: Path) -> None:
    src = pydicom_data_dir / SOURCE
    bad = tmp_path / "bad.dcm"
    _flip_vr(src, bad, "StudyDate", b"Sj")
    ds = pydicom.dcmread(bad, stop_before_pixels=True, force=True)
    rows = {row.tag: row for row in dataset_rows(ds)}
    study_date = rows["(0008,0020)"]
    assert study_date.value.startswith("<unreadable: NotImplementedError")
    assert study_date.vr == "Sj" and study_date.identifying
    good = dataset_rows(pydicom.dcmread(src, stop_before_pixels=True))
    assert len(rows) == len(good) > 50
    assert [r.value for r in good if r.tag != "(0008,0020)"] == \
        [r.value for r in rows.values() if r.tag != "(0008,0020)"]
