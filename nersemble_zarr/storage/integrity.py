"""The integrity guard every reader of this package passes through: a missing or damaged object is an error.

zarr 3.1 fills a missing chunk or shard with the array's fill value (zarr-python issue 486), and a
bit flip inside a compressed chunk may decode to wrong values. Readers here never serve either:

- :class:`GuardedStore` wraps the store a reader opens (local or fsspec; picklable for dask.distributed)
  and turns a missing chunk/shard object (any non-metadata key whose read finds nothing) into
  :class:`MissingObjectError`. With zarr >= 3.2, arrays are also read with ``read_missing_chunks=False``.
- :func:`open_root` refuses a store whose root ``zarr.json`` is unreadable or lacks consolidated
  metadata; :func:`check_arrays` refuses an array whose ``zarr.json`` is gone (its folder deleted while
  the consolidated metadata still lists it) or corrupt.
- :class:`GuardedArray` reads a zarr array and turns every failure of the store or of decoding (crc32c
  mismatch, truncated shard, broken shard index) into :class:`MissingObjectError`/:class:`CorruptObjectError`
  naming the store, the array, the camera serial(s) and timestep range of the damaged object and its key.
  :func:`guard_dataset` puts one behind every variable of a lazily opened ``xarray.Dataset`` (one dask
  chunk per stored chunk stays).

Writers keep the unguarded store: they create objects, and zarr probes for absent ones while writing.
Plain ``zarr``/``xarray`` without this package read stores without any of these checks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype, default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import WrapperStore

from ..core.errors import CorruptObjectError, MissingObjectError, NersembleZarrError, StoreIntegrityError

#: Object names that hold metadata: zarr probes for absent ones, so only these may read as absent.
METADATA_NAMES = frozenset({"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"})

#: zarr >= 3.2 raises this (config ``read_missing_chunks=False``) instead of filling a missing chunk.
_CHUNK_NOT_FOUND: tuple[type[BaseException], ...] = tuple(
    e for e in (getattr(zarr.errors, "ChunkNotFoundError", None),) if isinstance(e, type)
)
#: True where zarr's ArrayConfig has ``read_missing_chunks`` (zarr >= 3.2).
#: Errors that mean "not there" or "bad request", not damage: callers handle them; the guard passes them on.
_PASS_THROUGH: tuple[type[BaseException], ...] = (
    KeyboardInterrupt, MemoryError, LookupError, TypeError, FileNotFoundError, NersembleZarrError,
    *(e for e in (getattr(zarr.errors, n, None) for n in ("NodeNotFoundError", "GroupNotFoundError", "ArrayNotFoundError"))
      if isinstance(e, type)),
)
HAS_READ_MISSING_CHUNKS = "read_missing_chunks" in {
    f.name for f in dataclasses.fields(zarr.core.array_spec.ArrayConfig)
}


def is_metadata_key(key: str) -> bool:
    """True for a metadata document key (``.../zarr.json`` and the zarr v2 names)."""
    return key.rsplit("/", 1)[-1] in METADATA_NAMES


def _check_hint(store: str) -> str:
    return f"run 'nersemble-zarr check {store}' to list every damaged object"


class GuardedStore(WrapperStore[Store]):
    """A read store that raises :class:`MissingObjectError` for a chunk or shard object that is absent.

    ``name`` is how errors call the store (the path or URL the user passed). Metadata keys
    (``zarr.json``) may still read as absent: zarr probes for them when it opens nodes.
    """

    def __init__(self, store: Store, name: str | None = None) -> None:
        super().__init__(store)
        self.name = name if name is not None else str(store)

    def _with_store(self, store: Store) -> "GuardedStore":
        return type(self)(store, self.name)

    def __repr__(self) -> str:
        return f"GuardedStore({self.name!r})"

    def __str__(self) -> str:
        return self.name

    def _missing(self, key: str) -> MissingObjectError:
        err = MissingObjectError(
            f"{self.name}: object {key} is missing (deleted, or never written): the store is damaged; "
            f"{_check_hint(self.name)}"
        )
        err.key = key  # type: ignore[attr-defined]
        err.store_name = self.name  # type: ignore[attr-defined]
        return err

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        buf = await self._store.get(key, prototype, byte_range)
        if buf is None and not is_metadata_key(key):
            raise self._missing(key)
        return buf

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        key_ranges = list(key_ranges)
        values = await self._store.get_partial_values(prototype, key_ranges)
        for (key, _), value in zip(key_ranges, values, strict=True):
            if value is None and not is_metadata_key(key):
                raise self._missing(key)
        return values

    async def _get_many(
        self, requests: Iterable[tuple[str, BufferPrototype, ByteRequest | None]]
    ) -> AsyncGenerator[tuple[str, Buffer | None], None]:
        for key, prototype, byte_range in requests:
            yield key, await self.get(key, prototype, byte_range)


def guard_store(store: Store, name: str | None = None) -> GuardedStore:
    """``store`` behind a :class:`GuardedStore` (returned as is when it already is one)."""
    if isinstance(store, GuardedStore):
        return store
    return GuardedStore(store, name)


def store_name(store: Any) -> str:
    """How errors call a store: the name of a :class:`GuardedStore`, else the store's own ``str``."""
    return store.name if isinstance(store, GuardedStore) else str(store)


