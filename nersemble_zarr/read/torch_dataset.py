"""A ``torch.utils.data.Dataset`` of frames from a nersemble-zarr store, for training loops.

    from torch.utils.data import DataLoader
    from nersemble_zarr.read.torch_dataset import FrameDataset

    ds = FrameDataset("nersemble.zarr", "nvs", participants=[388], level=2, dtype="float32")
    for batch in DataLoader(ds, batch_size=8, shuffle=True, num_workers=4):
        batch["image"]        # (B, 802, 550, 3) float32 in [0, 1]
        batch["intrinsics"]   # (B, 3, 3) float64 for the ½ level

Each item reads one stored chunk per array (the frame and its alpha map) with zarr directly, so
random sampling costs the same as sequential. The dataset holds only plain Python/numpy state: zarr
handles are opened on first use in each process (DataLoader workers, forked or spawned), never pickled.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from ..core import schema
from ..core.benchmark import check_participant, get_benchmark
from ..core.errors import SelectionError
from ..core.splits import check_part, parse_split, split_sequence
from ..imaging import area_average
from .resolver import (
    ResolvedSequence,
    StoreLike,
    StoreReadError,
    check_every_nth,
    check_timesteps,
    has_group,
    level_of,
    open_root,
    read_calibration,
    resolve_sequence,
    sequences_in,
    timestep_positions,
)

FrameDtype = Literal["uint8", "float32"]


class FrameDatasetError(StoreReadError):
    """The selection is empty or names what the store does not hold."""


class FrameDataset(Dataset):
    """Frames ``(sequence, camera, timestep)`` of one benchmark, in that nested order.

    Parameters: ``store`` (path, fsspec URL or zarr store), ``benchmark`` (``"nvs"`` or
    ``"mono_flame_avatar"``), ``participants`` (default: all in the store), ``sequences`` (names;
    default: every sequence with video), ``cameras`` (serials; default: all with video), ``level``
    (1, 2, 4, …) or ``scale`` (1, ½, ¼, …) picking a stored level (``resize=True``: area-average full
    frames on the fly when it is not stored), ``dtype`` of image/alpha (``"uint8"`` 0–255 or
    ``"float32"`` = uint8 / 255), ``channels_first`` (``(3, H, W)`` instead of ``(H, W, 3)``),
    ``timesteps`` (an int, a slice or a list of timestep values; default all) and ``every_nth_frame``
    (a positive step over the selected timesteps). ``split``: ``"train"``, ``"validation"`` or ``"all"``
    (default) frames of the validation split ``split_rule`` (:mod:`nersemble_zarr.core.splits`; default per
    benchmark: NVS ``"nearest"`` = the train camera nearest each hold-out camera is validation, mono
    ``"last=10"`` = the last 10 % of each sequence's frames) — the same rule ``nersemble-zarr evaluate``
    scores, so training on ``split="train"`` never sees a frame that evaluation scores
    (``every_nth_frame`` steps over the part's timesteps). A timestep that is no integer >= 0 (3.7, "3", True,
    -1) or ``every_nth_frame=0`` raises :class:`~nersemble_zarr.core.errors.SelectionError` (a ``ValueError``).
    Cameras, levels, completeness and calibration are resolved per sequence by
    :func:`~nersemble_zarr.read.resolver.resolve_sequence`, the rule every reader shares: ``cameras=None``
    takes every completely converted camera (others are left out with an
    :class:`~nersemble_zarr.read.resolver.IncompleteStoreWarning`); named ``cameras`` filter each sequence
    (a serial a sequence does not store is skipped there), and a named camera that is stored but not
    completely converted raises :class:`FrameDatasetError` naming it.
    Frames read through the integrity guard: a missing or corrupt stored object raises
    :class:`~nersemble_zarr.core.errors.StoreIntegrityError` naming it, never returns fill values.

    Item (a dict):
    ``image (H, W, 3)`` uint8 or float32; ``alpha (H, W, 1)`` same dtype; ``intrinsics (3, 3) float64``
    for the item's level (pixel-centre convention); ``world_2_cam (4, 4) float64`` (OpenCV, metres);
    ``serial`` str; ``timestep`` int; ``participant`` int; ``sequence`` str.
    """

    def __init__(
        self,
        store: StoreLike,
        benchmark: str,
        participants: int | Iterable[int] | None = None,
        sequences: str | Iterable[str] | None = None,
        cameras: str | Iterable[str] | None = None,
        *,
        level: int | None = None,
        scale: float | None = None,
        resize: bool = False,
        dtype: FrameDtype = "uint8",
        channels_first: bool = False,
        with_alpha: bool = True,
        timesteps: int | slice | Iterable[int] | None = None,
        every_nth_frame: int | None = None,
        storage_options: dict[str, Any] | None = None,
        split: str | None = None,
        split_rule: str | None = None,
    ):
        if dtype not in ("uint8", "float32"):
            raise ValueError(f"dtype must be 'uint8' or 'float32', not {dtype!r}")
        self._timesteps = None if timesteps is None else check_timesteps(timesteps)
        self._every_nth = check_every_nth(every_nth_frame) or 1
        get_benchmark(benchmark)
        self.split = check_part(split)
        self.split_rule = str(parse_split(split_rule, benchmark)) if self.split != "all" else split_rule
        self.store = store
        self.benchmark = benchmark
        self.level = level_of(level, scale)
        self.dtype = dtype
        self.channels_first = bool(channels_first)
        self.with_alpha = bool(with_alpha)
        self._storage_options = storage_options
        self._handles: dict[int, tuple[Any, Any]] | None = None
        self._handles_pid: int | None = None
        self._root_handle: tuple[Any, int] | None = None

        root = open_root(store, storage_options=storage_options)  # guarded; refuses a damaged root
        wanted_seq = _as_set(sequences)
        wanted_cam = None if cameras is None else ([cameras] if isinstance(cameras, str) else [str(c) for c in cameras])
        if participants is None:
            group_path = schema.benchmark_group(benchmark)
            group = root[group_path] if has_group(root, group_path) else None
            pids = sorted(int(n) for n, _ in group.groups() if n.isdigit()) if group is not None else []
        else:
            pids = [check_participant(benchmark, p) for p in ([participants] if isinstance(participants, int) else participants)]

        # Per (participant, sequence) "unit": the resolved sequence (cameras, level, calibration) and its selection.
        self.units: list[dict[str, Any]] = []
        unit_ids, cam_ids, t_ids = [], [], []
        for p in pids:
            for s in sequences_in(root, benchmark, p):
                if wanted_seq is not None and s not in wanted_seq:
                    continue
                if schema.IMAGES not in root[schema.sequence_group(benchmark, p, s)].array_keys():
                    continue  # tracking only
                res = resolve_sequence(root, benchmark, p, s, cameras=wanted_cam, level=self.level, resize=resize,
                                       error=FrameDatasetError, only_present=True, stacklevel=3)
                if self.split == "all":
                    t_positions = timestep_positions(res.timesteps, self._timesteps, self._every_nth)
                else:
                    rig = read_calibration(root, benchmark, p, error=FrameDatasetError)
                    part = split_sequence(self.split_rule, benchmark, s, res.stored_cameras, res.timesteps,
                                          rig.serials, rig.world_2_cam)[self.split]
                    keep = [c for c in res.cameras if c in part.cameras]
                    if not keep or not part.timesteps:
                        continue
                    if list(keep) != list(res.cameras):
                        res = resolve_sequence(root, benchmark, p, s, cameras=keep, level=self.level, resize=resize,
                                               error=FrameDatasetError, only_present=True, stacklevel=3)
                    in_part = set(part.timesteps)
                    t_positions = [i for i in timestep_positions(res.timesteps, self._timesteps)
                                   if res.timesteps[i] in in_part][:: self._every_nth]
                if not res.cameras or not t_positions:
                    continue
                u = len(self.units)
                self.units.append(_unit(res, t_positions))
                n_c, n_t = len(res.cameras), len(t_positions)
                unit_ids.append(np.full(n_c * n_t, u, dtype=np.int32))
                cam_ids.append(np.repeat(np.arange(n_c, dtype=np.int32), n_t))
                t_ids.append(np.tile(np.arange(n_t, dtype=np.int32), n_c))
        if not self.units:
            raise FrameDatasetError(
                f"no frames selected in {benchmark} (participants {pids or 'none in store'}, sequences "
                f"{sorted(wanted_seq) if wanted_seq else 'all'}, cameras {sorted(wanted_cam) if wanted_cam else 'all'}"
                + (f", {self.split} part of split {self.split_rule})" if self.split != "all" else ")")
            )
        self._unit = np.concatenate(unit_ids)
        self._cam = np.concatenate(cam_ids)
        self._t = np.concatenate(t_ids)

    def __len__(self) -> int:
        return int(self._unit.size)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_handles=None, _handles_pid=None, _root_handle=None)
        return state

    def _arrays(self, u: int) -> tuple[Any, Any]:
        if self._handles is None or self._handles_pid != os.getpid():
            self._handles, self._handles_pid = {}, os.getpid()
        h = self._handles.get(u)
        if h is None:  # through the root's consolidated metadata and the integrity guard
            if self._root_handle is None or self._root_handle[1] != os.getpid():
                self._root_handle = (open_root(self.store, storage_options=self._storage_options), os.getpid())
            res: ResolvedSequence = self.units[u]["resolved"]
            root = self._root_handle[0]
            h = (res.frames(root, schema.IMAGES), res.frames(root, schema.ALPHA) if self.with_alpha else None)
            self._handles[u] = h
        return h

    def key(self, index: int) -> tuple[int, str, str, int]:
        """``(participant, sequence, serial, timestep)`` of item ``index``."""
        unit = self.units[int(self._unit[index])]
        return (unit["participant"], unit["sequence"], unit["serials"][int(self._cam[index])],
                unit["timesteps"][int(self._t[index])])

    def _to_tensor(self, frame: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(frame))
        if self.dtype == "float32":
            tensor = tensor.to(torch.float32).div_(255.0)
        if self.channels_first:
            tensor = tensor.permute(2, 0, 1)
        return tensor

    def __getitem__(self, index: int) -> dict[str, Any]:
        if isinstance(index, torch.Tensor) and index.ndim == 0 and not index.is_floating_point():
            index = int(index)
        index = _check_index(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} frames")
        u, ci, ti = int(self._unit[index]), int(self._cam[index]), int(self._t[index])
        unit = self.units[u]
        images, alpha = self._arrays(u)
        c, t = unit["cam_positions"][ci], unit["t_positions"][ti]
        image = images[c, t]
        if unit["resize"] > 1:
            image = area_average(image, unit["resize"], axes=(0, 1))
        item = {
            "image": self._to_tensor(image),
            "intrinsics": torch.from_numpy(unit["intrinsics"][ci].copy()),
            "world_2_cam": torch.from_numpy(unit["world_2_cam"][ci].copy()),
            "serial": unit["serials"][ci],
            "timestep": unit["timesteps"][ti],
            "participant": unit["participant"],
            "sequence": unit["sequence"],
        }
        if alpha is not None:
            a = alpha[c, t]
            if unit["resize"] > 1:
                a = area_average(a, unit["resize"], axes=(0, 1))
            item["alpha"] = self._to_tensor(a[..., None])
        return item


def _unit(res: ResolvedSequence, t_positions: list[int]) -> dict[str, Any]:
    """One (participant, sequence) of the dataset: the resolved sequence and the selected timesteps, with the
    per-camera arrays an item needs (``world_2_cam``, ``intrinsics`` at the level, in ``serials`` order)."""
    return {
        "participant": res.participant,
        "sequence": res.sequence,
        "resolved": res,
        "resize": res.resize,
        "serials": list(res.cameras),
        "cam_positions": list(res.camera_positions),
        "t_positions": t_positions,
        "timesteps": [res.timesteps[i] for i in t_positions],
        "world_2_cam": res.calibration.world_2_cam,
        "intrinsics": res.calibration.intrinsics,
    }


def _check_index(index: Any) -> int:
    """An item index: an integer (numpy integers too); a float, string or bool raises a ``ValueError`` naming it."""
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
        raise SelectionError(f"index must be an integer item number, not {index!r} ({type(index).__name__})")
    return int(index)


def _as_set(values: str | Iterable[str] | None) -> set[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        return {values}
    return {str(v) for v in values}


__all__ = ["FrameDataset", "FrameDatasetError"]
