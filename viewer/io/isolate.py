"""Decode DICOM pixel data in worker processes and map the pixels back without a second copy.

``decode_in_worker(view)`` sends the view to a pooled child (``viewer.io.subproc``)
that runs ``viewer.io.decode.decode_dicom`` under the limits of
``viewer.io.limits`` (wall time per file, address space). The child writes
the decoded arrays into files in shared memory (``/dev/shm`` where it
exists) that the parent maps copy-on-write and unlinks at once: the pixels
are copied once, by the child, into pages the parent then uses directly.
A crash, panic, timeout or allocation failure becomes a ``DecodeError``
that names the file, the transfer syntax and the decoder that was running.
"""
from __future__ import annotations

import atexit
import dataclasses
import glob
import logging
import mmap
import os
import tempfile
import threading
import uuid
from pathlib import Path

import numpy as np

from viewer.io.limits import DECODE_SECONDS, WORKER_MEMORY_BYTES
from viewer.io.messages import ADVICE_DAMAGED, DecodeError, decode_message, first_line
from viewer.io.subproc import TaskError, WorkerFailed, WorkerPool
from viewer.model.study import View

log = logging.getLogger(__name__)

TARGET = "viewer.io.isolate:child_decode"
WARM_UP = {"warm_up": True}  # a request that only imports the decoders
# Compressed syntaxes whose pydicom decoder plugins a warm-up loads (RLE, JPEG, JPEG-LS, JPEG 2000).
WARM_UP_SYNTAXES = ("1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.70",
                    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90")
POOL_SIZE = max(1, min(int(os.environ.get("CXRCLIP_DECODE_WORKERS", "2")), 8))
_POOL: WorkerPool | None = None
_POOL_LOCK = threading.Lock()


def pool() -> WorkerPool:
    """The process-wide decode pool (created on first use, closed at exit)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = WorkerPool(TARGET, POOL_SIZE, WORKER_MEMORY_BYTES)
            atexit.register(shutdown)
        return _POOL


def prestart() -> None:
    """Start the worker processes now and let each import its decoders (pydicom and its
    plugins, about half a second of CPU each on a small machine) while this process does
    other work, so the first compressed file waits for neither. Returns at once.

    The workers start one after the other, each once the previous one is warm: on two
    cores, this process (importing Qt) keeps one core to itself."""
    threading.Thread(target=_start_and_warm_up, args=(pool(),), name="cxrclip-decode-warm-up",
                     daemon=True).start()


def _start_and_warm_up(workers: WorkerPool) -> None:
    for count in range(1, workers.size + 1):
        workers.start(count)
        try:
            workers.call(WARM_UP, DECODE_SECONDS)
        except (TaskError, WorkerFailed) as exc:  # the first real request reports real problems
            log.info("decode worker warm-up failed: %s", exc)
            return


def shutdown() -> None:
    """Stop the workers (they also exit by themselves when this process ends)."""
    global _POOL
    with _POOL_LOCK:
        current, _POOL = _POOL, None
    if current is not None:
        current.close()


def _shared_dir() -> str:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else tempfile.gettempdir()


def decode_in_worker(view: View, timeout: float | None = None):
    """Decode ``view`` (DICOM) in a worker; raises DecodeError for any failure of the child."""
    prefix = os.path.join(_shared_dir(), f"cxrclip-px-{os.getpid()}-{uuid.uuid4().hex}")
    request = {"view": view, "out": prefix}
    try:
        reply = pool().call(request, timeout or DECODE_SECONDS)
        return _receive(reply)
    except TaskError as exc:
        raise DecodeError(str(exc)) from None
    except WorkerFailed as exc:
        log.warning("decode worker failed on %s: %s; its stderr ends: %s", Path(view.path).name,
                    exc, exc.stderr[-500:])
        raise DecodeError(_failure_message(view, exc)) from None
    finally:
        for leftover in glob.glob(glob.escape(prefix) + "*"):
            os.unlink(leftover)


def _failure_message(view: View, exc: WorkerFailed) -> str:
    if exc.what.startswith("stopped"):
        what = f"decoding {exc.what} (limit per file) in {exc.stage}"
    else:
        what = f"the decoder {exc.stage} crashed ({exc.detail}) in its worker process"
    return decode_message(view.path, view.transfer_syntax_uid, what,
                          "the file is probably damaged; other files are not affected")


# --- pixels through shared memory ---------------------------------------------

def _export_array(arr: np.ndarray, path: str) -> tuple[str, tuple[int, ...], str]:
    """Write ``arr`` into a new file at ``path`` (mapped, one copy); returns its description."""
    arr = np.ascontiguousarray(arr)
    if arr.nbytes == 0:
        return path, arr.shape, arr.dtype.str
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, arr.nbytes)
        with mmap.mmap(fd, arr.nbytes) as mapped:
            np.frombuffer(mapped, dtype=arr.dtype, count=arr.size)[:] = arr.reshape(-1)
            del mapped  # the frombuffer view must be gone before the map closes
    finally:
        os.close(fd)
    return path, arr.shape, arr.dtype.str


def _import_array(desc: tuple[str, tuple[int, ...], str]) -> np.ndarray:
    """Map a file written by `_export_array` (copy-on-write) and unlink it."""
    path, shape, dtype = desc
    dt = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if size == 0:
        return np.empty(shape, dtype=dt)
    fd = os.open(path, os.O_RDONLY)
    try:
        if os.fstat(fd).st_size != size:
            raise DecodeError(f"{Path(path).name}: worker output has the wrong size")
        mapped = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
    finally:
        os.close(fd)
        os.unlink(path)
    return np.frombuffer(mapped, dtype=dt).reshape(shape)


def _receive(reply: dict):
    image = reply["image"]
    image.stored = _import_array(reply["stored"])
    if reply["rgb"] is not None:
        image.rgb = _import_array(reply["rgb"])
    return image


# --- child side ----------------------------------------------------------------

def _child_warm_up() -> dict:
    """Import the decode path and find pydicom's decoder plugins, before any file arrives."""
    from pydicom.pixels import get_decoder

    import viewer.io.decode  # noqa: F401 - the import is the warm-up

    for uid in WARM_UP_SYNTAXES:
        try:
            get_decoder(uid).available_plugins
        except (ValueError, NotImplementedError, AttributeError):  # no decoder here: fine
            continue
    return {}


def child_decode(request: dict, stage) -> dict:
    """Worker entry point: decode, write the arrays to shared memory, return the rest."""
    if request.get("warm_up"):
        return _child_warm_up()
    from viewer.io.decode import decode_dicom

    view: View = request["view"]
    try:
        image = decode_dicom(view, stage)
    except DecodeError:
        raise
    except MemoryError:
        raise DecodeError(decode_message(
            view.path, view.transfer_syntax_uid, "decoding needed more memory than the worker "
            f"limit of {WORKER_MEMORY_BYTES / 2**30:.0f} GiB", ADVICE_DAMAGED)) from None
    except Exception as exc:  # noqa: BLE001 - any other failure is this file's problem
        raise DecodeError(decode_message(view.path, view.transfer_syntax_uid,
                                         f"cannot decode ({first_line(exc)})")) from None
    stage("handing the pixels back")
    stored = _export_array(image.stored, request["out"] + ".stored")
    rgb = _export_array(image.rgb, request["out"] + ".rgb") if image.rgb is not None else None
    shell = dataclasses.replace(image, stored=np.empty((0, 0), image.stored.dtype), rgb=None,
                                cache={})
    return {"image": shell, "stored": stored, "rgb": rgb}
