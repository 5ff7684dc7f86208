"""Free-text prompts: the typing history and named prompt sets stored as JSON.

A prompt set file looks like::

    {"format": "cxrclip-prompt-set", "version": 1, "name": "Effusions",
     "prompts": [{"text": "small left pleural effusion", "negative": null}, ...]}

``negative`` is optional; null means the default "no X" negative of the engine.
Bundled sets live in ``plugins/cxrclip_findings/prompt_sets/``.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

FORMAT = "cxrclip-prompt-set"
VERSION = 1
BUNDLED_DIR = Path(__file__).resolve().parent / "prompt_sets"


class PromptSetError(ValueError):
    """A prompt set file that cannot be read; the message names the file and the problem."""


@dataclass(frozen=True)
class Prompt:
    """A prompt and its optional custom negative."""

    text: str
    negative: str | None = None

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("a prompt needs some text, got an empty string")


@dataclass(frozen=True)
class PromptSet:
    """A named list of prompts."""

    name: str
    prompts: tuple[Prompt, ...]

    def to_dict(self) -> dict:
        """The JSON form (see module docstring)."""
        return {"format": FORMAT, "version": VERSION, "name": self.name,
                "prompts": [{"text": p.text, "negative": p.negative} for p in self.prompts]}

    @classmethod
    def from_dict(cls, data: object, source: str = "<dict>") -> PromptSet:
        """Parse the JSON form; `PromptSetError` names ``source`` and what is wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise PromptSetError(f"{source}: not a prompt set (expected \"format\": \"{FORMAT}\")")
        if data.get("version") != VERSION:
            raise PromptSetError(f"{source}: unsupported prompt set version "
                                 f"{data.get('version')!r}; this viewer reads version {VERSION}")
        items = data.get("prompts")
        if not isinstance(items, list):
            raise PromptSetError(f"{source}: \"prompts\" must be a list")
        return cls(str(data.get("name") or Path(source).stem),
                   tuple(_parse_prompt(item, source, i) for i, item in enumerate(items)))


def _parse_prompt(item: object, source: str, index: int) -> Prompt:
    if isinstance(item, str):
        item = {"text": item}
    if not isinstance(item, dict) or not isinstance(item.get("text"), str) \
            or not item["text"].strip():
        raise PromptSetError(f"{source}: prompt #{index + 1} needs a non-empty \"text\", got {item!r}")
    negative = item.get("negative")
    if negative is not None and (not isinstance(negative, str) or not negative.strip()):
        raise PromptSetError(f"{source}: prompt #{index + 1} has an invalid \"negative\": "
                             f"{negative!r} (use a string or null)")
    return Prompt(item["text"].strip(), negative.strip() if negative else None)


def save_prompt_set(prompt_set: PromptSet, path: str | Path) -> Path:
    """Write the set as JSON atomically (temp file then rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".prompt-set-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(prompt_set.to_dict(), fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def load_prompt_set(path: str | Path) -> PromptSet:
    """Read a prompt set file; `PromptSetError` for unreadable or malformed files."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PromptSetError(f"{path}: no such prompt set file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PromptSetError(f"{path}: cannot read prompt set ({exc})") from exc
    return PromptSet.from_dict(data, str(path))


def bundled_prompt_sets() -> list[PromptSet]:
    """The prompt sets shipped with the plugin, sorted by name."""
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted((load_prompt_set(p) for p in BUNDLED_DIR.glob("*.json")), key=lambda s: s.name)


class PromptHistory:
    """Most-recent-first list of distinct prompts (case-insensitive), bounded."""

    def __init__(self, limit: int = 50, items: Iterable[str] = ()) -> None:
        if limit < 1:
            raise ValueError(f"history limit must be >= 1, got {limit}")
        self.limit = limit
        self._items: list[str] = []
        for text in reversed(list(items)):
            self.add(text)

    def add(self, text: str) -> None:
        """Put ``text`` first (moving an existing copy); blank text is ignored."""
        text = " ".join(text.split())
        if not text:
            return
        self._items = [t for t in self._items if t.lower() != text.lower()]
        self._items.insert(0, text)
        del self._items[self.limit:]

    def items(self) -> Sequence[str]:
        """The prompts, most recent first."""
        return tuple(self._items)
