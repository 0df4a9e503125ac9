"""What a store holds: benchmark / participant / sequence tree with sizes, codecs and completeness.

Reads metadata only (and lists object sizes); never a chunk. Completeness comes from the
converter's markers, read directly (not from consolidated metadata, which a killed convert may
have left stale), and is only claimed where the markers tell the truth: the cheap part of
:func:`~nersemble_zarr.pipelines.check.check_store` (object listing and every ``zarr.json``, no shard index)
runs too, and a sequence, a calibration or the store whose marked-complete objects are missing,
whose metadata is corrupt or lost, or whose markers disagree with what is there is reported as
damaged ("run nersemble-zarr check STORE") instead of complete.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import zarr

from ..core import schema
from ..core.benchmark import SVFR, svfr_image_keys
from ..core.errors import NersembleZarrError
from ..storage.location import StoreLocation
from ..storage.markers import complete_cameras, is_complete


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
    damaged: list[str] = field(default_factory=list)  # problems `check` finds (missing shards, corrupt metadata, …)
    bytes: int = 0

    @property
    def complete(self) -> bool:
        return not self.incomplete and not self.damaged


@dataclass
class ParticipantInfo:
    participant: int
    calibration: bool
    sequences: list[SequenceInfo] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # calibration / participant-level problems `check` finds
    #: SVFR only (``calibration`` then means: the participant's images are completely converted): images stored,
    #: the participant's official image count, the images' codec and bytes on disk
    svfr: dict[str, Any] | None = None


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
    damaged: list[str] = field(default_factory=list)  # store-level problems (consolidated metadata, faces, …)
    leftovers: int = 0  # zarr temporary files of a killed write (harmless; the next writer removes them)
    stale_consolidated: bool = False  # the consolidated copy lags the nodes' own metadata (a killed run)

    @property
    def intact(self) -> bool:
        """False when ``check`` found any missing or damaged object or a lying marker anywhere."""
        return not self.damaged and all(
            not p.damaged and all(not s.damaged for s in p.sequences) for b in self.benchmarks for p in b.participants
        )

    @property
    def complete(self) -> bool:
        return self.intact and all(
            p.calibration and all(s.complete for s in p.sequences) for b in self.benchmarks for p in b.participants
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["complete"] = self.complete
        d["intact"] = self.intact
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
            if attrs.get("has_video") and not any(n.startswith("level_") for n in groups):  # levels-only: --no-full
                info.incomplete.append(f"{arr_name} missing")
            continue
        arr = g[arr_name]
        setattr(info, arr_name, True)
        info.cameras, info.frames, info.height, info.width = arr.shape[0], arr.shape[1], arr.shape[2], arr.shape[3]
        if arr_name == schema.IMAGES:
            info.codec = arr.attrs.get("codec")
        done = set(complete_cameras(arr))
        info.cameras_complete[arr_name] = len(done & set(cams))
        missing = [c for c in cams if c not in done]
        if missing:
            info.incomplete.append(f"{arr_name} of {len(missing)}/{len(cams)} cameras")
    if schema.POINTCLOUDS in groups:
        pc = g[schema.POINTCLOUDS]
        if is_complete(pc):
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
            if is_complete(g[name]):
                complete.append(v)
            else:
                info.incomplete.append(label)
    for gname in sorted(groups):
        if gname.startswith("level_") and gname[len("level_"):].isdigit():
            factor = int(gname[len("level_"):])
            if is_complete(g[gname]):
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
    try:
        root = zarr.open_group(loc.zarr_store(read_only=True), mode="r", use_consolidated=False)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise InfoError(
            f"{loc}: the root zarr.json does not parse ({type(e).__name__}: {e}); the store is damaged: run "
            f"'nersemble-zarr check {store}'"
        ) from None
    fmt = root.attrs.get(schema.ROOT_ATTR)
    if fmt is None:
        raise InfoError(f"{loc}: a Zarr store, but not written by nersemble-zarr (no {schema.ROOT_ATTR!r} attribute)")
    fs, path = loc.filesystem()
    sizes = _du(fs, path)
    out = StoreInfo(store=str(store), format=dict(fmt), bytes=sum(sizes.values()))
    for bname in _children(root, "", sizes):
        bgroup = _open(root, bname)
        if bgroup is None:
            out.damaged.append(f"{bname}/zarr.json does not open")
            continue
        binfo = BenchmarkInfo(bname, schema.METADATA_ATTR in bgroup.attrs)
        for pname in _children(bgroup, bname, sizes):
            if not pname.isdigit():
                continue
            pgroup = _open(bgroup, pname)
            if pgroup is None:
                out.damaged.append(f"{bname}/{pname}/zarr.json does not open")
                continue
            if bname == SVFR:
                binfo.participants.append(_svfr_participant(pgroup, int(pname), sizes, f"{bname}/{pname}"))
                continue
            calib_group = _open(pgroup, schema.CALIBRATION)
            calib = is_complete(calib_group)
            pinfo = ParticipantInfo(int(pname), calib)
            for sname in _children(pgroup, f"{bname}/{pname}", sizes):
                if sname == schema.CALIBRATION:
                    continue
                spath = f"{bname}/{pname}/{sname}"
                try:
                    pinfo.sequences.append(_sequence_info(pgroup[sname], sname, sizes, spath))
                except Exception as e:  # noqa: BLE001  a node that does not open is damage, reported below
                    pinfo.sequences.append(SequenceInfo(sname, "", bytes=_sum_under(sizes, spath),
                                                        damaged=[f"metadata does not open ({type(e).__name__})"]))
            binfo.participants.append(pinfo)
        out.benchmarks.append(binfo)
    _add_check_findings(out, loc)
    return out


def _svfr_participant(group: zarr.Group, participant: int, sizes: dict[str, int], path: str) -> ParticipantInfo:
    """An SVFR participant: its images (count, size, codec) and whether they are completely converted."""
    images = group.get(schema.IMAGES) if is_complete(group) else None
    return ParticipantInfo(participant, images is not None, svfr={
        "images": int(images.shape[0]) if images is not None else 0,
        "official_images": len(svfr_image_keys(participant)),
        "height": int(images.shape[1]) if images is not None else 0,
        "width": int(images.shape[2]) if images is not None else 0,
        "codec": images.attrs.get("codec") if images is not None else None, "bytes": _sum_under(sizes, path),
    })


def _children(group: zarr.Group, path: str, sizes: dict[str, int]) -> list[str]:
    """Names of the groups below ``group`` (at store path ``path``), even when one child's zarr.json is corrupt
    (zarr's own listing reads every child's document and fails on the first bad one)."""
    try:
        return sorted(group.group_keys())
    except Exception:  # noqa: BLE001
        prefix = f"{path}/" if path else ""
        names = {k[len(prefix):].split("/")[0] for k in sizes if k.startswith(prefix) and k.endswith("/zarr.json")}
        return sorted(n for n in names if f"{prefix}{n}/zarr.json" in sizes)


def _open(group: zarr.Group, name: str) -> zarr.Group | None:
    try:
        node = group[name]
    except Exception:  # noqa: BLE001  absent or a document that does not parse
        return None
    return node if isinstance(node, zarr.Group) else None


def _add_check_findings(out: StoreInfo, loc: StoreLocation) -> None:
    """Run the cheap part of ``check`` (listing + metadata) and attach what it finds where it belongs."""
    from .check import check_store

    report = check_store(loc.url, storage_options=loc.storage_options, read_indexes=False)
    sequences = {
        (b.name, p.participant, s.name): s for b in out.benchmarks for p in b.participants for s in p.sequences
    }
    participants = {(b.name, p.participant): p for b in out.benchmarks for p in b.participants}
    for problem in report.problems:
        if problem.kind == "leftover":
            out.leftovers += 1
            continue
        if problem.kind == "stale_consolidated":  # info reads markers from the nodes themselves
            out.stale_consolidated = True
            continue
        text = f"{problem.kind} {problem.key}"
        seq = sequences.get((problem.benchmark, problem.participant, problem.sequence))
        part = participants.get((problem.benchmark, problem.participant))
        if seq is not None:
            if text not in seq.damaged:
                seq.damaged.append(text)
        elif part is not None and problem.sequence is None:
            part.damaged.append(text)
        else:
            out.damaged.append(text)


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
    if codec.get("kind") == "compact":
        return f"compact (JPEG-XL lossless, effort {codec.get('effort')})"
    comp = codec.get("compressor", {})
    cfg = comp.get("configuration", {})
    name = comp.get("name", "")
    if name == "blosc":
        return f"lossless blosc-{cfg.get('cname')}-{cfg.get('clevel')}"
    level = cfg.get("level")
    return f"lossless {name}" + (f" level {level}" if level is not None else "")


def format_label(version: Any) -> str:
    """``"format 2"``; an older readable format says so and what is read differently; a newer one says to update."""
    if version == schema.FORMAT_VERSION:
        return f"format {version}"
    if version in schema.READABLE_FORMAT_VERSIONS:
        renamed = ", ".join(f"{old} -> {new}" for old, new in schema.FORMAT_1_NAMES.items())
        return (f"format {version} (readable; written by an earlier nersemble-zarr, read with the current names: "
                f"{renamed})")
    return f"format {version} (not readable: written by a newer nersemble-zarr, update it)"


def format_info(info: StoreInfo) -> str:
    """The tree as text, one line per benchmark / participant / sequence."""
    state = "complete" if info.complete else "INCOMPLETE"
    if not info.intact:
        state = f"DAMAGED: run 'nersemble-zarr check {info.store}'"
    lines = [
        f"{info.store}  (nersemble-zarr store, {format_label(info.format.get('format_version'))}, {_human(info.bytes)} on disk, "
        f"{state})"
    ]
    for problem in info.damaged:
        lines.append(f"  DAMAGED: {problem}")
    if info.stale_consolidated:
        lines.append("  consolidated metadata lags the nodes' own (a killed run): the next writer or "
                     "'nersemble-zarr check --repair' re-consolidates")
    if info.leftovers:
        lines.append(f"  {info.leftovers} leftover temporary file(s) of a killed write (the next writer removes them)")
    for b in info.benchmarks:
        lines.append(f"{b.name}/{'' if b.has_metadata or b.name == SVFR else '  (no metadata.json)'}")
        for p in b.participants:
            if p.svfr is not None:
                v = p.svfr
                state = "complete" if p.calibration else "INCOMPLETE"
                if p.damaged:
                    state = f"DAMAGED ({'; '.join(p.damaged[:2])}{' …' if len(p.damaged) > 2 else ''}): run 'nersemble-zarr check'"
                what = (f"{v['images']} of {v['official_images']} images {v['width']}x{v['height']} "
                        f"[{_codec_label(v['codec'])}]" if p.calibration else "images")
                lines.append(f"  {p.participant:03d}/  {what}  {_human(v['bytes'])}  {state}")
                continue
            calib = "16 cameras" if p.calibration else "INCOMPLETE"
            if p.damaged:
                calib = f"DAMAGED ({'; '.join(p.damaged[:2])}{' …' if len(p.damaged) > 2 else ''}): run 'nersemble-zarr check'"
            lines.append(f"  {p.participant:03d}/  calibration {calib}")
            for s in p.sequences:
                parts = []
                if s.cameras:
                    parts.append(f"{s.cameras} cam × {s.frames} frames {s.width}x{s.height}")
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
                if s.damaged:
                    shown = "; ".join(s.damaged[:2]) + (f"; {len(s.damaged) - 2} more" if len(s.damaged) > 2 else "")
                    state = f"DAMAGED ({shown}): run 'nersemble-zarr check'"
                label = f"{s.name} ({s.split})" if s.split == "test" else s.name
                lines.append(f"    {label:<36} " + "  ".join(x for x in parts if x) + f"  {state}")
    lines.append(
        "(info checked the markers, the object listing and the metadata; 'nersemble-zarr check STORE' also "
        "verifies every shard index checksum, '--deep' every chunk)"
    )
    return "\n".join(lines)
