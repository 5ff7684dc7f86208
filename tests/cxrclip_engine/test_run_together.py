"""`cxrclip.runtime_onnx.run_together`: the ONNX loader's parallel steps (manifest check and
session building) give their results in order and never hide the first step's error."""
from __future__ import annotations

import threading

import pytest

from cxrclip.runtime_onnx import run_together


def test_results_come_back_in_argument_order_from_separate_threads():
    seen: list[int] = []
    barrier = threading.Barrier(3, timeout=10)  # passes only if all three run at the same time

    def step(value: int):
        def run() -> int:
            barrier.wait()
            seen.append(threading.get_ident())
            return value
        return run

    assert run_together(step(1), step(2), step(3)) == [1, 2, 3]
    assert len(set(seen)) == 3


def test_first_error_in_argument_order_wins_and_every_step_finishes():
    finished = threading.Event()

    def manifest_check() -> None:
        raise ValueError("onnx/text.onnx does not match its SHA-256 sum")

    def build_session() -> None:
        finished.wait(0.2)
        finished.set()
        raise RuntimeError("protobuf parsing failed")  # what a damaged file also causes

    with pytest.raises(ValueError, match="SHA-256"):
        run_together(manifest_check, build_session)
    assert finished.is_set()  # the caller got the error only after the other step ended
    with pytest.raises(RuntimeError, match="protobuf"):
        run_together(lambda: None, build_session)
