"""`cxrclip.runtime_onnx.run_together` and `Deferred`: the ONNX loader's parallel steps (manifest
check, image session; the text session built in the background) give their results in order and
never hide the first step's error."""
from __future__ import annotations

import threading

import pytest

from cxrclip.runtime_onnx import Deferred, run_together


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


def test_deferred_value_is_built_on_another_thread_and_waited_for():
    release, built_on = threading.Event(), []

    def build() -> str:
        release.wait(10)
        built_on.append(threading.get_ident())
        return "session"

    value = Deferred(build, "test-deferred")
    assert not built_on  # still waiting for the release: the constructor did not block
    release.set()
    assert value.get() == "session" and value.get() == "session"
    assert built_on == [built_on[0]] and built_on[0] != threading.get_ident()


def test_deferred_error_is_raised_at_every_get():
    def build() -> None:
        raise RuntimeError("text.onnx: protobuf parsing failed")

    value = Deferred(build, "test-deferred")
    for _ in range(2):
        with pytest.raises(RuntimeError, match="protobuf"):
            value.get()


def test_a_process_that_ends_right_after_loading_exits_cleanly() -> None:
    """The text session is still being built when the script ends: the interpreter waits for
    it instead of aborting (it used to exit with status 134, std::bad_alloc from ONNX Runtime)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    demo = Path(__file__).resolve().parents[2] / "assets" / "models" / "cxrclip-demo"
    script = f"from cxrclip.engine import Engine; Engine.load({str(demo)!r}, runtime='onnx')"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bad_alloc" not in done.stderr
