"""Tag browser on corrupt files (derived at test time from pydicom-data), large trees, Hide-PHI."""
from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from viewer.qt.tag_browser import CHUNK_ROWS, TagBrowser
from viewer.qt.tag_rows import dataset_rows

ROWS_US = b"\x28\x00\x10\x00US\x02\x00"  # (0028,0010) Rows, explicit VR little endian
COLUMNS_US = b"\x28\x00\x11\x00US\x02\x00"


@pytest.fixture
def corrupt_file(pydicom_data_dir: Path, tmp_path: Path) -> Path:
    """MR2_UNCI.dcm with Rows' VR made unknown ('XX') and Columns' VR made UL (2 bytes
    cannot be a 4-byte UL): pydicom raises NotImplementedError / BytesLengthException
    when it converts those two elements; every other element stays readable."""
    data = (pydicom_data_dir / "MR2_UNCI.dcm").read_bytes()
    assert data.count(ROWS_US) == 1 and data.count(COLUMNS_US) == 1
    data = data.replace(ROWS_US, ROWS_US.replace(b"US", b"XX"))
    data = data.replace(COLUMNS_US, COLUMNS_US.replace(b"US", b"UL"))
    path = tmp_path / "CompressedSamples_MR2_5MR2.dcm"
    path.write_bytes(data)
    return path


def _by_tag(rows) -> dict[str, tuple[str, ...]]:
    return {row[0]: row for row in rows if row[0]}


def test_corrupt_elements_show_unreadable_and_the_tree_is_complete(qtbot, corrupt_file):
    with pytest.raises((NotImplementedError, pydicom.errors.BytesLengthException)):
        ds = pydicom.dcmread(corrupt_file, stop_before_pixels=True, force=True)
        [str(ds[tag].value) for tag in ds.keys()]  # what used to stop the tree half-way
    browser = TagBrowser()
    qtbot.addWidget(browser)
    with qtbot.waitSignal(browser.filled, timeout=10000):
        browser.load_file(corrupt_file, "MR")
    rows = _by_tag(browser.visible_rows())
    assert rows["(0028,0010)"][3].startswith("<unreadable: NotImplementedError")
    assert rows["(0028,0011)"][3].startswith("<unreadable: BytesLengthException")
    assert all(len(r[3]) <= 100 for r in rows.values() if r[3].startswith("<unreadable"))
    ds = pydicom.dcmread(corrupt_file, stop_before_pixels=True, force=True)
    assert browser.model.rowCount() == len(ds.file_meta.keys()) + len(ds.keys())  # none lost
    last = max(ds.keys())
    assert f"({last.group:04X},{last.element:04X})" in rows
    assert rows["(0010,0010)"][3] == "CompressedSamples^MR2"


def test_hide_phi_masks_identifiers_and_never_shows_the_file_name(qtbot, corrupt_file):
    browser = TagBrowser()
    qtbot.addWidget(browser)
    browser.set_hide_phi(True)
    with qtbot.waitSignal(browser.filled, timeout=10000):
        browser.load_file(corrupt_file, "Image 1")
    rows = _by_tag(browser.visible_rows())
    for tag in ("(0010,0010)", "(0010,0020)", "(0010,0030)", "(0008,0080)", "(0020,000D)",
                "(0008,0020)"):
        assert rows[tag][3] == "***", tag
    assert rows["(0008,0016)"][3] == "1.2.840.10008.5.1.4.1.1.4 (MR Image Storage)"  # standard
    assert rows["(0008,0060)"][3] == "MR"
    texts = "\n".join("\t".join(r) for r in rows.values()) + browser.title.text()
    for secret in ("CompressedSamples", "5MR2", "19500112", corrupt_file.name, corrupt_file.stem):
        assert secret not in texts
    browser.set_hide_phi(False)
    assert _by_tag(browser.visible_rows())["(0010,0020)"][3] == "5MR2"


def test_unreadable_file_gives_a_short_message_without_its_name(qtbot, tmp_path):
    path = tmp_path / "Doe_Jane_secret.dcm"
    path.write_bytes(b"\x00" * 10)
    browser = TagBrowser()
    qtbot.addWidget(browser)
    browser.set_hide_phi(True)
    browser.load_file(path, "Image 3")
    qtbot.waitUntil(lambda: "cannot read tags" in browser.title.text() or
                    browser.model.rowCount() > 0, timeout=10000)
    assert "Doe_Jane" not in browser.title.text()


def _big_dataset(items: int) -> Dataset:
    ds = Dataset()
    ds.PatientName = "Big^Tree"
    seq = []
    for i in range(items):
        item = Dataset()
        item.ReferencedSOPInstanceUID = f"1.2.3.{i}"
        item.ReferencedFrameNumber = i
        seq.append(item)
    ds.ReferencedImageSequence = Sequence(seq)
    return ds


def test_large_tree_is_filled_in_chunks_without_losing_rows(qtbot):
    items = 2000
    rows = dataset_rows(_big_dataset(items))
    total = sum(row.count() for row in rows)
    assert total == 2 + items * 3 > CHUNK_ROWS * 2
    browser = TagBrowser()
    qtbot.addWidget(browser)
    with qtbot.waitSignal(browser.filled, timeout=30000):
        browser.show_rows(rows, "big")
        assert browser.is_filling()  # the first chunk is in, the rest follows from the event loop
        assert 0 < browser.model.rowCount() <= 2
    assert not browser.is_filling()
    assert len(browser.visible_rows()) == total
    browser.filter_edit.setText("1.2.3.1999")
    assert [r[3] for r in browser.visible_rows() if r[1] == "ReferencedSOPInstanceUID"] == ["1.2.3.1999"]
