"""Generation counters, the coalescing worker queue and the debounce rule."""
from __future__ import annotations

import threading

import pytest

from plugins.cxrclip_findings.requests import Debounce, Generations, Job, LatestQueue, QueueClosed


def test_generations_make_old_requests_stale():
    gens = Generations()
    first = gens.bump("study")
    second = gens.bump("study")
    assert not gens.is_current("study", first)
    assert gens.is_current("study", second)
    assert gens.current("prompt") == 0


def test_latest_queue_replaces_same_key_and_keeps_order():
    q = LatestQueue()
    q.put(Job("findings", lambda: 1))
    q.put(Job("prompt", lambda: "a"))
    q.put(Job("heatmap", lambda: 2))
    q.put(Job("prompt", lambda: "abc"))
    assert q.replaced == 1 and len(q) == 3
    assert [q.take().key for _ in range(3)] == ["findings", "heatmap", "prompt"]
    assert q.take(timeout=0.01) is None


def test_latest_queue_replacement_runs_newest():
    q = LatestQueue()
    q.put(Job("prompt", lambda: "a"))
    q.put(Job("prompt", lambda: "ab"))
    assert q.take().run() == "ab"


def test_latest_queue_discard_and_close_wakes_taker():
    q = LatestQueue()
    q.put(Job("a", lambda: 0, topic="study", generation=1))
    q.put(Job("b", lambda: 0, topic="prompt", generation=1))
    assert q.discard(lambda j: j.topic == "study") == 1
    q.take()
    errors = []

    def taker():
        try:
            q.take()
        except QueueClosed as exc:
            errors.append(exc)

    t = threading.Thread(target=taker)
    t.start()
    q.close()
    t.join(timeout=5)
    assert not t.is_alive() and len(errors) == 1
    with pytest.raises(QueueClosed):
        q.put(Job("c", lambda: 0))


def test_debounce_fires_after_quiet_period_with_latest_value():
    d = Debounce(0.15)
    d.push("l", now=0.0)
    d.push("la", now=0.1)
    assert d.poll(0.2) == (False, None)  # 0.1 + 0.15 not reached
    assert d.poll(0.25) == (True, "la")
    assert not d.pending
    assert d.poll(1.0) == (False, None)
    with pytest.raises(ValueError):
        Debounce(-1)
