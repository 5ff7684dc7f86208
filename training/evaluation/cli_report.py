"""The shared ending of the small evaluation commands: compute, print, optionally save JSON."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_and_report(compute: Callable[[], dict[str, Any]], out: str | None,
                   render: Callable[[dict[str, Any]], str] | None = None) -> int:
    """Run ``compute``; a missing file or bad value prints ``error: ...`` and returns 1.
    Prints ``render(result)`` (default: the JSON), writes the JSON to ``out`` when given."""
    try:
        result = compute()
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    print(render(result) if render else json.dumps(result, indent=2))
    if out:
        Path(out).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0