def _inner(store: Store) -> Store:
    return store._store if isinstance(store, GuardedStore) else store


# ---------------------------------------------------------------------------------------------
# Metadata: the root document and each array's zarr.json
# ---------------------------------------------------------------------------------------------


async def _read_json(store: Store, key: str) -> tuple[str, Any]:
    """``("ok", doc)``, ``("missing", None)`` or ``("corrupt", reason)`` for the JSON document ``key``."""
    try:
        buf = await store.get(key, default_buffer_prototype())
    except FileNotFoundError:
        buf = None
    if buf is None:
        return "missing", None
    try:
        doc = json.loads(buf.to_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        return "corrupt", f"not valid JSON: {e}"
    if not isinstance(doc, dict) or "node_type" not in doc:
        return "corrupt", "not a Zarr v3 metadata document (no node_type)"
    return "ok", doc


def check_root(store: Store, *, consolidated: bool = True) -> bool:
    """Refuse a store whose root ``zarr.json`` is corrupt or (``consolidated=True``, every store this
    package writes) lacks consolidated metadata.

    Returns ``False`` when there is no root ``zarr.json`` at all (not a store: the caller says so),
    ``True`` when the root is sound. Raises :class:`CorruptObjectError` / :class:`StoreIntegrityError`.
    """
    name = store_name(store)
    state, doc = sync(_read_json(_inner(store), "zarr.json"))
    if state == "missing":
        return False
    if state == "corrupt":
        raise CorruptObjectError(f"{name}: the root metadata zarr.json is corrupt ({doc}); {_check_hint(name)}")
    if doc.get("node_type") != "group":
        return True  # an array at the root: not one of our stores; the caller's open says so
    if consolidated and not isinstance(doc.get("consolidated_metadata"), dict):
        raise StoreIntegrityError(
            f"{name}: the root zarr.json has no consolidated metadata (a convert/downscale/flame run did not "
            f"finish, or the store was edited); {_check_hint(name)}, then rerun the command that wrote it"
        )
    return True


def open_root(store: Store) -> zarr.Group | None:
    """The root group of a guarded store, read through its consolidated metadata (checked by
    :func:`check_root`); ``None`` when the store has no root ``zarr.json``."""
    if not check_root(store):
        return None
    with reading(store_name(store), "zarr.json"):
        return zarr.open_group(store, mode="r", zarr_format=3, use_consolidated=True)


def check_arrays(group: zarr.Group, names: Iterable[str] | None = None) -> None:
    """Refuse arrays of ``group`` (default: all its member arrays) whose ``zarr.json`` is missing (the
    array's folder was deleted while the consolidated metadata still lists it) or corrupt. One concurrent
    batch of small reads."""
    store = group.store
    prefix = f"{group.path}/" if group.path else ""
    names = sorted(group.array_keys()) if names is None else list(names)
    if not names:
        return
    keys = [f"{prefix}{n}/zarr.json" for n in names]

    async def read_all() -> list[tuple[str, Any]]:
        return await asyncio.gather(*(_read_json(_inner(store), k) for k in keys))

    name = store_name(store)
    for key, (state, detail) in zip(keys, sync(read_all()), strict=True):
        array = key[: -len("/zarr.json")]
        if state == "missing":
            raise MissingObjectError(
                f"{name}: array {array} is missing (its {key} is gone, so its folder was deleted, while the "
                f"consolidated metadata still lists it); {_check_hint(name)}"
            )
        if state == "corrupt":
            raise CorruptObjectError(f"{name}: array {array}: its metadata {key} is corrupt ({detail}); {_check_hint(name)}")


@contextmanager
def reading(store: str, what: str) -> Iterator[None]:
    """Turn any store or decode failure while reading ``what`` (array/group path) into a
    :class:`StoreIntegrityError` naming both; integrity errors raised inside pass unchanged."""
    try:
        yield
    except StoreIntegrityError:
        raise
    except _CHUNK_NOT_FOUND as e:
        raise MissingObjectError(f"{store}: {what}: an object is missing ({e}); {_check_hint(store)}") from None
    except _PASS_THROUGH:
        raise
    except Exception as e:  # noqa: BLE001 - zarr/numcodecs/fsspec raise assorted decode errors
        raise CorruptObjectError(
            f"{store}: {what} cannot be read ({type(e).__name__}: {_first_line(e)}); {_check_hint(store)}"
        ) from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else ""


# ---------------------------------------------------------------------------------------------
# Reading arrays
# ---------------------------------------------------------------------------------------------


def _ranges(sel: Any, shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """Per dim the ``(first, last)`` index a basic selection touches (whole range where unknown)."""
    if not isinstance(sel, tuple):
        sel = (sel,)
    if any(s is Ellipsis for s in sel):
        i = next(i for i, s in enumerate(sel) if s is Ellipsis)
        sel = sel[:i] + (slice(None),) * (len(shape) - len(sel) + 1) + sel[i + 1:]
    sel = sel + (slice(None),) * (len(shape) - len(sel))
    out = []
    for s, n in zip(sel, shape):
        if isinstance(s, (int, np.integer)):
            i = int(s) + (n if s < 0 else 0)
            out.append((i, i))
        elif isinstance(s, slice):
            r = range(*s.indices(n))
            out.append((min(r), max(r)) if len(r) else (0, -1))
        else:
            idx = np.asarray(s).reshape(-1)
            out.append((int(idx.min()), int(idx.max())) if idx.size else (0, -1))
    return out


class GuardedArray:
    """A zarr array read so that every failure names the damaged object.

    ``arr[sel]`` (basic or integer-list selection) returns what zarr returns, or raises
    :class:`MissingObjectError` (an object is absent) / :class:`CorruptObjectError` (an object fails its
    crc32c, is truncated, or does not decode) naming the store, the array, the object key and, through
    ``coords`` (``{dim name: labels}``, e.g. ``{"camera": serials, "timestep": timesteps}``), the
    camera serial(s) and timestep range the object holds. Picklable (dask.distributed).
    """

    def __init__(self, array: zarr.Array, coords: Mapping[str, Sequence[Any]] | None = None):
        if HAS_READ_MISSING_CHUNKS:  # zarr >= 3.2: zarr itself raises on a missing chunk too
            array = array.with_config({"read_missing_chunks": False})
        self.array = array
        self.coords = {k: list(v) for k, v in (coords or {}).items()}
        self.shape = tuple(array.shape)
        self.dtype = array.dtype
        self.ndim = len(self.shape)

    @property
    def path(self) -> str:
        return self.array.path

    @property
    def attrs(self) -> Any:
        return self.array.attrs

    @property
    def chunks(self) -> tuple[int, ...]:
        return tuple(self.array.chunks)

    @property
    def shards(self) -> tuple[int, ...] | None:
        return None if self.array.shards is None else tuple(self.array.shards)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"GuardedArray({store_name(self.array.store)!r}, {self.path!r}, shape={self.shape})"

    def __getitem__(self, sel: Any) -> Any:
        try:
            return self.array[sel]
        except MissingObjectError as e:
            key = getattr(e, "key", None)
            raise self._error(MissingObjectError, "is missing (deleted, or never written)", [key] if key else self._keys(sel)) from None
        except _CHUNK_NOT_FOUND:
            raise self._error(MissingObjectError, "is missing (deleted, or never written)", self._keys(sel)) from None
        except _PASS_THROUGH:
            raise
        except Exception as e:  # noqa: BLE001 - crc32c mismatch, blosc/zstd errors, short shards: all decode failures
            keys = self._failing_keys(sel) or self._keys(sel)
            raise self._error(
                CorruptObjectError, f"is corrupt (checksum or decode failure: {type(e).__name__}: {_first_line(e)})", keys
            ) from None

    # -- describing objects ----------------------------------------------------------------------

    def _grid(self) -> tuple[int, ...]:
        return tuple(self.array.shards or self.array.chunks)

    def _keys(self, sel: Any) -> list[str]:
        """Keys of the stored objects (shards, else chunks) a selection touches, at most 100."""
        grid = self._grid()
        per_dim = [range(lo // g, hi // g + 1) if hi >= lo else range(0) for (lo, hi), g in zip(_ranges(sel, self.shape), grid)]
        coords = itertools.islice(itertools.product(*per_dim), 100)
        return [self._key(c) for c in coords]

    def _key(self, coords: tuple[int, ...]) -> str:
        return f"{self.path}/{self.array.metadata.encode_chunk_key(coords)}"

    def _coords_of(self, key: str) -> tuple[int, ...] | None:
        rest = key[len(self.path) + 1:] if key.startswith(self.path + "/") else key
        for prefix, sep in (("c/", "/"), ("c.", ".")):
            if rest.startswith(prefix):
                rest = rest[len(prefix):]
                parts = rest.split(sep)
                break
        else:
            parts = rest.split(".") if "." in rest else rest.split("/")
        try:
            coords = tuple(int(p) for p in parts)
        except ValueError:
            return None
        return coords if len(coords) == self.ndim else None

    def _failing_keys(self, sel: Any) -> list[str]:
        """Error path only: read the selection object by object to name the one(s) that fail."""
        keys = self._keys(sel)
        if len(keys) <= 1:
            return keys
        bad = []
        for key in keys:
            coords = self._coords_of(key)
            if coords is None:
                continue
            region = tuple(slice(c * g, min((c + 1) * g, n)) for c, g, n in zip(coords, self._grid(), self.shape))
            try:
                self.array[region]
            except Exception:  # noqa: BLE001
                bad.append(key)
                if len(bad) >= 3:
                    break
        return bad

    def describe(self, key: str) -> str:
        """``"camera 222200037, timesteps 0-31"``: what the stored object ``key`` holds."""
        coords = self._coords_of(key)
        dims = self.array.metadata.dimension_names or (None,) * self.ndim
        if coords is None:
            return ""
        parts = []
        for dim, c, g, n in zip(dims, coords, self._grid(), self.shape):
            lo, hi = c * g, min((c + 1) * g, n) - 1
            labels = self.coords.get(dim) if dim else None
            if labels is not None and hi < len(labels):
                first, last = labels[lo], labels[hi]
                noun = {"camera": "camera", "serial": "camera"}.get(dim, dim)
                if lo == hi or first == last:
                    parts.append(f"{noun} {first}")
                else:
                    parts.append(f"{noun}s {first}-{last}" if noun != "camera" else f"cameras {first}..{last}")
            elif dim in ("timestep", "frame", "point", "cloud_offset") or (dim is None and len(parts) == 0 and hi - lo + 1 < n):
                if hi - lo + 1 < n:
                    parts.append(f"{dim or 'index'} {lo}-{hi}" if hi > lo else f"{dim or 'index'} {lo}")
        return ", ".join(parts)

    def _error(self, cls: type[StoreIntegrityError], state: str, keys: Sequence[str]) -> StoreIntegrityError:
        name = store_name(self.array.store)
        shown = []
        for key in list(keys)[:3]:
            what = self.describe(key)
            shown.append(f"{key} ({what})" if what else key)
        more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
        noun = "object" if len(keys) == 1 else "objects"
        err = cls(f"{name}: array {self.path}: {noun} {', '.join(shown)}{more} {state}; {_check_hint(name)}")
        err.keys = list(keys)  # type: ignore[attr-defined]
        return err


def guarded(array: zarr.Array, coords: Mapping[str, Sequence[Any]] | None = None) -> GuardedArray:
    """``array`` behind a :class:`GuardedArray` (see there)."""
    return array if isinstance(array, GuardedArray) else GuardedArray(array, coords)


def read(array: zarr.Array, sel: Any = Ellipsis, coords: Mapping[str, Sequence[Any]] | None = None) -> Any:
    """``array[sel]`` through :class:`GuardedArray`: a small array read whole (calibration, tracking, coordinates)."""
    return guarded(array, coords)[sel]


def guard_dataset(ds: Any, group: zarr.Group) -> Any:
    """Put a :class:`GuardedArray` behind every data variable of ``ds`` (opened lazily from ``group``
    with ``chunks={}``): the same dask chunks, each read through the guard. Coordinates of the
    dataset label the objects in errors (camera serials, timesteps)."""
    import dask.array as da
    from dask.base import tokenize

    labels = {str(name): ds[name].values.tolist() for name in ds.indexes}
    out = {}
    arrays = set(group.array_keys())
    for name, var in ds.data_vars.items():
        if name not in arrays or var.chunks is None:
            continue
        garr = GuardedArray(group[name], labels)
        if garr.dtype != var.dtype or garr.shape != var.shape:  # decoded by xarray (strings): read by xarray
            continue
        token = tokenize(store_name(group.store), group.path, name, garr.shape, str(garr.dtype))
        data = da.from_array(
            garr, chunks=var.data.chunks, name=f"nersemble-read-{name}-{token}", asarray=False, fancy=False,
            inline_array=True, meta=np.empty((0,) * var.ndim, dtype=var.dtype),
        )
        out[name] = var.copy(data=data)
    return ds.assign(out) if out else ds


__all__ = [
    "GuardedArray",
    "GuardedStore",
    "HAS_READ_MISSING_CHUNKS",
    "check_arrays",
    "check_root",
    "guard_dataset",
    "guard_store",
    "guarded",
    "is_metadata_key",
    "open_root",
    "read",
    "reading",
    "store_name",
]
