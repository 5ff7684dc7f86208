"""Nearest-neighbour libraries for the archive index, side by side on synthetic embeddings.

Run:  .venv/bin/python benchmarks/ann_bench.py [--sizes 100000] [--dims 256 512]
          [--data clustered iid] [--libs usearch faiss hnswlib numpy] [--json out.json]

What it measures, for each library configuration on the same vectors in one process:
build time (all `--threads`), memory (anonymous RSS increase while building, index size on
disk), single-query latency p50/p99 at k=10 and k=100 (one thread, as the viewer's search
worker runs them; queries are interleaved across all configurations so that a burst of load
from other processes hits every configuration alike), recall@10 and recall@100 against exact
search, load time from disk (full read, and memory-mapped where the library can), and the
rate of adding 1 % more vectors to the built index.

Vectors are unit-norm, compared by inner product (= cosine). `clustered` imitates CLIP image
embeddings of one domain: every vector shares a common direction (chest X-rays all look
alike, random pairs have cosine ~0.35), belongs to one of a few hundred clusters of
Zipf-like sizes (findings/projections; same-cluster cosine ~0.65), and carries noise with a
decaying spectrum (low effective dimension). `iid` is uniform on the sphere, for contrast.
Two query sets: `like` (new vectors from the same distribution: "more like this") and `text`
(a cluster direction seen from a separate "modality gap" direction, as CLIP text queries sit
apart from the image cone; these are out of distribution for the graph).

Libraries that are not installed are skipped with a message; faiss-cpu and hnswlib are not
project dependencies (install them into the venv only to run this).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

QUERY_KINDS = ("like", "text")
KS = (10, 100)


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Geometry:
    """The fixed directions of one synthetic embedding space (shared by data and queries)."""

    common: np.ndarray  # (dim,) direction every image embedding leans towards
    gap: np.ndarray  # (dim,) where "text" queries sit, apart from the image cone
    centres: np.ndarray  # (clusters, dim) unit cluster directions
    weights: np.ndarray  # (clusters,) Zipf-like cluster probabilities
    rotation: np.ndarray  # (dim, dim) orthogonal; spreads the noise spectrum over all axes
    spectrum: np.ndarray  # (dim,) noise scale per (rotated) axis, decaying


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32)."""
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_geometry(dim: int, rng: np.random.Generator, clusters: int = 300) -> Geometry:
    """Draw the shared directions of a clustered space with `clusters` clusters."""
    basis = unit_rows(rng.standard_normal((2, dim)))
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    spectrum = (np.arange(1, dim + 1) ** -0.6).astype(np.float32)
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.8
    return Geometry(basis[0], basis[1], unit_rows(rng.standard_normal((clusters, dim))),
                    weights / weights.sum(), rotation.astype(np.float32), spectrum / np.linalg.norm(spectrum))


