"""Hide-PHI for messages that quote folders and files no open study knows about."""
from __future__ import annotations

from viewer.model.phi import mask_paths


def test_mask_paths_keeps_the_words_and_hides_paths_and_file_names():
    text = mask_paths("/data/smith/idx does not exist; scan_0042.dcm: unreadable, 3 of 40 files. 'a b/c.png'")
    assert "smith" not in text and "scan_0042" not in text and "b/c" not in text
    assert text.startswith("path ") and "does not exist; path " in text and "3 of 40 files." in text
    assert mask_paths("C:\\Users\\jdoe\\idx: bad").endswith(": bad") and "jdoe" not in mask_paths("C:\\Users\\jdoe")
    assert mask_paths("/same/path") == mask_paths("/same/path")  # stable within a session
    assert mask_paths("No study matches \u201ceffusion\u201d with these filters.") == \
        "No study matches \u201ceffusion\u201d with these filters."
