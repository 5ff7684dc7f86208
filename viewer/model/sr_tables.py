"""highdicom's table of DICOM modules, read without freezing the UI.

highdicom checks the attributes of every SR it builds against a 22 MB JSON table of
the standard's modules (`highdicom._standard_utils.get_module_attribute_map`, cached
after its first call). Parsed by one `json.loads`, that table holds the interpreter lock
for 0.3-1 s, so the UI thread freezes during the first SR export even though the export
runs on a worker thread (measured: a 0.6-0.7 s gap of a 10 ms UI timer;
benchmarks/RESULTS.md). `preload_module_table` parses it one module at a time, letting
other threads run between modules, and leaves the result in highdicom's own cache.
Call it on the export thread before the first SR is built; later calls return at once.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

log = logging.getLogger(__name__)
_SPACE = re.compile(r"[ \t\n\r]*")
_LOCK = threading.Lock()


def _let_others_run() -> None:
    time.sleep(0)


def loads_in_steps(text: str, pause: Callable[[], None] = _let_others_run) -> Any:
    """`json.loads` of ``text``, a top-level object decoded one member at a time with
    ``pause()`` after each (other threads get the interpreter lock there). Anything
    else than an object is decoded in one go."""
    decoder = json.JSONDecoder()
    pos = _SPACE.match(text, 0).end()
    if not text.startswith("{", pos):
        return json.loads(text)
    out: dict[str, Any] = {}
    pos = _SPACE.match(text, pos + 1).end()
    if text.startswith("}", pos):
        return out
    while True:
        key, pos = decoder.raw_decode(text, pos)
        pos = _SPACE.match(text, pos).end()
        if not text.startswith(":", pos):
            raise json.JSONDecodeError("expected ':'", text, pos)
        value, pos = decoder.raw_decode(text, _SPACE.match(text, pos + 1).end())
        out[key] = value
        pause()
        pos = _SPACE.match(text, pos).end()
        if text.startswith("}", pos):
            return out
        if not text.startswith(",", pos):
            raise json.JSONDecodeError("expected ',' or '}'", text, pos)
        pos = _SPACE.match(text, pos + 1).end()


def preload_module_table() -> bool:
    """Fill highdicom's cached module table by `loads_in_steps`. True when the table is
    cached afterwards by this route; False when it already was, or when this highdicom
    does not read it the expected way (it then parses the table itself, as before)."""
    try:
        from highdicom import _standard_utils as standard
    except ImportError:
        return False
    table = getattr(standard, "get_module_attribute_map", None)
    if table is None or not hasattr(table, "cache_info") or getattr(standard, "json", None) is not json:
        log.debug("highdicom %s reads its module table another way; not preloaded", standard)
        return False
    with _LOCK:
        if table.cache_info().currsize:
            return False
        # The table's loader calls the module's `json.loads`: for this one call it is ours.
        standard.json = SimpleNamespace(loads=loads_in_steps)
        try:
            table()
        finally:
            standard.json = json
    return True