def structured_noise(geo: Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-norm noise whose energy falls off over the (rotated) axes like real embeddings."""
    raw = rng.standard_normal((n, geo.rotation.shape[0]), dtype=np.float32) * geo.spectrum
    return unit_rows(raw @ geo.rotation)


def clustered_vectors(geo: Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` image-like embeddings: common direction + cluster direction + structured noise."""
    out = np.empty((n, geo.common.shape[0]), np.float32)
    for start in range(0, n, 65536):
        stop = min(n, start + 65536)
        members = rng.choice(len(geo.weights), stop - start, p=geo.weights)
        mixed = 0.6 * geo.common + 0.55 * geo.centres[members] + 0.58 * structured_noise(geo, stop - start, rng)
        out[start:stop] = unit_rows(mixed)
    return out


def iid_vectors(dim: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` vectors uniform on the unit sphere."""
    return unit_rows(rng.standard_normal((n, dim), dtype=np.float32))


def text_queries(geo: Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """Queries from the "text side": gap direction + one cluster direction + some noise."""
    members = rng.choice(len(geo.weights), n, p=geo.weights)
    return unit_rows(0.7 * geo.gap + 0.5 * geo.centres[members] + 0.5 * structured_noise(geo, n, rng))


@dataclass
class Dataset:
    """Base vectors, the 1 % added later, and the query sets, with their exact neighbours."""

    name: str
    base: np.ndarray
    extra: np.ndarray
    queries: dict[str, np.ndarray]
    truth: dict[str, np.ndarray] = field(default_factory=dict)  # kind -> (q, max k) ids


def make_dataset(kind: str, n: int, dim: int, n_queries: int, seed: int) -> Dataset:
    """Generate one dataset (deterministic in `seed`) and its exact top-100 ground truth."""
    rng = np.random.default_rng(seed)
    if kind == "clustered":
        geo = make_geometry(dim, rng)
        draw: Callable[[int], np.ndarray] = lambda m: clustered_vectors(geo, m, rng)  # noqa: E731
        queries = {"like": draw(n_queries), "text": text_queries(geo, n_queries, rng)}
    elif kind == "iid":
        draw = lambda m: iid_vectors(dim, m, rng)  # noqa: E731
        queries = {"like": draw(n_queries), "text": draw(n_queries)}
    else:
        raise SystemExit(f"--data: unknown kind {kind!r}; use clustered or iid")
    data = Dataset(f"{kind} n={n:,} d={dim}", draw(n), draw(max(1, n // 100)), queries)
    data.truth = {q: exact_top(data.base, vecs, max(KS)) for q, vecs in queries.items()}
    return data


def exact_top(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ids of the k largest inner products per query, best first (all BLAS threads)."""
    scores = queries @ base.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


# ----------------------------------------------------------------------------- memory
def rss_mib(kind: str = "RssAnon") -> float:
    """This process's resident memory of one kind (RssAnon, RssFile, VmRSS) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(kind + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ----------------------------------------------------------------------------- backends
class Backend:
    """One library configuration: build, search one query, save/load, add vectors."""

    name = "?"
    efforts: tuple[int, ...] = (0,)  # search-effort settings swept at query time
    effort_label = ""
    exact = False

    def build(self, vectors: np.ndarray, threads: int) -> None:
        raise NotImplementedError

    def set_effort(self, effort: int) -> None:
        """Set the search-time effort (ef / nprobe); no-op for exact search."""

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        raise NotImplementedError

    def save(self, path: Path) -> Path:
        raise NotImplementedError

    def load(self, path: Path, mapped: bool) -> "Backend":
        raise NotImplementedError

    def add(self, vectors: np.ndarray, threads: int) -> None:
        raise NotImplementedError


class NumpyExact(Backend):
    """Exact search: one float32 matrix-vector product + argpartition, one BLAS thread."""

    name = "numpy exact f32"
    exact = True

    def build(self, vectors: np.ndarray, threads: int) -> None:
        self.matrix = np.ascontiguousarray(vectors, dtype=np.float32).copy()

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        scores = self.matrix @ query
        top = np.argpartition(-scores, k - 1)[:k]
        return top[np.argsort(-scores[top])]

    def save(self, path: Path) -> Path:
        np.save(path.with_suffix(".npy"), self.matrix)
        return path.with_suffix(".npy")

    def load(self, path: Path, mapped: bool) -> "NumpyExact":
        loaded = NumpyExact()
        loaded.matrix = np.load(path, mmap_mode="r" if mapped else None)
        return loaded

    def add(self, vectors: np.ndarray, threads: int) -> None:
        self.matrix = np.concatenate([self.matrix, vectors])


class UsearchHNSW(Backend):
    """usearch HNSW on unit vectors (metric ip, or cos which re-normalises), f32/f16/i8 storage."""

    effort_label = "expansion_search"

    def __init__(self, dtype: str, connectivity: int, expansion_add: int, efforts: tuple[int, ...],
                 metric: str = "ip"):
        self.dtype, self.connectivity, self.expansion_add = dtype, connectivity, expansion_add
        self.efforts, self.metric = efforts, metric
        suffix = "" if metric == "ip" else f" {metric}"
        self.name = f"usearch {dtype} M={connectivity} ef_add={expansion_add}{suffix}"

    def build(self, vectors: np.ndarray, threads: int) -> None:
        from usearch.index import Index

        self.index = Index(ndim=vectors.shape[1], metric=self.metric, dtype=self.dtype,
                           connectivity=self.connectivity, expansion_add=self.expansion_add)
        self.index.add(np.arange(len(vectors), dtype=np.uint64), vectors, threads=threads)

    def set_effort(self, effort: int) -> None:
        self.index.expansion_search = effort

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        return self.index.search(query, k, threads=1).keys

    def save(self, path: Path) -> Path:
        self.index.save(str(path.with_suffix(".usearch")))
        return path.with_suffix(".usearch")

    def load(self, path: Path, mapped: bool) -> "UsearchHNSW":
        from usearch.index import Index

        loaded = UsearchHNSW(self.dtype, self.connectivity, self.expansion_add, self.efforts, self.metric)
        loaded.index = Index.restore(str(path), view=mapped)
        return loaded

    def add(self, vectors: np.ndarray, threads: int) -> None:
        start = len(self.index)
        self.index.add(np.arange(start, start + len(vectors), dtype=np.uint64), vectors, threads=threads)


class FaissBackend(Backend):
    """Shared search/save/load for faiss indices (OpenMP threads set per call)."""

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        return self.index.search(query[None, :], k)[1][0]

    def save(self, path: Path) -> Path:
        import faiss

        faiss.write_index(self.index, str(path.with_suffix(".faiss")))
        return path.with_suffix(".faiss")

    def load(self, path: Path, mapped: bool) -> "FaissBackend":
        import faiss

        loaded = object.__new__(type(self))
        loaded.__dict__.update({k: v for k, v in self.__dict__.items() if k != "index"})
        flags = faiss.IO_FLAG_MMAP_IFC if mapped else 0
        loaded.index = faiss.read_index(str(path), flags)
        return loaded

    def add(self, vectors: np.ndarray, threads: int) -> None:
        import faiss

        faiss.omp_set_num_threads(threads)
        self.index.add(vectors)
        faiss.omp_set_num_threads(1)


class FaissFlat(FaissBackend):
    """faiss IndexFlatIP: exact search with faiss's own kernels."""

    name = "faiss FlatIP (exact)"
    exact = True

    def build(self, vectors: np.ndarray, threads: int) -> None:
        import faiss

        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(vectors)


class FaissHNSW(FaissBackend):
    """faiss IndexHNSWFlat with inner product."""

    effort_label = "efSearch"

    def __init__(self, m: int, ef_construction: int, efforts: tuple[int, ...]):
        self.m, self.ef_construction, self.efforts = m, ef_construction, efforts
        self.name = f"faiss HNSWFlat M={m} efC={ef_construction}"

    def build(self, vectors: np.ndarray, threads: int) -> None:
        import faiss

        faiss.omp_set_num_threads(threads)
        self.index = faiss.IndexHNSWFlat(vectors.shape[1], self.m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = self.ef_construction
        self.index.add(vectors)
        faiss.omp_set_num_threads(1)

    def set_effort(self, effort: int) -> None:
        self.index.hnsw.efSearch = effort


class FaissIVF(FaissBackend):
    """faiss IndexIVFFlat (k-means coarse quantiser, 4*sqrt(n) lists), inner product."""

    effort_label = "nprobe"

    def __init__(self, efforts: tuple[int, ...]):
        self.efforts = efforts
        self.name = "faiss IVFFlat nlist=4*sqrt(n)"

    def build(self, vectors: np.ndarray, threads: int) -> None:
        import faiss

        faiss.omp_set_num_threads(threads)
        nlist = int(4 * np.sqrt(len(vectors)))
        quantizer = faiss.IndexFlatIP(vectors.shape[1])
        self.index = faiss.IndexIVFFlat(quantizer, vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        sample = vectors[np.random.default_rng(0).choice(len(vectors), min(len(vectors), 64 * nlist), replace=False)]
        self.index.train(sample)
        self.index.add(vectors)
        faiss.omp_set_num_threads(1)

    def set_effort(self, effort: int) -> None:
        self.index.nprobe = effort


class Hnswlib(Backend):
    """hnswlib HNSW with inner product."""

    effort_label = "ef"
    _ef = 10

    def __init__(self, m: int, ef_construction: int, efforts: tuple[int, ...]):
        self.m, self.ef_construction, self.efforts = m, ef_construction, efforts
        self.name = f"hnswlib M={m} efC={ef_construction}"

    def build(self, vectors: np.ndarray, threads: int) -> None:
        import hnswlib

        self.index = hnswlib.Index(space="ip", dim=vectors.shape[1])
        self.index.init_index(max_elements=len(vectors), M=self.m, ef_construction=self.ef_construction)
        self.index.add_items(vectors, np.arange(len(vectors)), num_threads=threads)

    def set_effort(self, effort: int) -> None:
        self._ef = effort

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        self.index.set_ef(max(self._ef, k))  # hnswlib refuses ef < k; the others raise it silently
        return self.index.knn_query(query, k, num_threads=1)[0][0]

    def save(self, path: Path) -> Path:
        self.index.save_index(str(path.with_suffix(".hnsw")))
        return path.with_suffix(".hnsw")

    def load(self, path: Path, mapped: bool) -> "Hnswlib":
        import hnswlib

        if mapped:
            raise NotImplementedError("hnswlib reads the whole file into memory")

        loaded = Hnswlib(self.m, self.ef_construction, self.efforts)
        loaded.index = hnswlib.Index(space="ip", dim=self.index.dim)
        loaded.index.load_index(str(path), max_elements=self.index.get_max_elements())
        loaded._ef = self._ef
        return loaded

    def add(self, vectors: np.ndarray, threads: int) -> None:
        start = self.index.get_current_count()
        self.index.resize_index(start + len(vectors))
        self.index.add_items(vectors, np.arange(start, start + len(vectors)), num_threads=threads)


# ----------------------------------------------------------------------------- configurations
LIBRARY_MODULES = {"numpy": "numpy", "usearch": "usearch", "faiss-flat": "faiss", "faiss-hnsw": "faiss",
                   "faiss-ivf": "faiss", "hnswlib": "hnswlib"}


def is_installed(module: str) -> bool:
    """True when `module` can be imported (faiss and hnswlib are optional for this script)."""
    import importlib.util

    return importlib.util.find_spec(module) is not None


def make_backends(args: argparse.Namespace) -> list[Backend]:
    """One backend per requested library configuration; missing libraries are reported and skipped."""
    factories: dict[str, Callable[[], list[Backend]]] = {
        "numpy": lambda: [NumpyExact()],
        "faiss-flat": lambda: [FaissFlat()],
        "usearch": lambda: [UsearchHNSW(d, m, ef_add, tuple(args.ef), metric) for d in args.usearch_dtypes
                            for m in args.connectivity for ef_add in args.ef_add
                            for metric in args.usearch_metrics],
        "faiss-hnsw": lambda: [FaissHNSW(m, args.ef_add[0], tuple(args.ef)) for m in args.connectivity],
        "hnswlib": lambda: [Hnswlib(m, args.ef_add[0], tuple(args.ef)) for m in args.connectivity],
        "faiss-ivf": lambda: [FaissIVF(tuple(args.nprobe))],
    }
    backends: list[Backend] = []
    for lib in args.libs:
        if not is_installed(LIBRARY_MODULES[lib]):
            print(f"skipping {lib}: module {LIBRARY_MODULES[lib]!r} is not installed "
                  f"(.venv/bin/pip install -c requirements.lock {LIBRARY_MODULES[lib]}-cpu/... to include it)")
            continue
        backends += factories[lib]()
    return backends


# ----------------------------------------------------------------------------- measurements
@dataclass
class BuildFigures:
    """Per configuration and dataset: cost of building, storing, opening and growing the index."""

    config: str
    build_s: float
    rss_mib: float
    disk_mib: float
    load_s: float = float("nan")
    mapped_load_ms: float = float("nan")
    mapped_first_query_ms: float = float("nan")
    mapped_p50_ms: float = float("nan")
    add_per_s: float = float("nan")


@dataclass
class QueryFigures:
    """Per configuration, search effort, query kind and k: latency and recall."""

    config: str
    effort: int
    kind: str
    k: int
    times_ms: list[float] = field(default_factory=list)
    recalls: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        t = np.asarray(self.times_ms)
        return {"config": self.config, "effort": self.effort, "kind": self.kind, "k": self.k,
                "queries": len(t), "p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99)),
                "recall": float(np.mean(self.recalls))}


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of calling fn once."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def build_all(backends: list[Backend], data: Dataset, threads: int, workdir: Path) -> dict[str, BuildFigures]:
    """Build every backend in turn; anonymous RSS growth and the saved file size are its memory."""
    figures = {}
    for backend in backends:
        gc.collect()
        before = rss_mib()
        seconds, _ = timed(lambda: backend.build(data.base, threads))
        grown = rss_mib() - before
        backend.path = backend.save(workdir / f"{len(figures)}")
        figures[backend.name] = BuildFigures(backend.name, seconds, grown, backend.path.stat().st_size / 2**20)
        print(f"  built {backend.name}: {seconds:.1f} s, +{grown:.0f} MiB RSS  (load {os.getloadavg()[0]:.1f})",
              flush=True)
    return figures


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of the exact top-k ids that the search returned."""
    return len(np.intersect1d(found, truth)) / len(truth)


def query_all(backends: list[Backend], data: Dataset, n_exact: int) -> list[QueryFigures]:
    """Single-threaded queries, interleaved: each query visits every configuration in rotating order."""
    configs = [(b, e) for b in backends for e in b.efforts]
    cells = {(b.name, e, kind, k): QueryFigures(b.name, e, kind, k) for b, e in configs for kind in QUERY_KINDS
             for k in KS}
    n_queries = len(data.queries["like"])
    with threadpool_limits(1):
        for backend, effort in configs:  # warm-up: first touch of code and memory
            backend.set_effort(effort)
            backend.search(data.queries["like"][0], max(KS))
        for qi in range(n_queries):
            shift = qi % len(configs)
            for backend, effort in configs[shift:] + configs[:shift]:
                if backend.exact and qi >= n_exact:
                    continue
                backend.set_effort(effort)
                for kind in QUERY_KINDS:
                    for k in KS:
                        seconds, ids = timed(lambda: backend.search(data.queries[kind][qi], k))
                        cell = cells[(backend.name, effort, kind, k)]
                        cell.times_ms.append(seconds * 1e3)
                        cell.recalls.append(recall(np.asarray(ids), data.truth[kind][qi, :k]))
    return list(cells.values())


def measure_loading(backends: list[Backend], data: Dataset, figures: dict[str, BuildFigures], n_mapped: int) -> None:
    """Open each saved index fully and memory-mapped (page cache warm: the file was just written)."""
    with threadpool_limits(1):
        for backend in backends:
            fig = figures[backend.name]
            fig.load_s, loaded = timed(lambda: backend.load(backend.path, mapped=False))
            del loaded
            gc.collect()
            try:
                seconds, mapped = timed(lambda: backend.load(backend.path, mapped=True))
            except Exception as error:  # the library has no memory-mapped open for this index type
                print(f"  {backend.name}: no memory-mapped load ({type(error).__name__}: {str(error)[:80]})")
                continue
            fig.mapped_load_ms = seconds * 1e3
            mapped.set_effort(backend.efforts[-1])
            first, _ = timed(lambda: mapped.search(data.queries["like"][0], 10))
            fig.mapped_first_query_ms = first * 1e3
            times = [timed(lambda q=q: mapped.search(q, 10))[0] for q in data.queries["like"][1:n_mapped + 1]]
            fig.mapped_p50_ms = float(np.median(times) * 1e3)
            del mapped
            gc.collect()


def measure_adding(backends: list[Backend], data: Dataset, figures: dict[str, BuildFigures], threads: int) -> None:
    """Add the extra 1 % of vectors to each built index; report vectors per second."""
    for backend in backends:
        seconds, _ = timed(lambda: backend.add(data.extra, threads))
        figures[backend.name].add_per_s = len(data.extra) / seconds


def scan_latency(base: np.ndarray, queries: np.ndarray, sizes: list[int]) -> list[dict]:
    """Exact numpy search latency (one thread, k=100) on the first n rows, for each n in sizes."""
    rows = []
    with threadpool_limits(1):
        for n in [s for s in sizes if s <= len(base)]:
            exact = NumpyExact()
            exact.matrix = np.ascontiguousarray(base[:n])
            times = [timed(lambda q=q: exact.search(q, 100))[0] * 1e3 for q in queries]
            rows.append({"n": n, "p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))})
    return rows


# ----------------------------------------------------------------------------- report
def print_build_table(data: Dataset, figures: dict[str, BuildFigures]) -> None:
    """Markdown table of build/memory/load/add figures for one dataset."""
    print(f"\n### {data.name}: build, memory, open, grow\n")
    print("| configuration | build s | RSS + MiB | disk MiB | full load s | mmap load ms | mmap 1st query ms "
          "| mmap p50 ms | add 1 % vectors/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for f in figures.values():
        print(f"| {f.config} | {f.build_s:.1f} | {f.rss_mib:.0f} | {f.disk_mib:.0f} | {f.load_s:.2f} | "
              f"{f.mapped_load_ms:.1f} | {f.mapped_first_query_ms:.2f} | {f.mapped_p50_ms:.2f} | {f.add_per_s:,.0f} |")


def print_query_table(data: Dataset, summaries: list[dict], backends: list[Backend]) -> None:
    """Markdown table: one row per configuration and effort, columns per query kind and k."""
    print(f"\n### {data.name}: one-thread queries (p50/p99 ms, recall vs exact)\n")
    heads = [f"{kind} k={k}" for kind in QUERY_KINDS for k in KS]
    print("| configuration | effort | " + " | ".join(heads) + " |")
    print("|---|---|" + "---|" * len(heads))
    by_key = {(s["config"], s["effort"], s["kind"], s["k"]): s for s in summaries}
    labels = {b.name: b.effort_label for b in backends}
    for config, effort in dict.fromkeys((s["config"], s["effort"]) for s in summaries):
        cells = [by_key[(config, effort, kind, k)] for kind in QUERY_KINDS for k in KS]
        text = [f"{c['p50_ms']:.2f}/{c['p99_ms']:.2f}, R {c['recall']:.3f}" for c in cells]
        label = f"{labels[config]}={effort}" if labels[config] else "-"
        print(f"| {config} | {label} | " + " | ".join(text) + " |")


def run_dataset(args: argparse.Namespace, kind: str, n: int, dim: int, workdir: Path) -> dict:
    """Everything for one (data kind, size, dim): build, query, load, add; returns JSON-ready figures."""
    started = time.perf_counter()
    data = make_dataset(kind, n, dim, args.queries, args.seed)
    print(f"\n== {data.name}: data + exact truth in {time.perf_counter() - started:.0f} s, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    backends = make_backends(args)
    figures = build_all(backends, data, args.threads, workdir)
    load_at_queries = os.getloadavg()
    summaries = [cell.summary() for cell in query_all(backends, data, args.exact_queries)]
    measure_loading(backends, data, figures, args.exact_queries)
    measure_adding(backends, data, figures, args.threads)
    scan = scan_latency(data.base, data.queries["like"][: args.exact_queries], args.scan_sizes) if kind == "clustered" else []
    print_build_table(data, figures)
    print_query_table(data, summaries, backends)
    if scan:
        print("\nexact numpy scan, one thread, k=100: " + ", ".join(
            f"n={r['n']:,}: p50 {r['p50_ms']:.2f} / p99 {r['p99_ms']:.2f} ms" for r in scan))
    for path in workdir.iterdir():
        path.unlink()
    return {"dataset": data.name, "kind": kind, "n": n, "dim": dim, "load_average_at_queries": load_at_queries,
            "build": [asdict(f) for f in figures.values()], "queries": summaries, "exact_scan": scan}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--data", nargs="+", default=["clustered", "iid"], choices=["clustered", "iid"])
    parser.add_argument("--libs", nargs="+", default=list(LIBRARY_MODULES), choices=list(LIBRARY_MODULES))
    parser.add_argument("--usearch-dtypes", nargs="+", default=["f32", "f16", "i8"])
    parser.add_argument("--usearch-metrics", nargs="+", default=["ip"], choices=["ip", "cos"])
    parser.add_argument("--connectivity", type=int, nargs="+", default=[16],
                        help="HNSW M (usearch connectivity) for every HNSW library")
    parser.add_argument("--ef-add", type=int, nargs="+", default=[128],
                        help="usearch expansion_add values; faiss/hnswlib efConstruction is the first")
    parser.add_argument("--ef", type=int, nargs="+", default=[32, 64, 128, 256], help="search efforts swept")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--queries", type=int, default=200, help="queries per kind")
    parser.add_argument("--exact-queries", type=int, default=40, help="queries timed for exact search")
    parser.add_argument("--scan-sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000, 300_000, 1_000_000])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for building/adding")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="where indices are saved (a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write all figures here")
    return parser.parse_args(argv)


def environment() -> dict:
    """Versions and machine facts printed with the figures."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for distribution in ("numpy", "usearch", "numkong", "faiss-cpu", "hnswlib"):
        try:
            versions[distribution] = version(distribution)
        except PackageNotFoundError:
            pass
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.processor() or
            platform.machine(), "versions": versions, "load_average_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = environment()
    print(json.dumps(env))
    workdir = Path(tempfile.mkdtemp(prefix="ann_bench_", dir=args.workdir))
    try:
        runs = [run_dataset(args, kind, n, dim, workdir) for n in args.sizes for dim in args.dims
                for kind in args.data]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    env["load_average_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps({"environment": env, "args": {k: str(v) for k, v in vars(args).items()},
                                         "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
