"""Worker functions that fail the hard ways decoders do, for the isolation tests.

Run inside ``viewer.io.subproc`` children only (the tests name them as targets).
"""
from __future__ import annotations

import os
import time


class FakePanic(BaseException):
    """Like pyo3's PanicException: a BaseException, not an Exception."""


def abort(payload, stage):
    stage("native decoder (abort test)")
    os.abort()


def panic(payload, stage):
    stage("rust decoder (panic test)")
    raise FakePanic("called `Option::unwrap()` on a `None` value")


def sleep(payload, stage):
    stage("slow decoder (timeout test)")
    time.sleep(float(payload))
    return "woke up"


def allocate(payload, stage):
    stage("greedy decoder (memory test)")
    block = bytearray(int(payload))
    return len(block)


def echo(payload, stage):
    stage("echo")
    return payload
