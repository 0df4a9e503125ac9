"""What a store holds: benchmark / participant / sequence tree with sizes, codecs and completeness.

Reads metadata only (and lists object sizes); never a chunk. Completeness comes from the
converter's markers, read directly (not from consolidated metadata, which a killed convert may
have left stale).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import zarr

from . import schema
from .errors import NersembleZarrError
from .store_lock import StoreLocation


class InfoError(NersembleZarrError):
    """The path is not a nersemble-zarr store."""


@dataclass
class SequenceInfo:
    """One sequence: ``cameras`` × ``frames`` of ``height`` × ``width`` (0 without video)."""

    name: str
    split: str
    cameras: int = 0
    frames: int = 0
    height: int = 0
    width: int = 0
    images: bool = False
    alpha: bool = False
    codec: dict[str, Any] | None = None
    cameras_complete: dict[str, int] = field(default_factory=dict)  # array → complete cameras
    pointclouds: int | None = None  # number of clouds, None when absent
    points: int = 0
    tracking: list[int] = field(default_factory=list)  # complete versions
    levels: list[int] = field(default_factory=list)  # complete downscale factors (2 = half resolution)
    flame_meshes: list[int] = field(default_factory=list)  # tracking versions with complete FLAME vertices
    incomplete: list[str] = field(default_factory=list)
    bytes: int = 0

    @property
    def complete(self) -> bool:
        return not self.incomplete


@dataclass
class ParticipantInfo:
    participant: int
    calibration: bool
    sequences: list[SequenceInfo] = field(default_factory=list)


@dataclass
class BenchmarkInfo:
    name: str
    has_metadata: bool
    participants: list[ParticipantInfo] = field(default_factory=list)


@dataclass
class StoreInfo:
    """The whole store; ``bytes`` on disk (all objects)."""

    store: str
    format: dict[str, Any]
    benchmarks: list[BenchmarkInfo] = field(default_factory=list)
    bytes: int = 0

    @property
    def complete(self) -> bool:
        return all(
            p.calibration and all(s.complete for s in p.sequences) for b in self.benchmarks for p in b.participants
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["complete"] = self.complete
        return d


def _du(fs: Any, path: str) -> dict[str, int]:
    """Bytes per object below ``path`` (relative keys)."""
    sizes = {}
    prefix = path.rstrip("/") + "/"
    for name, info in fs.find(path, detail=True).items():
        key = name[len(prefix):] if name.startswith(prefix) else name
        sizes[key] = int(info.get("size") or 0)
    return sizes


def _sum_under(sizes: dict[str, int], group_path: str) -> int:
    prefix = group_path.rstrip("/") + "/"
    return sum(v for k, v in sizes.items() if k.startswith(prefix))


def _sequence_info(g: zarr.Group, name: str, sizes: dict[str, int], path: str) -> SequenceInfo:
    attrs = dict(g.attrs)
    info = SequenceInfo(name=name, split=str(attrs.get("split", "")), bytes=_sum_under(sizes, path))
    arrays = set(g.array_keys())
    groups = set(g.group_keys())
    cams = [str(c) for c in g[schema.CAMERA][:]] if schema.CAMERA in arrays else []
    for arr_name in (schema.IMAGES, schema.ALPHA):
        if arr_name not in arrays:
            if attrs.get("has_video"):
                info.incomplete.append(f"{arr_name} missing")
            continue
        arr = g[arr_name]
        setattr(info, arr_name, True)
        info.cameras, info.frames, info.height, info.width = arr.shape[0], arr.shape[1], arr.shape[2], arr.shape[3]
        if arr_name == schema.IMAGES:
            info.codec = arr.attrs.get("codec")
        done = set(arr.attrs.get(schema.COMPLETE_CAMERAS_ATTR, []))
        info.cameras_complete[arr_name] = len(done & set(cams))
        missing = [c for c in cams if c not in done]
        if missing:
            info.incomplete.append(f"{arr_name} of {len(missing)}/{len(cams)} cameras")
    if schema.POINTCLOUDS in groups:
        pc = g[schema.POINTCLOUDS]
        if pc.attrs.get(schema.COMPLETE_ATTR, False):
            info.pointclouds = int(pc[schema.CLOUD_TIMESTEP].shape[0])
            info.points = int(pc[schema.POINTS].shape[0])
        else:
            info.incomplete.append("pointclouds")
    for v in (1, 2):
        for name, complete, label in (
            (schema.tracking_group_name(v), info.tracking, f"tracking v{v}"),
            (schema.flame_group_name(v), info.flame_meshes, f"flame meshes v{v}"),
        ):
            if name not in groups:
                continue
            if g[name].attrs.get(schema.COMPLETE_ATTR, False):
                complete.append(v)
            else:
                info.incomplete.append(label)
    for gname in sorted(groups):
        if gname.startswith("level_") and gname[len("level_"):].isdigit():
            factor = int(gname[len("level_"):])
            if g[gname].attrs.get(schema.COMPLETE_ATTR, False):
                info.levels.append(factor)
            else:
                info.incomplete.append(f"level 1/{factor}")
    info.levels.sort()
    return info


def store_info(store: str | os.PathLike, *, storage_options: dict[str, Any] | None = None) -> StoreInfo:
    """Describe the store at ``store`` (local path or fsspec URL). Raises :class:`InfoError` if absent."""
    loc = StoreLocation.parse(store, storage_options)
    if not loc.exists():
        raise InfoError(f"{loc}: no Zarr store found (expected zarr.json at its root)")
    root = zarr.open_group(loc.zarr_store(read_only=True), mode="r", use_consolidated=False)
    fmt = root.attrs.get(schema.ROOT_ATTR)
    if fmt is None:
        raise InfoError(f"{loc}: a Zarr store, but not written by nersemble-zarr (no {schema.ROOT_ATTR!r} attribute)")
    fs, path = loc.filesystem()
    sizes = _du(fs, path)
    out = StoreInfo(store=str(store), format=dict(fmt), bytes=sum(sizes.values()))
    for bname in sorted(root.group_keys()):
        bgroup = root[bname]
        binfo = BenchmarkInfo(bname, schema.METADATA_ATTR in bgroup.attrs)
        for pname in sorted(bgroup.group_keys()):
            pgroup = bgroup[pname]
            calib = schema.CALIBRATION in set(pgroup.group_keys()) and bool(
                pgroup[schema.CALIBRATION].attrs.get(schema.COMPLETE_ATTR, False)
            )
            pinfo = ParticipantInfo(int(pname), calib)
            for sname in sorted(k for k in pgroup.group_keys() if k != schema.CALIBRATION):
                pinfo.sequences.append(_sequence_info(pgroup[sname], sname, sizes, f"{bname}/{pname}/{sname}"))
            binfo.participants.append(pinfo)
        out.benchmarks.append(binfo)
    return out


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _codec_label(codec: dict[str, Any] | None) -> str:
    if not codec:
        return "?"
    if codec.get("kind") == "jpeg":
        return f"jpeg q{codec.get('quality')}"
    comp = codec.get("compressor", {})
    cfg = comp.get("configuration", {})
    name = comp.get("name", "")
    if name == "blosc":
        return f"lossless blosc-{cfg.get('cname')}-{cfg.get('clevel')}"
    level = cfg.get("level")
    return f"lossless {name}" + (f" level {level}" if level is not None else "")


def format_info(info: StoreInfo) -> str:
    """The tree as text, one line per benchmark / participant / sequence."""
    lines = [
        f"{info.store}  (nersemble-zarr store v{info.format.get('format_version')}, {_human(info.bytes)} on disk, "
        f"{'complete' if info.complete else 'INCOMPLETE'})"
    ]
    for b in info.benchmarks:
        lines.append(f"{b.name}/{'' if b.has_metadata else '  (no metadata.json)'}")
        for p in b.participants:
            lines.append(f"  {p.participant:03d}/  calibration {'16 cameras' if p.calibration else 'INCOMPLETE'}")
            for s in p.sequences:
                parts = []
                if s.cameras:
                    parts.append(f"{s.cameras} cam × {s.frames} frames {s.height}×{s.width}")
                    parts.append(f"images [{_codec_label(s.codec)}]" if s.images else "")
                    parts.append("alpha [lossless]" if s.alpha else "")
                if s.pointclouds is not None:
                    parts.append(f"{s.pointclouds} clouds / {s.points} points")
                if s.tracking:
                    parts.append("tracking " + ",".join(f"v{v}" for v in s.tracking))
                if s.flame_meshes:
                    parts.append("meshes " + ",".join(f"v{v}" for v in s.flame_meshes))
                if s.levels:
                    parts.append("levels " + ",".join(f"1/{f}" for f in s.levels))
                parts.append(_human(s.bytes))
                state = "complete" if s.complete else "INCOMPLETE: " + "; ".join(s.incomplete)
                label = f"{s.name} ({s.split})" if s.split == "test" else s.name
                lines.append(f"    {label:<36} " + "  ".join(x for x in parts if x) + f"  {state}")
    return "\n".join(lines)
