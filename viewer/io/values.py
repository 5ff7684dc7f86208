"""Map stored pixel values to small table indices, so every per-pixel step is a lookup.

Rendering a 7.5 MP image must take milliseconds, so the modality LUT, the VOI
window and the presentation inversion are composed into one table over the
possible stored values and applied with a single ``np.take``. ``ValueIndex``
says how to turn stored pixels into indices of that table without copying
where possible:

- ``direct``: unsigned 8/16-bit; the stored value is the index (no copy).
- ``view16``: signed 8/16-bit; the bits reinterpreted as unsigned (no copy).
- ``offset``: other integers with a modest span; ``stored - minimum``.
- ``quantised``: float data; 4096 evenly spaced levels between min and max.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

QUANT_LEVELS = 4096
_CHUNK = 1 << 16
MAX_OFFSET_SPAN = 1 << 20


@dataclass(frozen=True)
class ValueIndex:
    """How stored values become indices, and the modality value of each index."""

    kind: str  # direct | view16 | offset | quantised
    table: np.ndarray  # float32 modality value per index
    offset: float = 0.0
    scale: float = 1.0  # quantised: index = (x - offset) * scale
    stored_min: float = 0.0
    stored_max: float = 0.0

    def index(self, stored: np.ndarray) -> np.ndarray:
        """Table indices for ``stored`` (a view when possible)."""
        if self.kind == "direct":
            return stored
        if self.kind == "view16":
            return stored.view(np.uint16 if stored.dtype == np.int16 else np.uint8)
        if self.kind == "offset":
            shifted = stored.astype(np.int64) - int(self.offset)
            return np.clip(shifted, 0, len(self.table) - 1).astype(np.uint32)
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = np.rint((stored.astype(np.float32) - self.offset) * self.scale)
            scaled = np.clip(scaled, 0, len(self.table) - 1)
        return np.nan_to_num(scaled, nan=0.0).astype(np.uint16)  # NaN pixels show as the minimum

    def modality_of(self, stored: np.ndarray) -> np.ndarray:
        """float32 modality values of ``stored`` pixels (one table lookup)."""
        return take_chunked(self.table, self.index(stored))

    def present_indices(self) -> np.ndarray:
        """Indices of the table that lie within the stored min..max of the image."""
        if self.kind == "quantised":
            return np.arange(len(self.table))
        values = np.arange(int(self.stored_min), int(self.stored_max) + 1)
        if self.kind == "direct":
            return values
        if self.kind == "view16":
            return values.astype(np.int64) & (len(self.table) - 1)
        return values - int(self.offset)

    def modality_range(self) -> tuple[float, float]:
        """(min, max) modality value over the stored values present in the image."""
        used = self.table[self.present_indices()]
        return float(used.min()), float(used.max())


def take_chunked(table: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``table[indices]`` computed in chunks of 64 K pixels.

    ``np.take`` converts the indices to intp first; on a 7.5 MP image that
    temporary is 60 MB and makes the lookup 3-4x slower than the memory
    traffic needs. Chunks keep the temporary in cache.
    """
    flat = np.ascontiguousarray(indices).reshape(-1)
    out = np.empty(flat.shape, dtype=table.dtype)
    for start in range(0, flat.size, _CHUNK):
        np.take(table, flat[start:start + _CHUNK], out=out[start:start + _CHUNK])
    return out.reshape(indices.shape)


def build_value_index(stored: np.ndarray, modality: Callable[[np.ndarray], np.ndarray],
                      ) -> ValueIndex:
    """Choose the index scheme for ``stored`` and tabulate ``modality`` over it."""
    lo, hi = _finite_range(stored)
    dtype = stored.dtype
    if dtype in (np.uint8, np.uint16):
        domain = np.arange(int(hi) + 1, dtype=np.int64)
        return ValueIndex("direct", _table(modality, domain, dtype), 0, 1, lo, hi)
    if dtype in (np.int8, np.int16):
        unsigned = np.uint16 if dtype == np.int16 else np.uint8
        domain = np.arange(np.iinfo(unsigned).max + 1, dtype=np.int64).astype(unsigned).view(dtype)
        return ValueIndex("view16", _table(modality, domain, dtype), 0, 1, lo, hi)
    if np.issubdtype(dtype, np.integer) and hi - lo < MAX_OFFSET_SPAN:
        domain = np.arange(int(lo), int(hi) + 1, dtype=np.int64)
        return ValueIndex("offset", _table(modality, domain, dtype), lo, 1, lo, hi)
    return _quantised(stored, modality, lo, hi)


def _finite_range(stored: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite values of ``stored``; (0, 0) when there are none."""
    if not stored.size:
        return 0.0, 0.0
    if stored.dtype.kind != "f":
        return float(stored.min()), float(stored.max())
    finite = stored[np.isfinite(stored)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)


def _quantised(stored: np.ndarray, modality: Callable[[np.ndarray], np.ndarray],
               lo: float, hi: float) -> ValueIndex:
    span = hi - lo if hi > lo else 1.0
    if not np.isfinite(span):  # float64 data spanning more than the float64 range
        lo, hi, span = lo / 2, hi / 2, hi / 2 - lo / 2
    levels = lo + np.arange(QUANT_LEVELS, dtype=np.float64) * (span / (QUANT_LEVELS - 1))
    table = _finite_table(modality(levels.astype(stored.dtype if stored.dtype.kind == "f"
                                                 else np.float64)))
    return ValueIndex("quantised", table, lo, (QUANT_LEVELS - 1) / span, lo, hi)


def _table(modality: Callable[[np.ndarray], np.ndarray], domain: np.ndarray,
           dtype: np.dtype) -> np.ndarray:
    return _finite_table(modality(domain.astype(dtype)))


def _finite_table(values) -> np.ndarray:
    """float32 table with NaN/inf (a damaged modality LUT, overflow) replaced by finite ends."""
    with np.errstate(over="ignore", invalid="ignore"):
        table = np.asarray(values, dtype=np.float32)
    bad = ~np.isfinite(table)
    if bad.any():
        good = table[~bad]
        lo, hi = (float(good.min()), float(good.max())) if good.size else (0.0, 0.0)
        table = np.nan_to_num(table, nan=lo, posinf=hi, neginf=lo)
    return table
