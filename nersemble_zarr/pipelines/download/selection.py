"""Which files a selection of assets means: relative paths below ``<root>/<benchmark>/``.

Built only from :mod:`nersemble_zarr.core.benchmark`'s constants and path functions, with the same
selection as the official toolkit's downloader:

- ``nvs``: per participant ``calibration``; for its sequence the ``images``/``alpha_maps`` videos
  of the 13 train cameras and ``pointclouds`` (by default only the first timestep listed in
  ``metadata.json``; ``"all"`` or explicit timesteps on request).
- ``mono_flame_avatar``: per participant ``calibration``; for the 18 train sequences the train
  camera's ``images``/``alpha_maps`` and the tracking; for the 4 test sequences only the tracking
  (``flame2023_tracking`` = v1, ``flame2023_tracking_v2`` = v2, the current one).
- ``svfr``: ``images``, one ``rgb.png`` per image key of the selected participants
  (``<pid:03d>/<sequence>_<timestep>_<serial>/rgb.png``, timestep unpadded); nothing else (no calibration).

``metadata.json`` is not an asset: it is always fetched first for the video benchmarks (see
:mod:`nersemble_zarr.pipelines.download.run`); SVFR has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from ...core.benchmark import (
    MONO,
    NVS,
    SVFR,
    TRACKING_ASSETS,
    calibration_path,
    check_benchmark,
    check_participant,
    get_benchmark,
    participants_of,
    pointcloud_path,
    svfr_image_keys,
    svfr_image_path,
    tracking_path,
    video_path,
)
from ...core.errors import SelectionError

CALIBRATION = "calibration"
IMAGES = "images"
ALPHA_MAPS = "alpha_maps"
POINTCLOUDS = "pointclouds"

#: Asset names each benchmark offers, in download order.
ASSETS: dict[str, tuple[str, ...]] = {
    NVS: (CALIBRATION, IMAGES, ALPHA_MAPS, POINTCLOUDS),
    MONO: (CALIBRATION, IMAGES, ALPHA_MAPS) + tuple(TRACKING_ASSETS[v] for v in sorted(TRACKING_ASSETS)),
    SVFR: (IMAGES,),
}
_TRACKING_VERSION = {name: version for version, name in TRACKING_ASSETS.items()}

PointcloudFrames = Literal["first", "all"] | Sequence[int]


class AssetSelectionError(SelectionError):
    """An asset name, participant or point-cloud timestep the benchmark does not have."""


def resolve_assets(benchmark: str, assets: str | Iterable[str] = "all") -> tuple[str, ...]:
    """The benchmark's asset names selected by ``assets`` (``"all"`` or names), in download order.

    Raises :class:`AssetSelectionError` naming the unknown asset and the valid ones.
    """
    available = ASSETS[benchmark if benchmark == SVFR else check_benchmark(benchmark)]
    if isinstance(assets, str):
        assets = available if assets == "all" else (assets,)
    chosen = set()
    for name in assets:
        if name == "all":
            chosen.update(available)
        elif name not in available:
            raise AssetSelectionError(
                f"unknown asset {name!r} for the {benchmark} benchmark: expected 'all' or any of {', '.join(available)}"
            )
        else:
            chosen.add(name)
    return tuple(a for a in available if a in chosen)


def resolve_participants(benchmark: str, participants: Iterable[int] | None = None) -> tuple[int, ...]:
    """The selected participant ids (all of the benchmark's for ``None``), validated, in benchmark order."""
    try:
        ordered = participants_of(benchmark)
        if participants is None:
            return ordered
        chosen = {check_participant(benchmark, p) for p in participants}
    except ValueError as e:
        raise AssetSelectionError(str(e)) from None
    return tuple(p for p in ordered if p in chosen)


def nvs_timesteps(metadata: Mapping[str, Any], participant: int) -> list[int]:
    """The timesteps ``metadata.json`` of the NVS benchmark lists for ``participant``'s sequence.

    ``metadata`` is the json as loaded: ``{"sequences": {"<pid>": {"sequence_name", "timesteps"}}}``.
    """
    try:
        return [int(t) for t in metadata["sequences"][str(int(participant))]["timesteps"]]
    except (KeyError, TypeError, ValueError):
        raise AssetSelectionError(
            f"NVS metadata.json has no timesteps for participant {int(participant):03d}: expected "
            f"sequences.\"{int(participant)}\".timesteps to be a list of ints"
        ) from None


def select_files(
    benchmark: str,
    *,
    participants: Iterable[int] | None = None,
    assets: str | Iterable[str] = "all",
    pointcloud_frames: PointcloudFrames = "first",
    metadata: Mapping[str, Any] | None = None,
) -> list[str]:
    """Relative paths (below ``<root>/<benchmark>/``) of every file the selection means, in download order.

    ``pointcloud_frames`` (NVS only): ``"first"`` (the first timestep in ``metadata.json``, the
    default as in the official toolkit), ``"all"`` (every timestep listed there) or explicit
    timesteps, each of which must be listed there for every selected participant. ``metadata`` is
    the benchmark's ``metadata.json`` as loaded; it is needed only when point clouds are selected.
    """
    chosen = resolve_assets(benchmark, assets)
    if benchmark == SVFR:
        return [svfr_image_path(k) for p in resolve_participants(benchmark, participants) for k in svfr_image_keys(p)]
    b = get_benchmark(benchmark)
    files: list[str] = []
    for p in resolve_participants(benchmark, participants):
        if CALIBRATION in chosen:
            files.append(calibration_path(p))
        for seq in b.sequences[p]:
            has_video = seq in b.video_sequences(p)
            for kind in (IMAGES, ALPHA_MAPS):
                if kind in chosen and has_video:
                    files.extend(video_path(p, seq, serial, kind) for serial in b.train_serials)
            if POINTCLOUDS in chosen and b.has_pointclouds:
                files.extend(pointcloud_path(p, seq, t) for t in _pointcloud_timesteps(p, pointcloud_frames, metadata))
            if b.has_tracking:
                files.extend(tracking_path(p, seq, _TRACKING_VERSION[a]) for a in chosen if a in _TRACKING_VERSION)
    return files


def _pointcloud_timesteps(
    participant: int, frames: PointcloudFrames, metadata: Mapping[str, Any] | None
) -> list[int]:
    if metadata is None:
        raise ValueError("point clouds are selected: pass the NVS metadata.json as `metadata`")
    listed = nvs_timesteps(metadata, participant)
    if isinstance(frames, str):
        if frames == "all":
            return listed
        if frames == "first":
            return listed[:1]
        raise AssetSelectionError(f"pointcloud frames must be 'first', 'all' or timesteps, not {frames!r}")
    wanted = [int(t) for t in frames]
    missing = sorted(set(wanted) - set(listed))
    if missing:
        span = f"{listed[0]}..{listed[-1]} ({len(listed)} timesteps)" if listed else "none"
        raise AssetSelectionError(
            f"point-cloud timestep(s) {', '.join(map(str, missing))} not in metadata.json for participant "
            f"{participant:03d}: it lists {span}"
        )
    return sorted(set(wanted))
