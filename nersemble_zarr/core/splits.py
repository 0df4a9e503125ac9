"""Validation splits: which published frames a method trains on and which it is scored on locally.

The benchmarks' test cameras (NVS: the 3 hold-out serials) and test sequences (mono) have no published
video, so a local score needs frames held out of the published ones. A split is one rule, written once
here and used by both sides, so training (``FrameDataset(..., split="train")``) and ``evaluate`` can
never disagree about which frames are validation:

* ``"nearest"`` (NVS default): per participant, the train camera nearest to each of the three hold-out
  cameras (distance between camera centres from the store's calibration, ``C = -R^T t`` of world_2_cam;
  hold-outs in the benchmark's order left, centre, right; each takes the nearest camera not taken yet,
  ties within 1 µm broken by the smaller serial). These 3 cameras are validation for every frame; the other 10 train.
  Computed from calibration rather than fixed serials because calibration is per participant: the rule is
  the fact, and both sides read the same calibration from the same store.
* ``"cameras=S1,S2,…"``: these train serials are validation (NVS).
* ``"last=P"`` (mono default ``last=10``): the last ``ceil(P% · T)`` timesteps (at least 1) of every video
  sequence are validation for every camera, the frames before train.
* ``"sequences=A,B,…"``: these (train) sequences are validation as a whole, the others train (mono).

Everything here is pure (plain values in, plain values out): the store readers pass what they resolved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .benchmark import MONO, NVS, get_benchmark
from .errors import SelectionError

SplitKind = Literal["nearest", "cameras", "last", "sequences"]
SplitPart = Literal["train", "validation"]

#: The default split per benchmark (see the module docstring).
DEFAULT_SPLITS: dict[str, str] = {NVS: "nearest", MONO: "last=10"}
#: Parts a selection can ask for: ``"all"`` leaves the split aside.
SPLIT_PARTS: tuple[str, ...] = ("train", "validation", "all")


class SplitError(SelectionError):
    """A split specification that cannot be parsed or does not fit the benchmark/store."""


@dataclass(frozen=True)
class SplitSpec:
    """A parsed split rule. ``kind`` as in the module docstring; ``values`` the serials (``cameras``) or
    sequence names (``sequences``); ``percent`` the held-out share of frames for ``last`` (0 < P < 100)."""

    kind: SplitKind
    values: tuple[str, ...] = ()
    percent: float = 0.0

    def __str__(self) -> str:
        if self.kind == "nearest":
            return "nearest"
        if self.kind == "last":
            return f"last={self.percent:g}"
        return f"{self.kind}={','.join(self.values)}"


@dataclass(frozen=True)
class Selection:
    """One part of one sequence: ``cameras`` (serials) × ``timesteps`` (stored timestep values), both in stored order."""

    cameras: tuple[str, ...]
    timesteps: tuple[int, ...]

    def __bool__(self) -> bool:
        return bool(self.cameras) and bool(self.timesteps)


def parse_split(spec: str | SplitSpec | None, benchmark: str) -> SplitSpec:
    """The :class:`SplitSpec` of ``spec`` (``None``: the benchmark's default, :data:`DEFAULT_SPLITS`).

    Raises :class:`SplitError` for an unknown kind, a bad percentage, a serial that is not a train camera
    of the benchmark or a sequence that has no published video."""
    b = get_benchmark(benchmark)
    if isinstance(spec, SplitSpec):
        parsed = spec
    else:
        text = DEFAULT_SPLITS[b.name] if spec is None else str(spec).strip()
        kind, _, arg = text.partition("=")
        kind = kind.strip()
        if kind == "nearest" and not arg:
            parsed = SplitSpec("nearest")
        elif kind == "last" and arg:
            try:
                percent = float(arg.rstrip("%"))
            except ValueError:
                raise SplitError(f"split {text!r}: 'last=P' takes a percentage, e.g. last=10") from None
            parsed = SplitSpec("last", percent=percent)
        elif kind in ("cameras", "sequences") and arg:
            parsed = SplitSpec(kind, tuple(v.strip() for v in arg.split(",") if v.strip()))  # type: ignore[arg-type]
        else:
            raise SplitError(
                f"unknown split {text!r}: expected 'nearest', 'cameras=S1,S2', 'last=P' (percent of frames) "
                f"or 'sequences=A,B'"
            )
    if parsed.kind == "last" and not 0 < parsed.percent < 100:
        raise SplitError(f"split {parsed}: the held-out share must be between 0 and 100 percent")
    if parsed.kind == "nearest" and b.name != NVS:
        raise SplitError(f"split 'nearest' is for the nvs benchmark ({b.name} has one train camera): use 'last=P' or 'sequences=A,B'")
    if parsed.kind == "cameras":
        if not parsed.values:
            raise SplitError("split 'cameras=' names no camera")
        bad = [s for s in parsed.values if s not in b.train_serials]
        if bad:
            raise SplitError(
                f"split {parsed}: {', '.join(bad)} not train cameras of {b.name} (validation cameras must have "
                f"published video: {', '.join(b.train_serials)})"
            )
        if len(set(parsed.values)) == len(b.train_serials):
            raise SplitError(f"split {parsed}: leaves no camera to train on")
    if parsed.kind == "sequences":
        published = sorted({s for p in b.participants for s in b.video_sequences(p)})
        bad = [s for s in parsed.values if s not in published]
        if not parsed.values or bad:
            raise SplitError(f"split {parsed}: {', '.join(bad) or 'no sequence'} not a sequence with video in {b.name} "
                             f"(choose from {', '.join(published)})")
    return parsed


def camera_centres(world_2_cam: np.ndarray) -> np.ndarray:
    """Camera centres ``(C, 3) float64`` in world coordinates (metres) from ``world_2_cam (C, 4, 4)`` (OpenCV)."""
    w2c = np.asarray(world_2_cam, dtype=np.float64)
    rot, t = w2c[:, :3, :3], w2c[:, :3, 3]
    return -np.einsum("cji,cj->ci", rot, t)


def nearest_train_cameras(serials: Sequence[str], world_2_cam: np.ndarray, benchmark: str = NVS) -> tuple[str, ...]:
    """The ``"nearest"`` validation cameras: for each hold-out camera of ``benchmark`` (in its order), the
    nearest train camera (camera-centre distance) not chosen before; ties (within 1 µm) go to the smaller serial.

    ``serials (C,)`` and ``world_2_cam (C, 4, 4) float64`` are a participant's whole rig (the store's
    calibration group). Raises :class:`SplitError` when a hold-out or every train camera is missing."""
    b = get_benchmark(benchmark)
    serials = [str(s) for s in serials]
    missing = [s for s in b.hold_out_serials if s not in serials]
    if missing:
        raise SplitError(f"split 'nearest': hold-out camera(s) {', '.join(missing)} have no calibration")
    centres = camera_centres(world_2_cam)
    train = sorted(s for s in serials if s in b.train_serials)
    chosen: list[str] = []
    for hold in b.hold_out_serials:
        c = centres[serials.index(hold)]
        # distances rounded to 1 µm, so that equal distances tie exactly and the smaller serial wins
        options = [(round(float(np.linalg.norm(centres[serials.index(s)] - c)), 6), s) for s in train if s not in chosen]
        if not options:
            raise SplitError("split 'nearest': not enough train cameras with calibration")
        chosen.append(min(options)[1])
    return tuple(chosen)


def split_sequence(
    spec: str | SplitSpec | None,
    benchmark: str,
    sequence: str,
    cameras: Sequence[str],
    timesteps: Sequence[int],
    rig_serials: Sequence[str] = (),
    rig_world_2_cam: np.ndarray | None = None,
) -> dict[str, Selection]:
    """Split one stored sequence into ``{"train": Selection, "validation": Selection, "all": Selection}``.

    ``cameras``: the sequence's stored serials; ``timesteps``: its stored timesteps (ascending);
    ``rig_serials``/``rig_world_2_cam (C, 4, 4)``: the participant's calibration (needed by ``"nearest"``).
    A part may be empty (a sequence that is all validation under ``sequences=``)."""
    s = parse_split(spec, benchmark)
    cams, ts = tuple(str(c) for c in cameras), tuple(int(t) for t in timesteps)
    everything = Selection(cams, ts)
    if s.kind in ("nearest", "cameras"):
        if s.kind == "nearest":
            if rig_world_2_cam is None:
                raise SplitError("split 'nearest' needs the participant's calibration")
            held = set(nearest_train_cameras(rig_serials, rig_world_2_cam, benchmark))
        else:
            held = set(s.values)
        train = Selection(tuple(c for c in cams if c not in held), ts)
        validation = Selection(tuple(c for c in cams if c in held), ts)
    elif s.kind == "last":
        n_val = max(1, math.ceil(len(ts) * s.percent / 100.0)) if ts else 0
        n_val = min(n_val, max(len(ts) - 1, 0)) if len(ts) > 1 else n_val
        train = Selection(cams, ts[: len(ts) - n_val])
        validation = Selection(cams, ts[len(ts) - n_val:])
    else:  # sequences
        if sequence in s.values:
            train, validation = Selection(cams, ()), everything
        else:
            train, validation = everything, Selection(cams, ())
    return {"train": train, "validation": validation, "all": everything}


def check_part(part: str | None) -> str:
    """``part`` (``"train"``, ``"validation"``, ``"all"``; ``None`` → ``"all"``) checked."""
    if part is None:
        return "all"
    if part not in SPLIT_PARTS:
        raise SplitError(f"split part must be one of {', '.join(SPLIT_PARTS)}, not {part!r}")
    return part


def describe(spec: str | SplitSpec | None, benchmark: str) -> str:
    """One line naming the split (for reports)."""
    return str(parse_split(spec, benchmark))


__all__ = [
    "DEFAULT_SPLITS", "SPLIT_PARTS", "Selection", "SplitError", "SplitSpec", "camera_centres", "check_part",
    "describe", "nearest_train_cameras", "parse_split", "split_sequence",
]
