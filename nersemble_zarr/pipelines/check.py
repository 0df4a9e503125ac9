"""``check``: a store fsck that needs no raw data. Finds what is missing, damaged or marked complete wrongly.

What it checks (default depth: object listing, every ``zarr.json`` and the shard indexes; no chunk data):

- **metadata**: every node's ``zarr.json`` parses; the root holds consolidated metadata and it agrees with
  the nodes' own documents (a node the consolidated copy describes but whose ``zarr.json`` is gone is a
  missing object: the whole array folder was lost).
- **shards of complete cameras**: for every camera in ``complete_cameras`` of ``images``/``alpha`` (full
  resolution and every ``level_<f>``), every shard of that camera exists; its index (at the shard's end)
  has the right size, its crc32c verifies and every index entry lies inside the shard (a truncated or
  overwritten shard fails here).
- **chunks of arrays whose content never equals the fill value** (calibration matrices, FLAME vertices and
  faces, point positions): present. zarr omits chunks equal to the fill value, so a missing chunk of other
  small arrays (an all-zero tracking parameter, a single cloud at timestep 0) cannot be told from a lost
  one and is not flagged; ``--deep`` still decodes the ones present.
- **markers agree with what is there**: a complete calibration / point-cloud / tracking group has all its
  arrays with consistent shapes; a complete ``level_<f>`` has its attrs (factor, scale, height, width), its
  intrinsics and every camera in its images/alpha ``complete_cameras``; complete FLAME meshes
  (``flame_v<N>``) have vertices for every frame of a complete ``tracking_v<N>`` and the benchmark's faces;
  ``complete_cameras`` names cameras of the sequence.
- **leftovers**: zarr temporary files (``<name>.<uuid>.partial``) a killed write left.

``deep=True`` additionally reads and decodes every chunk of what is marked complete (a crc32c codec in the
chunk's codec chain verifies it; a store written before chunks carried checksums can only fail decoding).

``repair=True`` (under the store's writer lock) removes leftovers and unmarks whatever is damaged so that
rerunning the writer redoes exactly that: a camera is removed from ``complete_cameras`` (convert /
downscale rewrite its shards); a calibration, point-cloud, tracking or FLAME group gets ``complete: False``
(its writer rewrites the group); an array or unit group whose ``zarr.json`` is missing or corrupt is
deleted (convert / flame recreate it); a damaged ``level_<f>`` is deleted (downscale recomputes it from
the full-resolution frames); a damaged benchmark, participant or sequence group document is restored from
the consolidated copy. Metadata is re-consolidated at the end. A corrupt root ``zarr.json`` cannot be
repaired (it held the consolidated metadata): convert into a new store.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core import schema
from ..core.benchmark import ALL_BENCHMARK_NAMES as BENCHMARK_NAMES, SVFR
from ..core.errors import NersembleZarrError, SelectionError
from ..jobs.runner import JobOutcome, run_jobs
from ..storage.leftovers import LEFTOVER_PATTERN
from ..storage.location import StoreLocation
from ..read.resolver import stored_name
from ..storage.markers import complete_cameras, consolidate, is_complete, unmark, unmark_cameras, unmarked_attrs

#: Problem kinds, in the order the table lists them.
KINDS = (
    "missing_consolidated",  # the root zarr.json has no consolidated metadata
    "stale_consolidated",  # the consolidated copy disagrees with the nodes' own zarr.json
    "missing_metadata",  # a node the consolidated metadata describes has no zarr.json
    "corrupt_metadata",  # a zarr.json that does not parse
    "missing_object",  # a shard / chunk of something marked complete is absent
    "truncated",  # an object shorter than its index says (or than its index)
    "corrupt_index",  # a shard index whose checksum fails or whose entries point outside the shard
    "corrupt_chunk",  # a chunk that fails its checksum or does not decode (--deep)
    "marker",  # a completion marker that disagrees with what is there
    "leftover",  # a zarr temporary file left by a killed write
)

_EMPTY = np.uint64(2**64 - 1)
_UNIT_GROUPS = ("pointclouds", "tracking_v", "flame_v")
_LEVEL = re.compile(r"^level_(\d+)$")


class CheckError(NersembleZarrError):
    """The path holds no Zarr store at all (nothing to check)."""


@dataclass
class Problem:
    """One thing wrong with the store.

    ``kind``: one of :data:`KINDS`; ``key``: the store-relative object (``"nvs/388/GLASSES/images/c/0/0/0/0/0"``,
    ``"nvs/388/GLASSES/images/zarr.json"``); ``array``: the array or group path it belongs to;
    ``camera``/``timesteps``: the frames affected (``(t0, t1)``, end exclusive) where that applies.
    ``repair``: what ``repair=True`` did about it (``None`` when not repairing).
    """

    kind: str
    key: str
    message: str
    array: str = ""
    benchmark: str | None = None
    participant: int | None = None
    sequence: str | None = None
    camera: str | None = None
    timesteps: tuple[int, int] | None = None
    repair: str | None = None

    def where(self) -> str:
        """``"nvs 388 GLASSES camera 222200036 timesteps 0-31"``: the human location, '' at the root."""
        parts = [x for x in (self.benchmark, None if self.participant is None else f"{self.participant:03d}",
                             self.sequence) if x]
        if self.camera is not None:
            parts.append(f"camera {self.camera}")
        if self.timesteps is not None:
            parts.append(f"timesteps {self.timesteps[0]}-{self.timesteps[1] - 1}")
        return " ".join(parts)


@dataclass
class CheckReport:
    """What :func:`check_store` found. ``ok`` when no problem was found (leftovers count as problems)."""

    store: str
    deep: bool = False
    repair: bool = False
    problems: list[Problem] = field(default_factory=list)
    objects_checked: int = 0
    bytes_read: int = 0
    repaired: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{store, ok, deep, repair, problems: [{kind, key, array, …}], …}``."""
        d = asdict(self)
        d["ok"] = self.ok
        for p in d["problems"]:
            if p["timesteps"] is not None:
                p["timesteps"] = list(p["timesteps"])
        return d

    def summary(self) -> str:
        """One line: clean, or how many problems of which kinds (and what repair did)."""
        depth = "deep" if self.deep else "shard indexes"
        if self.ok:
            return f"{self.store}: ok ({self.objects_checked} objects checked, {depth})"
        counts: dict[str, int] = {}
        for p in self.problems:
            counts[p.kind] = counts.get(p.kind, 0) + 1
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: KINDS.index(kv[0])))
        tail = (
            "; repaired: rerun convert / downscale / flame to redo what was unmarked" if self.repair
            else "; run 'nersemble-zarr check STORE --repair', then rerun convert / downscale / flame"
        )
        return f"{self.store}: {len(self.problems)} problem(s) ({kinds}; {self.objects_checked} objects checked, {depth}){tail}"


# ---------------------------------------------------------------------------------------------
# Objects: one listing, small reads (local files or fsspec)
# ---------------------------------------------------------------------------------------------


class _Objects:
    """The store's objects as ``key -> size`` (one listing) and ranged reads of them."""

    def __init__(self, loc: StoreLocation) -> None:
        self.loc = loc
        self.bytes_read = 0
        if loc.is_local:
            self.fs = None
            self.root = loc.url.rstrip("/")
        else:
            self.fs, root = loc.filesystem()
            self.root = root.rstrip("/")
        self.sizes = self._list()

    def _list(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        if self.fs is None:
            for folder, _dirs, files in os.walk(self.root):
                for name in files:
                    full = os.path.join(folder, name)
                    try:
                        sizes[os.path.relpath(full, self.root).replace(os.sep, "/")] = os.path.getsize(full)
                    except FileNotFoundError:
                        continue
            return sizes
        prefix = self.root + "/"
        for name, info in self.fs.find(self.root, detail=True).items():
            key = name[len(prefix):] if name.startswith(prefix) else name
            sizes[key] = int(info.get("size") or 0)
        return sizes

    def read(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of object ``key`` (whole object by default)."""
        if self.fs is None:
            with open(os.path.join(self.root, key), "rb") as f:
                if start:
                    f.seek(start)
                data = f.read() if end is None else f.read(end - (start or 0))
        else:
            data = self.fs.cat_file(f"{self.root}/{key}", start=start, end=end)
        return data  # the caller counts it into bytes_read (reads may happen on other processes)

    def write(self, key: str, data: bytes) -> None:
        """Replace object ``key`` whole (temporary name + rename on local disk)."""
        if self.fs is None:
            from ..raw._atomic import write_atomic

            path = Path(self.root) / key
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
        else:
            self.fs.pipe_file(f"{self.root}/{key}", data)

    def delete_tree(self, path: str) -> None:
        """Delete node ``path`` and everything below it."""
        if self.fs is None:
            shutil.rmtree(Path(self.root) / path, ignore_errors=True)
        else:
            try:
                self.fs.rm(f"{self.root}/{path}", recursive=True)
            except FileNotFoundError:
                pass


def _crc32c(data: bytes) -> int:
    try:
        import google_crc32c  # what zarr's crc32c codec uses

        return int(google_crc32c.value(data))
    except ImportError:  # pragma: no cover  (another zarr version)
        import crc32c

        return int(crc32c.crc32c(data))


# ---------------------------------------------------------------------------------------------
# Metadata documents
# ---------------------------------------------------------------------------------------------


def _doc_key(path: str) -> str:
    return f"{path}/zarr.json" if path else "zarr.json"


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _chunk_key(doc: dict[str, Any], coords: Sequence[int]) -> str:
    enc = doc.get("chunk_key_encoding") or {"name": "default"}
    sep = (enc.get("configuration") or {}).get("separator", "/" if enc.get("name") == "default" else ".")
    if enc.get("name") == "v2":
        return sep.join(str(c) for c in coords) if coords else "0"
    return "c" + "".join(f"{sep}{c}" for c in coords)


def _grid(doc: dict[str, Any]) -> tuple[int, ...]:
    """Stored-object shape (the shard shape of a sharded array, else the chunk shape)."""
    return tuple(int(x) for x in doc["chunk_grid"]["configuration"]["chunk_shape"])


def _sharding(doc: dict[str, Any]) -> dict[str, Any] | None:
    codecs = doc.get("codecs") or []
    if len(codecs) == 1 and codecs[0].get("name") == "sharding_indexed":
        return codecs[0].get("configuration") or {}
    return None


def _all_chunks_stored(doc: dict[str, Any]) -> bool:
    """True when the array's (inner) chunks carry crc32c: written by a version that stores every chunk, even
    one equal to the fill value (``schema.WRITE_CONFIG``), so an absent chunk is a lost one."""
    codecs = _sharding(doc)
    chain = (codecs or {}).get("codecs") if codecs is not None else doc.get("codecs")
    return any(c.get("name") == "crc32c" for c in chain or [])


def _n_cells(shape: Sequence[int], grid: Sequence[int]) -> tuple[int, ...]:
    return tuple(math.ceil(s / g) if g else 0 for s, g in zip(shape, grid, strict=True))


def _attrs(doc: dict[str, Any] | None) -> dict[str, Any]:
    return dict((doc or {}).get("attributes") or {})


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """The parts of a node document the consolidated copy must agree with."""
    keys = ("node_type", "attributes", "shape", "data_type", "chunk_grid", "codecs", "fill_value", "dimension_names")
    out = {k: doc.get(k) for k in keys if k in doc}
    out.setdefault("attributes", {})
    return json.loads(json.dumps(out))  # normalise tuples / floats


def _context(path: str) -> dict[str, Any]:
    """benchmark / participant / sequence named by a store path."""
    parts = path.split("/") if path else []
    ctx: dict[str, Any] = {}
    if parts and parts[0] in BENCHMARK_NAMES:
        ctx["benchmark"] = parts[0]
        if len(parts) > 1 and parts[1].isdigit():
            ctx["participant"] = int(parts[1])
            if len(parts) > 2 and parts[2] != schema.CALIBRATION and parts[0] != SVFR:
                ctx["sequence"] = parts[2]
    return ctx


# ---------------------------------------------------------------------------------------------
# The checker
# ---------------------------------------------------------------------------------------------


@dataclass
class _ShardJob:
    array: str
    key: str
    size: int
    sharding: dict[str, Any]
    n_inner: int
    expected: np.ndarray | None  # (n_inner,) bool: inner chunks that must be stored (None: any may be absent)
    camera: str | None
    timesteps: tuple[int, int] | None


@dataclass
class _DeepJob:
    array: str
    key: str
    region: tuple[slice, ...]
    camera: str | None
    timesteps: tuple[int, int] | None


class _Checker:
    def __init__(self, loc: StoreLocation, objects: _Objects, report: CheckReport,
                 benchmarks: set[str] | None, participants: set[int] | None, read_indexes: bool) -> None:
        self.loc = loc
        self.objects = objects
        self.report = report
        self.benchmarks = benchmarks
        self.participants = participants
        self.read_indexes = read_indexes
        self.docs: dict[str, dict[str, Any]] = {}  # path -> the node's own parsed zarr.json
        self.consolidated: dict[str, dict[str, Any]] | None = None
        self.bad_docs: set[str] = set()  # nodes whose own zarr.json is missing or corrupt
        self.shard_jobs: list[_ShardJob] = []
        self.deep_jobs: list[_DeepJob] = []
        self.damaged_camera_cells: set[tuple[str, str]] = set()
        self.known_broken: set[str] = set()  # object keys reported before the objects are read

    # -- helpers ------------------------------------------------------------------------------

    def problem(self, kind: str, key: str, message: str, array: str = "", **extra: Any) -> Problem:
        p = Problem(kind, key, message, array, **{**_context(array or _parent(key)), **extra})
        self.report.problems.append(p)
        return p

    def selected(self, path: str) -> bool:
        ctx = _context(path)
        parts = path.split("/") if path else []
        if self.benchmarks is not None and parts and parts[0] not in self.benchmarks:
            return False
        if self.participants is not None and "participant" in ctx and ctx["participant"] not in self.participants:
            return False
        if self.participants is not None and len(parts) >= 2 and parts[0] in BENCHMARK_NAMES and not parts[1].isdigit():
            return False  # benchmark-wide arrays (flame_faces) only in an unrestricted check
        return True

    def doc(self, path: str) -> dict[str, Any] | None:
        """The node's own document, else the consolidated copy (what the store claims), else None."""
        if path in self.docs:
            return self.docs[path]
        return (self.consolidated or {}).get(path)

    def exists(self, path: str) -> bool:
        return self.doc(path) is not None

    def children(self, path: str, node_type: str | None = None) -> list[str]:
        prefix = f"{path}/" if path else ""
        names = set()
        for p in list(self.docs) + list(self.consolidated or {}):
            if p.startswith(prefix) and p != path and "/" not in p[len(prefix):]:
                d = self.doc(p)
                if node_type is None or (d or {}).get("node_type") == node_type:
                    names.add(p[len(prefix):])
        return sorted(names)

    # -- metadata -----------------------------------------------------------------------------

    def read_documents(self, threads: int) -> None:
        doc_keys = [k for k in self.objects.sizes if (k == "zarr.json" or k.endswith("/zarr.json"))]

        def load(key: str) -> tuple[str, Any, int]:
            data = self.objects.read(key)
            try:
                return key, json.loads(data), len(data)
            except (ValueError, UnicodeDecodeError) as e:
                return key, e, len(data)

        root_doc = None
        loaded = []
        for outcome in run_jobs(doc_keys, load, threads=threads, name="check-metadata"):
            if not outcome.ok:  # not a parse error: the object cannot be read at all
                raise outcome.exception if outcome.exception is not None else CheckError(str(outcome.error))
            key, doc, n = outcome.result
            self.objects.bytes_read += n
            loaded.append((key, doc))
        for key, doc in loaded:
            path = key[: -len("zarr.json")].rstrip("/")
            if isinstance(doc, Exception) or not isinstance(doc, dict):
                self.bad_docs.add(path)
                if self.selected(path):
                    self.problem("corrupt_metadata", key, f"{key}: metadata document does not parse as JSON ({doc}); "
                                 f"the node cannot be opened", array=path)
                continue
            self.docs[path] = doc
            if path == "":
                root_doc = doc
        self.report.objects_checked += len(doc_keys)
        if root_doc is None:
            if "" not in self.bad_docs:
                raise CheckError(f"{self.loc}: no Zarr store found (expected zarr.json at its root)")
            return
        if schema.ROOT_ATTR not in _attrs(root_doc):
            raise CheckError(f"{self.loc}: a Zarr store, but not written by nersemble-zarr (no {schema.ROOT_ATTR!r} attribute)")
        cm = root_doc.get("consolidated_metadata")
        if not isinstance(cm, dict) or not isinstance(cm.get("metadata"), dict):
            self.problem("missing_consolidated", "zarr.json", "zarr.json: the root has no consolidated metadata (readers "
                         "open the tree from it); repair re-consolidates")
            return
        self.consolidated = {k: v for k, v in cm["metadata"].items() if isinstance(v, dict)}

    def compare_consolidated(self) -> None:
        if self.consolidated is None:
            return
        missing = sorted(p for p in self.consolidated if p not in self.docs and self.selected(p))
        reported: list[str] = []
        for path in missing:
            if any(path.startswith(top + "/") for top in reported):
                continue  # below a missing node already reported
            reported.append(path)
            if path in self.bad_docs:
                continue  # corrupt, already reported
            self.bad_docs.add(path)
            cdoc = self.consolidated[path]
            claim = ""
            done = complete_cameras(_attrs(cdoc))
            if done:
                claim = f"; {len(done)} camera(s) are marked complete"
            elif is_complete(_attrs(cdoc)):
                claim = "; it is marked complete"
            self.problem(
                "missing_metadata", _doc_key(path),
                f"{path}: {cdoc.get('node_type', 'node')} described by the consolidated metadata has no zarr.json "
                f"(its folder is missing or incomplete){claim}", array=path,
            )
        for top in reported:  # everything below a missing node is missing too
            for p in self.consolidated:
                if p.startswith(top + "/"):
                    self.bad_docs.add(p)
        stale = [
            p for p, d in self.docs.items()
            if p and self.selected(p) and (p not in self.consolidated or _comparable(d) != _comparable(self.consolidated[p]))
        ]
        if stale:
            stale.sort()
            shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
            self.problem(
                "stale_consolidated", "zarr.json",
                f"zarr.json: the consolidated metadata disagrees with {len(stale)} node(s)' own zarr.json ({shown}); "
                "readers see the old version; repair re-consolidates",
            )

    # -- arrays -------------------------------------------------------------------------------

    def array_ok(self, path: str, what: str, owner: str, **extra: Any) -> bool:
        """True when array ``path`` exists with a readable own document; reports it otherwise."""
        if path in self.docs and self.docs[path].get("node_type") == "array":
            return True
        if path in self.bad_docs:
            return False  # already reported (missing or corrupt zarr.json)
        self.problem("marker", _doc_key(path), f"{owner} is marked complete but its {what} ({path}) is missing",
                     array=path, **extra)
        return False

    def chunks(self, path: str, deep: bool, *, never_fill: bool = False) -> None:
        """The chunks of array ``path`` (in a complete group): present where they must be, decoded if ``deep``.

        A chunk must be present when the array stores every chunk (:func:`_all_chunks_stored`) or when its
        content can never equal the fill value (``never_fill``: calibration matrices, points, vertices, faces).
        """
        doc = self.docs[path]
        if never_fill or _all_chunks_stored(doc):
            shape = doc.get("shape") or []
            for coords in np.ndindex(*_n_cells(shape, _grid(doc))) if shape else [()]:
                key = f"{path}/{_chunk_key(doc, coords)}"
                if key not in self.objects.sizes:
                    self.problem("missing_object", key, f"{key}: chunk of {path} is missing (zarr would read it as "
                                 f"fill value {doc.get('fill_value')!r})", array=path)
        if deep:
            self.deep_array(path)

    def deep_array(self, path: str) -> None:
        doc = self.docs[path]
        shape = doc.get("shape") or []
        grid = _grid(doc)
        for coords in np.ndindex(*_n_cells(shape, grid)) if shape else [()]:
            region = tuple(slice(c * g, min((c + 1) * g, s)) for c, g, s in zip(coords, grid, shape, strict=True))
            key = f"{path}/{_chunk_key(doc, coords)}"
            if key in self.objects.sizes:
                self.deep_jobs.append(_DeepJob(path, key, region, None, None))

    def camera_values(self, seq: str) -> list[str] | None:
        path = f"{seq}/{schema.CAMERA}"
        if path not in self.docs:
            return None
        try:
            import zarr

            arr = zarr.open_array(self.loc.zarr_store(read_only=True), path=path, mode="r", zarr_format=3)
            return [str(c) for c in arr[:]]
        except Exception as e:  # noqa: BLE001  any decode failure is a finding, not a crash
            key = f"{path}/{_chunk_key(self.docs[path], (0,))}"
            self.problem("corrupt_chunk", key, f"{path}: camera coordinate does not read ({type(e).__name__}: {e})",
                         array=path)
            return None

    def frame_array(self, path: str, cameras: list[str] | None, deep: bool) -> None:
        """``images``/``alpha`` (full resolution or a level): the shards of every complete camera."""
        doc = self.docs[path]
        done = complete_cameras(_attrs(doc))
        shape = doc.get("shape") or []
        grid = _grid(doc)
        sharding = _sharding(doc)
        n_cells = _n_cells(shape, grid)
        inner = tuple(int(x) for x in (sharding or {}).get("chunk_shape", grid))
        per_shard = tuple(g // i for g, i in zip(grid, inner, strict=True))
        n_inner = int(np.prod(per_shard)) if sharding else 1
        every = sharding is not None and _all_chunks_stored(doc)
        for serial in done:
            if cameras is None:
                continue  # the camera coordinate is damaged (reported): cameras cannot be named
            if serial not in cameras:
                self.problem("marker", _doc_key(path), f"{path}: complete_cameras lists camera {serial}, which is not "
                             f"a camera of the sequence ({len(cameras)} cameras)", array=path, camera=str(serial))
                continue
            c = cameras.index(serial)
            for rest in np.ndindex(*n_cells[1:]):
                coords = (c, *rest)
                key = f"{path}/{_chunk_key(doc, coords)}"
                t0 = rest[0] * grid[1]
                ts = (t0, min(t0 + grid[1], shape[1]))
                if key not in self.objects.sizes:
                    self.problem("missing_object", key, f"{key}: shard of complete camera {serial} is missing (timesteps "
                                 f"{ts[0]}-{ts[1] - 1} would read as zeros)", array=path, camera=str(serial), timesteps=ts)
                    continue
                if sharding is not None and self.read_indexes:
                    expected = None
                    if every:  # inner chunk l of shard `coords` is inside the array when its origin is
                        local = np.indices(per_shard).reshape(len(per_shard), -1).T
                        origin = (np.asarray(coords) * np.asarray(per_shard) + local) * np.asarray(inner)
                        expected = np.all(origin < np.asarray(shape), axis=1)
                    self.shard_jobs.append(_ShardJob(path, key, self.objects.sizes[key], sharding, n_inner, expected,
                                                     str(serial), ts))
                if deep:
                    region = tuple(slice(x * g, min((x + 1) * g, s)) for x, g, s in zip(coords, grid, shape, strict=True))
                    self.deep_jobs.append(_DeepJob(path, key, region, str(serial), ts))

    def check_shard_index(self, job: _ShardJob) -> tuple[Problem | None, int]:
        """Read only the index of one shard; returns the problem, if any (not yet recorded), and the bytes read."""
        reads: list[bytes] = []
        problem = self._shard_index_problem(job, reads)
        return problem, sum(len(r) for r in reads)

    def _shard_index_problem(self, job: _ShardJob, reads: list[bytes]) -> Problem | None:
        codecs = job.sharding.get("index_codecs") or []
        crc = any(c.get("name") == "crc32c" for c in codecs)
        little = all((c.get("configuration") or {}).get("endian", "little") == "little"
                     for c in codecs if c.get("name") == "bytes")
        index_size = 16 * job.n_inner + (4 if crc else 0)
        ctx = {"array": job.array, "camera": job.camera, "timesteps": job.timesteps}
        where = f"camera {job.camera} timesteps {job.timesteps[0]}-{job.timesteps[1] - 1}" if job.timesteps else ""
        if job.size < index_size:
            return Problem("truncated", job.key, f"{job.key}: shard of {where} is {job.size} bytes, shorter than its "
                           f"{index_size}-byte index (truncated)", **ctx)
        at_end = job.sharding.get("index_location", "end") == "end"
        raw = self.objects.read(job.key, job.size - index_size, job.size) if at_end else self.objects.read(job.key, 0, index_size)
        reads.append(raw)
        if len(raw) != index_size:
            return Problem("truncated", job.key, f"{job.key}: read {len(raw)} of {index_size} index bytes (truncated)", **ctx)
        body = raw[:-4] if crc else raw
        if crc and _crc32c(body) != int.from_bytes(raw[-4:], "little"):
            return Problem("corrupt_index", job.key, f"{job.key}: shard index checksum (crc32c) of {where} does not "
                           f"verify: the shard is truncated or corrupted ({job.size} bytes)", **ctx)
        entries = np.frombuffer(body, dtype="<u8" if little else ">u8").reshape(-1, 2)
        data_start, data_end = (0, job.size - index_size) if at_end else (index_size, job.size)
        for i, (off, n) in enumerate(entries):
            if off == _EMPTY and n == _EMPTY:
                if job.expected is not None and job.expected[i]:
                    return Problem("missing_object", job.key, f"{job.key}: inner chunk {i} of {where} is absent from "
                                   "the shard index (this array stores every chunk): it would read as zeros", **ctx)
                continue
            if off < data_start or off + n > data_end:
                return Problem("corrupt_index", job.key, f"{job.key}: inner chunk {i} of {where} lies at bytes {off}-{off + n}, "
                               f"outside the shard's {data_end - data_start} data bytes (truncated or corrupted)", **ctx)
        return None

    # -- the tree -----------------------------------------------------------------------------

    def walk(self, deep: bool) -> None:
        for b in self.children("", "group"):
            if not self.selected(b):
                continue
            faces = f"{b}/{schema.FLAME_FACES}"
            if faces in self.docs and is_complete(_attrs(self.docs[faces])) and self.participants is None:
                self.chunks(faces, deep, never_fill=True)
            for p in self.children(b, "group"):
                ppath = f"{b}/{p}"
                if not p.isdigit() or not self.selected(ppath):
                    continue
                if b == SVFR:
                    self.svfr_participant(ppath, deep)
                    continue
                for s in self.children(ppath, "group"):
                    path = f"{ppath}/{s}"
                    if path in self.bad_docs:
                        continue
                    if s == schema.CALIBRATION:
                        self.calibration(path, deep)
                    else:
                        self.sequence(path, deep)

    def svfr_participant(self, path: str, deep: bool) -> None:
        """An SVFR participant group (images and the key coordinates): every chunk present once it is complete."""
        if not self.complete_group(path):
            return
        for name in (schema.SVFR_IMAGE, schema.SVFR_SEQUENCE, schema.SVFR_TIMESTEP, schema.SVFR_SERIAL, schema.IMAGES):
            apath = f"{path}/{name}"
            if self.array_ok(apath, f"{name} array", f"{path} (svfr images)"):
                self.chunks(apath, deep, never_fill=True)

    def complete_group(self, path: str) -> bool:
        return path in self.docs and is_complete(_attrs(self.docs[path]))

    def member(self, path: str, name: str) -> str:
        """Path of the array ``name`` (a current name) in group ``path``, under its format-1 name in a format-1
        store (:func:`~nersemble_zarr.read.resolver.stored_name`)."""
        return f"{path}/{stored_name(self.children(path, 'array'), name)}"

    def calibration(self, path: str, deep: bool) -> None:
        if not self.complete_group(path):
            return
        owner = f"{path} (calibration)"
        for name in (schema.CAMERA, schema.WORLD_2_CAM, schema.INTRINSICS, schema.SPLIT):
            apath = self.member(path, name)
            if self.array_ok(apath, f"{name} array", owner):
                self.chunks(apath, deep, never_fill=name != schema.SPLIT)

    def sequence(self, seq: str, deep: bool) -> None:
        arrays = self.children(seq, "array")
        groups = self.children(seq, "group")
        has_frames = any(a in arrays for a in (schema.IMAGES, schema.ALPHA))
        cameras = None
        if has_frames:
            for coord in (schema.CAMERA, schema.TIMESTEP):
                cpath = f"{seq}/{coord}"
                if coord not in arrays:
                    self.problem("marker", _doc_key(cpath), f"{seq}: holds frames but its {coord} coordinate is missing",
                                 array=cpath)
                elif cpath in self.docs:
                    self.chunks(cpath, deep)
            cameras = self.camera_values(seq)
        for name in (schema.IMAGES, schema.ALPHA):
            apath = f"{seq}/{name}"
            if name in arrays and apath in self.docs:
                self.frame_array(apath, cameras, deep)
        for g in groups:
            gpath = f"{seq}/{g}"
            if gpath in self.bad_docs:
                continue
            m = _LEVEL.match(g)
            if m:
                self.level(gpath, int(m.group(1)), cameras, deep)
            elif g == schema.POINTCLOUDS:
                self.pointclouds(gpath, deep)
            elif g.startswith("tracking_v"):
                self.tracking(gpath, deep)
            elif g.startswith("flame_v"):
                self.flame(seq, gpath, g, deep)

    def level(self, path: str, factor: int, cameras: list[str] | None, deep: bool) -> None:
        for name in (schema.IMAGES, schema.ALPHA):  # complete cameras of a level in progress are checked too
            apath = f"{path}/{name}"
            if apath in self.docs:
                self.frame_array(apath, cameras, deep)
        if not self.complete_group(path):
            return
        attrs = _attrs(self.docs[path])
        owner = f"level 1/{factor} ({path})"
        wrong = [k for k, v in (("factor", factor), ("scale", 1.0 / factor)) if attrs.get(k) is None or
                 not math.isclose(float(attrs[k]), v)]
        wrong += [k for k in ("height", "width") if not isinstance(attrs.get(k), int)]
        if wrong:
            self.problem("marker", _doc_key(path), f"{owner} is marked complete but its attrs {', '.join(wrong)} are "
                         "missing or wrong", array=path)
        n_cam = len(cameras) if cameras is not None else None
        kpath = f"{path}/{schema.INTRINSICS}"
        if self.array_ok(kpath, "intrinsics", owner):
            shape = self.docs[kpath].get("shape")
            if n_cam is not None and list(shape or []) != [n_cam, 3, 3]:
                self.problem("marker", _doc_key(kpath), f"{kpath}: shape {shape}, expected [{n_cam}, 3, 3]", array=kpath)
            else:
                self.chunks(kpath, deep, never_fill=True)
        for name in (schema.IMAGES, schema.ALPHA):
            apath = f"{path}/{name}"
            if not self.array_ok(apath, name, owner):
                continue
            done = set(complete_cameras(_attrs(self.docs[apath])))
            if cameras is not None and not set(cameras) <= done:
                missing = [c for c in cameras if c not in done]
                self.problem("marker", _doc_key(apath), f"{owner} is marked complete but {name} lists only "
                             f"{len(cameras) - len(missing)}/{len(cameras)} cameras complete (missing {', '.join(missing[:3])}"
                             f"{' …' if len(missing) > 3 else ''})", array=apath)

    def pointclouds(self, path: str, deep: bool) -> None:
        if not self.complete_group(path):
            return
        owner = f"{path} (point clouds)"
        names = [schema.POINTS, schema.COLORS, schema.OFFSETS, schema.CLOUD_TIMESTEP]
        if _attrs(self.docs[path]).get("has_normals"):
            names.append(schema.NORMALS)
        ok = {n: self.array_ok(f"{path}/{n}", f"{n} array", owner) for n in names}
        shapes = {n: (self.docs[f"{path}/{n}"].get("shape") or [0])[0] for n in names if ok[n]}
        for n in (schema.COLORS, schema.NORMALS):
            if n in shapes and schema.POINTS in shapes and shapes[n] != shapes[schema.POINTS]:
                self.problem("marker", _doc_key(f"{path}/{n}"), f"{path}/{n}: {shapes[n]} rows, expected one per point "
                             f"({shapes[schema.POINTS]})", array=f"{path}/{n}")
        if schema.OFFSETS in shapes and schema.CLOUD_TIMESTEP in shapes and shapes[schema.OFFSETS] != shapes[schema.CLOUD_TIMESTEP] + 1:
            self.problem("marker", _doc_key(f"{path}/{schema.OFFSETS}"), f"{path}/{schema.OFFSETS}: {shapes[schema.OFFSETS]} "
                         f"offsets for {shapes[schema.CLOUD_TIMESTEP]} clouds (expected clouds + 1)", array=f"{path}/{schema.OFFSETS}")
        for n in names:
            if ok[n]:
                self.chunks(f"{path}/{n}", deep, never_fill=n == schema.POINTS)

    def tracking(self, path: str, deep: bool) -> None:
        if not self.complete_group(path):
            return
        owner = f"{path} (FLAME tracking)"
        n_frames = None
        tpath = self.member(path, schema.TIMESTEP)
        if self.array_ok(tpath, "timestep array", owner):
            n_frames = (self.docs[tpath].get("shape") or [0])[0]
            self.chunks(tpath, deep)
        for name, (dims, _dtype) in schema.TRACKING_VARIABLES.items():
            apath = f"{path}/{name}"
            if not self.array_ok(apath, f"{name} array", owner):
                continue
            shape = self.docs[apath].get("shape") or []
            if dims and dims[0] == schema.TIMESTEP and n_frames is not None and (not shape or shape[0] != n_frames):
                self.problem("marker", _doc_key(apath), f"{apath}: shape {shape}, expected {n_frames} frames like "
                             f"{tpath}", array=apath)
            self.chunks(apath, deep)

    def flame(self, seq: str, path: str, name: str, deep: bool) -> None:
        if not self.complete_group(path):
            return
        owner = f"{path} (FLAME meshes)"
        version = name[len("flame_v"):]
        tpath = f"{seq}/tracking_v{version}"
        n_frames = None
        if not self.exists(tpath) or tpath in self.bad_docs:
            self.problem("marker", _doc_key(path), f"{owner} is marked complete but the tracking it was evaluated from "
                         f"({tpath}) is not in the store", array=path)
        elif not self.complete_group(tpath):
            self.problem("marker", _doc_key(path), f"{owner} is marked complete but its tracking {tpath} is not "
                         "(the meshes may come from other tracking)", array=path)
        elif self.member(tpath, schema.TIMESTEP) in self.docs:
            n_frames = (self.docs[self.member(tpath, schema.TIMESTEP)].get("shape") or [0])[0]
        vpath = f"{path}/vertices"
        if self.array_ok(vpath, "vertices", owner):
            shape = self.docs[vpath].get("shape") or []
            if n_frames is not None and (not shape or shape[0] != n_frames):
                self.problem("marker", _doc_key(vpath), f"{vpath}: {shape[0] if shape else 0} frames of vertices, "
                             f"the tracking has {n_frames}", array=vpath)
            self.chunks(vpath, deep, never_fill=True)
        if self.array_ok(self.member(path, schema.TIMESTEP), "timestep array", owner):
            self.chunks(self.member(path, schema.TIMESTEP), deep)
        b = seq.split("/")[0]
        faces = f"{b}/{schema.FLAME_FACES}"
        if faces not in self.bad_docs and not (faces in self.docs and is_complete(_attrs(self.docs[faces]))):
            self.problem("marker", _doc_key(faces), f"{owner} is marked complete but the benchmark's faces ({faces}) "
                         "are missing or incomplete", array=faces)

    # -- reading jobs -------------------------------------------------------------------------

    def read_objects(self, progress: bool | Callable[[int, int], None], *, threads: int, workers: int | None = None,
                     scheduler: Any = None) -> None:
        """Run the shard-index and (deep) chunk-decode jobs (:func:`_read_object`) as one
        :func:`~nersemble_zarr.jobs.runner.run_jobs` call: ``threads`` threads here, ``workers`` local worker
        processes or the cluster at ``scheduler`` (this checker is sent to each worker once); ``progress`` counts
        objects. A chunk of a shard already reported (from its index, or by the walk) is not reported again."""
        self.known_broken = {p.key for p in self.report.problems}
        found: list[Problem] = []

        def collect(outcome: JobOutcome) -> None:
            if not outcome.ok:  # an object that cannot be read at all (e.g. the store went away) stops the check
                raise outcome.exception if outcome.exception is not None else CheckError(str(outcome.error))
            problem, n = outcome.result
            self.objects.bytes_read += n
            if problem is not None:
                found.append(problem)

        jobs: list[_ShardJob | _DeepJob] = [*self.shard_jobs, *self.deep_jobs]
        run_jobs(jobs, _read_object, shared=self, workers=workers, scheduler=scheduler, threads=threads,
                 on_result=collect, progress=progress, desc="checking", unit="object", name="check")
        from_index = {p.key for p in found if p.kind != "corrupt_chunk"}
        for problem in found:
            if problem.kind == "corrupt_chunk" and problem.key in from_index:
                continue  # already reported from its index
            problem.__dict__.update(_context(problem.array))
            self.report.problems.append(problem)
        self.report.objects_checked += len(jobs)

    def open_array(self, path: str) -> Any:
        """The array at ``path`` for decoding, opened once per process (and checker)."""
        import zarr

        cache = self.__dict__.setdefault("_arrays", {})
        if path not in cache:
            cache[path] = zarr.open_array(self.loc.zarr_store(read_only=True), path=path, mode="r", zarr_format=3)
        return cache[path]


def _read_object(job: _ShardJob | _DeepJob, checker: _Checker) -> tuple[Problem | None, int]:
    """One job of :meth:`_Checker.read_objects`, where the jobs run: a shard's index (problem, bytes read), or
    the decode of one chunk (problem, 0: zarr reads it)."""
    if isinstance(job, _ShardJob):
        return checker.check_shard_index(job)
    if job.key in checker.known_broken:
        return None, 0  # already reported
    try:
        checker.open_array(job.array)[job.region]
        return None, 0
    except Exception as e:  # noqa: BLE001  a chunk that does not decode is a finding
        where = f" of camera {job.camera} timesteps {job.timesteps[0]}-{job.timesteps[1] - 1}" if job.timesteps else ""
        msg = str(e).splitlines()[0][:200] if str(e) else ""
        return Problem("corrupt_chunk", job.key, f"{job.key}: chunk data{where} does not verify or decode "
                       f"({type(e).__name__}: {msg})", job.array, camera=job.camera, timesteps=job.timesteps), 0


# ---------------------------------------------------------------------------------------------
# Repair
# ---------------------------------------------------------------------------------------------


def _unit_group(path: str) -> str | None:
    """The unit group (calibration, pointclouds, tracking_vN, flame_vN, level_f) ``path`` lies in, if any."""
    parts = path.split("/")
    if parts[0] == SVFR and len(parts) >= 3 and parts[1].isdigit():  # an SVFR participant is one unit
        return "/".join(parts[:2])
    if len(parts) >= 3 and parts[2] == schema.CALIBRATION:
        return "/".join(parts[:3])
    if len(parts) >= 4 and (parts[3] == schema.POINTCLOUDS or parts[3].startswith(_UNIT_GROUPS[1:]) or _LEVEL.match(parts[3])):
        return "/".join(parts[:4])
    return None


def _plan_repair(problems: list[Problem], checker: _Checker) -> list[tuple[str, str, Any]]:
    """``[(action, path, arg)]``: delete / restore / unmark_camera / unmark_group / leftover; sets ``p.repair``."""
    actions: list[tuple[str, str, Any]] = []
    for p in problems:
        path = p.array
        group = _unit_group(path) if path else None
        is_level = group is not None and _LEVEL.match(_name(group)) is not None
        if p.kind == "leftover":
            actions.append(("leftover", p.key, None))
            p.repair = "removed"
        elif p.kind in ("missing_consolidated", "stale_consolidated"):
            p.repair = "re-consolidated"
        elif p.kind in ("missing_metadata", "corrupt_metadata"):
            if path == "":
                p.repair = "not repairable: the root zarr.json is damaged; convert into a new store"
            elif is_level:
                actions.append(("delete", group, None))
                p.repair = f"deleted {group} (downscale recomputes it)"
            elif group is not None:
                actions.append(("delete", group if path == group else path, None))
                if path != group:
                    actions.append(("unmark_group", group, None))
                p.repair = f"deleted {path}, unmarked {group}" if path != group else f"deleted {group} (rerun its writer)"
            elif _name(path) in (schema.IMAGES, schema.ALPHA, schema.CAMERA, schema.TIMESTEP, schema.FLAME_FACES):
                actions.append(("delete", path, None))
                p.repair = f"deleted {path} (convert / flame recreate it)"
            elif checker.consolidated and path in checker.consolidated:
                actions.append(("restore", path, None))
                p.repair = f"restored {path}/zarr.json from the consolidated metadata"
            else:
                p.repair = f"not repairable: no copy of {path}/zarr.json; convert into a new store"
        elif p.camera is not None and _name(path) in (schema.IMAGES, schema.ALPHA) and p.kind != "marker":
            actions.append(("unmark_camera", path, p.camera))
            if is_level:
                actions.append(("unmark_group", group, None))
            p.repair = f"unmarked camera {p.camera} of {path}" + (f" and {group}" if is_level else "")
        elif is_level:
            actions.append(("delete", group, None))
            p.repair = f"deleted {group} (downscale recomputes it)"
        elif group is not None:
            actions.append(("unmark_group", group, None))
            p.repair = f"unmarked {group}"
        elif path.endswith(schema.FLAME_FACES) or _name(path) in (schema.CAMERA, schema.TIMESTEP):
            actions.append(("delete", path, None))
            p.repair = f"deleted {path} (convert / flame recreate it)"
        elif _name(path) in (schema.IMAGES, schema.ALPHA):  # complete_cameras naming an unknown camera
            actions.append(("drop_unknown_cameras", path, None))
            p.repair = f"removed unknown cameras from {path} complete_cameras"
        else:
            p.repair = "nothing to unmark"
    return actions


def _apply_repair(loc: StoreLocation, objects: _Objects, checker: _Checker, actions: list[tuple[str, str, Any]]) -> list[str]:
    import zarr

    from ..storage.leftovers import remove_leftovers

    done: list[str] = []
    removed = remove_leftovers(loc)
    if removed:
        done.append(f"removed {len(removed)} leftover temporary file(s)")
    deleted: list[str] = []
    for action, path, _ in actions:
        if action == "delete" and not any(path == d or path.startswith(d + "/") for d in deleted):
            objects.delete_tree(path)
            deleted.append(path)
            done.append(f"deleted {path}")
    for action, path, _ in actions:
        if action == "restore":
            doc = dict(checker.consolidated[path])
            doc.pop("consolidated_metadata", None)
            if is_complete(_attrs(doc)):  # restored, not verified: a rerun of its writer redoes it
                doc["attributes"] = unmarked_attrs(_attrs(doc))
            objects.write(_doc_key(path), json.dumps(doc, indent=2).encode())
            done.append(f"restored {_doc_key(path)}")
    zstore = loc.zarr_store()
    gone = lambda p: any(p == d or p.startswith(d + "/") for d in deleted)  # noqa: E731
    unmarked: set[tuple[str, Any]] = set()
    for action, path, arg in actions:
        if gone(path) or (action, path, arg) in unmarked:
            continue
        unmarked.add((action, path, arg))
        if action == "unmark_camera":
            unmark_cameras(zarr.open_array(zstore, path=path, mode="r+", zarr_format=3), [arg])
            done.append(f"unmarked camera {arg} of {path}")
        elif action == "unmark_group" and path in checker.docs:
            unmark(zarr.open_group(zstore, path=path, mode="r+", zarr_format=3))
            done.append(f"unmarked {path}")
        elif action == "drop_unknown_cameras":
            cameras = checker.camera_values(_parent(path)) or []
            arr = zarr.open_array(zstore, path=path, mode="r+", zarr_format=3)
            unmark_cameras(arr, [c for c in complete_cameras(arr) if c not in cameras])
            done.append(f"dropped unknown cameras from {path}")
    if "" in checker.docs:
        consolidate(zstore)
        done.append("re-consolidated metadata")
    return done


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def _selection(benchmarks: Iterable[str] | None, participants: Iterable[int] | None) -> tuple[set[str] | None, set[int] | None]:
    bset = None if not benchmarks else {str(b) for b in benchmarks}
    for b in bset or ():
        if b not in BENCHMARK_NAMES:
            raise SelectionError(f"unknown benchmark {b!r}; valid: {', '.join(BENCHMARK_NAMES)}")
    pset = None if not participants else {int(p) for p in participants}
    return bset, pset


def check_store(
    store: str | os.PathLike,
    *,
    deep: bool = False,
    repair: bool = False,
    benchmarks: Iterable[str] | None = None,
    participants: Iterable[int] | None = None,
    read_indexes: bool = True,
    storage_options: dict[str, Any] | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    threads: int = 8,
    progress: bool | Callable[[int, int], None] = False,
) -> CheckReport:
    """Check the store at ``store`` (local path or fsspec URL) without raw data; see the module docstring.

    ``deep``: also read and decode every chunk of what is marked complete. ``repair``: remove leftovers and
    unmark / delete what is damaged (under the store's writer lock), then re-consolidate; rerunning convert,
    downscale and flame redoes exactly that. ``benchmarks`` / ``participants``: check only these (the root's
    consolidated metadata is always checked). ``read_indexes=False``: listing and metadata only (what
    ``info`` uses; no object is read besides ``zarr.json``). ``threads``: threads reading objects here
    (default 8: the reads are small); ``workers``: read shard indexes and decode chunks on that many local
    worker processes instead, ``scheduler``: on the dask cluster at that address (its workers must reach the
    store); metadata documents are always read here. All through :func:`~nersemble_zarr.jobs.runner.run_jobs`.
    ``progress``: True for a bar on stderr, or a callback ``(objects done, total)``.

    Returns the :class:`CheckReport` (``report.ok`` when clean). Raises :class:`CheckError` when there is no
    nersemble-zarr store at ``store`` and :class:`~nersemble_zarr.core.errors.SelectionError` for a selection that
    names an unknown benchmark or matches nothing in the store.
    """
    started = time.perf_counter()
    bset, pset = _selection(benchmarks, participants)
    loc = StoreLocation.parse(store, storage_options)
    objects = _Objects(loc)
    if not objects.sizes:
        raise CheckError(f"{loc}: no Zarr store found (expected zarr.json at its root)")
    report = CheckReport(store=str(store), deep=deep, repair=repair)
    checker = _Checker(loc, objects, report, bset, pset, read_indexes)
    threads = max(1, int(threads))
    leftovers = sorted(k for k in objects.sizes if LEFTOVER_PATTERN.search(k))
    for key in leftovers:
        objects.sizes.pop(key)
    checker.read_documents(threads)
    if bset is not None or pset is not None:
        paths = [p for p in list(checker.docs) + list(checker.consolidated or {}) if p and "/" in p]
        if not any(checker.selected(p) and len(p.split("/")) >= 2 and p.split("/")[1].isdigit() for p in paths):
            raise SelectionError(
                f"{loc}: no participant of the selection ({', '.join(sorted(bset or BENCHMARK_NAMES))}"
                f"{'; participants ' + ', '.join(map(str, sorted(pset))) if pset else ''}) is in the store"
            )
    for key in leftovers:
        if checker.selected(_parent(key)):
            checker.problem("leftover", key, f"{key}: temporary file left by a killed zarr write (harmless; "
                            "repair or the next writer removes it)")
    checker.compare_consolidated()
    checker.walk(deep)
    checker.read_objects(progress, threads=threads, workers=workers, scheduler=scheduler)
    report.problems.sort(key=lambda p: (KINDS.index(p.kind), p.key))
    report.bytes_read = objects.bytes_read
    if repair and report.problems:
        from ..storage.lock import StoreLock

        actions = _plan_repair(report.problems, checker)
        with StoreLock(loc, operation="check --repair"):
            report.repaired = _apply_repair(loc, objects, checker, actions)
    report.seconds = time.perf_counter() - started
    return report


def format_report(report: CheckReport) -> str:
    """The problems as a table (kind, where, object, message[, repair]) and the summary line."""
    if report.ok:
        return report.summary()
    rows = [("KIND", "WHERE", "OBJECT", "PROBLEM")]
    for p in report.problems:
        msg = p.message[len(p.key) + 2:] if p.message.startswith(p.key + ": ") else p.message
        if report.repair:
            msg += f"  [repair: {p.repair or '-'}]"
        rows.append((p.kind, p.where() or "-", p.key, msg))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3] for r in rows]
    lines.append(report.summary())
    return "\n".join(line.rstrip() for line in lines)
