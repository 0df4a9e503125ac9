"""The NeRSemble benchmarks' facts: ids, sequences, serials, splits, resolutions, fps and paths.

The single source of truth: no other module spells a participant id, a serial, a sequence name
or a raw/server path pattern. Relative paths use ``/`` and are the same on disk (below
``<raw root>/<benchmark>/``) and on the server (below ``<access URL>/<benchmark>/``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from .errors import SelectionError

NVS = "nvs"
MONO = "mono_flame_avatar"
BENCHMARK_NAMES: tuple[str, ...] = (NVS, MONO)

AssetKind = Literal["images", "alpha_maps"]
TrackingVersion = Literal[1, 2]

#: All 16 cameras of the NeRSemble rig, in the official toolkit's order.
SERIALS: tuple[str, ...] = (
    "222200042", "222200044", "222200046", "222200040", "222200036", "222200048", "220700191", "222200041",
    "222200037", "222200038", "222200047", "222200043", "222200049", "222200039", "222200045", "221501007",
)

#: Tracking file name per version; v2 is the current one and the one submissions must use.
TRACKING_FILES: dict[int, str] = {1: "flame2023_tracking.npz", 2: "flame2023_tracking_v2.npz"}
TRACKING_ASSETS: dict[int, str] = {1: "flame2023_tracking", 2: "flame2023_tracking_v2"}

#: The FLAME 2023 model's layout (the licensed ``flame2023.pkl``): vertices, faces, joints (root, neck,
#: jaw, two eyes), identity and expression coefficients, pose-corrective directions (9 per non-root joint).
FLAME_MODEL_FILE = "flame2023.pkl"
N_VERTICES = 5023
N_FACES = 9976
N_JOINTS = 5
N_SHAPE = 300
N_EXPRESSION = 100
N_POSE_BASIS = 9 * (N_JOINTS - 1)

#: Where users obtain the access URL (the URL itself is a secret and lives in their `.env`).
ACCESS_FORM_URL = (
    "https://docs.google.com/forms/d/e/1FAIpQLScYsXR8NVCi4nvmCbFNL0P9swsGodMnbntUJeFejtuKUMsY7Q/viewform"
)


@dataclass(frozen=True)
class Benchmark:
    """One benchmark's constants.

    ``sequences`` maps participant id → the sequences published for it (train first, then test).
    ``train_sequences``/``test_sequences`` are per-participant-independent for mono; for NVS every
    sequence is both trained on (train serials) and evaluated (hold-out serials).
    ``train_serials`` have published video; ``evaluation_serials`` are the cameras a submission
    must render. ``height``/``width`` are pixels of the published (and submitted) frames; ``fps``
    frames per second of videos.
    """

    name: str
    participants: tuple[int, ...]
    sequences: dict[int, tuple[str, ...]]
    train_sequences: dict[int, tuple[str, ...]]
    test_sequences: dict[int, tuple[str, ...]]
    train_serials: tuple[str, ...]
    hold_out_serials: tuple[str, ...]
    evaluation_serials: tuple[str, ...]
    height: int
    width: int
    fps: float
    has_pointclouds: bool
    has_tracking: bool

    @property
    def serials(self) -> tuple[str, ...]:
        """All 16 calibrated cameras (train and hold-out alike)."""
        return SERIALS

    def split_of(self, serial: str) -> str:
        """``"train"`` for a camera with published video, ``"hold_out"`` otherwise."""
        check_serial(serial)
        return "train" if serial in self.train_serials else "hold_out"

    def is_test_sequence(self, participant: int, sequence: str) -> bool:
        """True where only tracking is published (mono test sequences)."""
        return sequence in self.test_sequences.get(participant, ())

    def video_sequences(self, participant: int) -> tuple[str, ...]:
        """Sequences of a participant that have published video (train serials)."""
        return self.train_sequences[participant]

    def submission_keys(self) -> list[tuple[int, str, str]]:
        """Every ``(participant, sequence, serial)`` a complete submission holds, sorted."""
        keys = []
        for p in self.participants:
            evaluated = self.sequences[p] if self.name == NVS else self.test_sequences[p]
            for s in evaluated:
                for serial in self.evaluation_serials:
                    keys.append((p, s, serial))
        return sorted(keys)


_NVS_SEQUENCES = {388: "GLASSES", 422: "EXP-2-eyes", 443: "FREE", 445: "EXP-6-tongue-1", 475: "HAIR"}
_NVS_HOLD_OUT = ("222200046", "222200037", "222200039")  # left, center, right

NVS_BENCHMARK = Benchmark(
    name=NVS,
    participants=tuple(_NVS_SEQUENCES),
    sequences={p: (s,) for p, s in _NVS_SEQUENCES.items()},
    train_sequences={p: (s,) for p, s in _NVS_SEQUENCES.items()},
    test_sequences={p: (s,) for p, s in _NVS_SEQUENCES.items()},
    train_serials=tuple(s for s in SERIALS if s not in _NVS_HOLD_OUT),
    hold_out_serials=_NVS_HOLD_OUT,
    evaluation_serials=_NVS_HOLD_OUT,
    height=1604,
    width=1100,
    fps=73.0,
    has_pointclouds=True,
    has_tracking=False,
)

_MONO_PARTICIPANTS = (393, 404, 461, 477, 486)
_MONO_TRAIN = (
    "EXP-1-head", "EXP-2-eyes", "EXP-3-cheeks+nose", "EXP-4-lips", "EXP-5-mouth", "EXP-8-jaw-1", "EXP-9-jaw-2",
    "EMO-2-surprise+fear", "EMO-3-angry+sad", "EMO-4-disgust+happy",
    "SEN-01-cramp_small_danger", "SEN-02-same_phrase_thirty_times", "SEN-03-pluck_bright_rose",
    "SEN-04-two_plus_seven", "SEN-05-glow_eyes_sweet_girl", "SEN-06-problems_wise_chief",
    "SEN-07-fond_note_fried", "SEN-08-clothes_and_lodging",
)
_MONO_TEST = ("FREE", "EMO-1-shout+laugh", "SEN-09-frown_events_bad", "SEN-10-port_strong_smokey")
_MONO_TRAIN_SERIAL = "222200037"
_MONO_HOLD_OUT = ("222200046", "220700191", "222200039")  # left, center, right

MONO_BENCHMARK = Benchmark(
    name=MONO,
    participants=_MONO_PARTICIPANTS,
    sequences={p: _MONO_TRAIN + _MONO_TEST for p in _MONO_PARTICIPANTS},
    train_sequences={p: _MONO_TRAIN for p in _MONO_PARTICIPANTS},
    test_sequences={p: _MONO_TEST for p in _MONO_PARTICIPANTS},
    train_serials=(_MONO_TRAIN_SERIAL,),
    hold_out_serials=_MONO_HOLD_OUT,
    evaluation_serials=(_MONO_TRAIN_SERIAL,) + _MONO_HOLD_OUT,
    height=512,
    width=512,
    fps=24.3,
    has_pointclouds=False,
    has_tracking=True,
)

BENCHMARKS: dict[str, Benchmark] = {NVS: NVS_BENCHMARK, MONO: MONO_BENCHMARK}


class UnknownIdError(SelectionError):
    """A benchmark name, participant, sequence or serial that the benchmark does not have.

    A :class:`~nersemble_zarr.core.errors.SelectionError` (so also a ``ValueError``): the CLI prints its one-line
    message, which names the value and the valid choices, and exits with status 2.
    """


def _choices(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values) or "none"


def get_benchmark(name: str) -> Benchmark:
    """The constants of benchmark ``name`` (``"nvs"`` or ``"mono_flame_avatar"``)."""
    try:
        return BENCHMARKS[name]
    except (KeyError, TypeError):
        raise UnknownIdError(f"unknown benchmark {name!r}: expected one of {_choices(BENCHMARK_NAMES)}") from None


def check_benchmark(name: str) -> str:
    """Return ``name`` if it is a benchmark (``"nvs"``, ``"mono_flame_avatar"``), else raise :class:`UnknownIdError`."""
    return get_benchmark(name).name


def check_serial(serial: str, benchmark: str | None = None) -> str:
    """Return ``serial`` if it is one of the 16 rig cameras, else raise :class:`UnknownIdError`.

    All 16 cameras are calibrated in both benchmarks (``benchmark`` only names it in the message).
    """
    if serial not in SERIALS:
        where = f"the {benchmark} rig" if benchmark else "the rig"
        raise UnknownIdError(f"unknown camera serial {serial!r}: {where} has {_choices(sorted(SERIALS))}")
    return serial


def _participant_id(participant: object) -> int:
    if isinstance(participant, bool) or not isinstance(participant, (int, str)) and not hasattr(participant, "__index__"):
        raise UnknownIdError(f"participant must be an integer id such as 388, not {participant!r}")
    try:
        return int(participant)  # type: ignore[arg-type]
    except ValueError:
        raise UnknownIdError(f"participant must be an integer id such as 388, not {participant!r}") from None


def check_participant(benchmark: str, participant: int) -> int:
    """Return ``participant`` as int if the benchmark has it, else raise :class:`UnknownIdError`."""
    b = get_benchmark(benchmark)
    p = _participant_id(participant)
    if p not in b.participants:
        raise UnknownIdError(
            f"participant {participant} is not in the {benchmark} benchmark: expected one of {_choices(b.participants)}"
        )
    return p


def check_sequence(benchmark: str, participant: int, sequence: str) -> str:
    """Return ``sequence`` if the participant has it in the benchmark, else raise :class:`UnknownIdError`."""
    b = get_benchmark(benchmark)
    p = check_participant(benchmark, participant)
    if sequence not in b.sequences[p]:
        raise UnknownIdError(
            f"sequence {sequence!r} is not in the {benchmark} benchmark for participant {p:03d}: expected one of "
            f"{_choices(b.sequences[p])}"
        )
    return sequence


def check_timestep(timestep: object, timesteps: Sequence[int], where: str) -> int:
    """Return ``timestep`` as int if it is one of ``timesteps`` (those ``where`` holds, ascending), else raise
    :class:`~nersemble_zarr.core.errors.SelectionError` naming it and the valid ones (a run ``a..b`` when contiguous).

    ``where`` names what was searched, e.g. ``"nvs participant 388 sequence 'GLASSES'"``.
    """
    valid = [int(t) for t in timesteps]
    if not valid:
        raise SelectionError(f"{where} has no timesteps")
    if valid == list(range(valid[0], valid[-1] + 1)):
        shown = f"{valid[0]}..{valid[-1]}"
    else:
        shown = _choices(valid[:20]) + (f", ... ({len(valid)} in all)" if len(valid) > 20 else "")
    if isinstance(timestep, bool) or not isinstance(timestep, (int,)) and not hasattr(timestep, "__index__"):
        raise SelectionError(f"timestep must be an integer, not {timestep!r}: {where} has timesteps {shown}")
    t = int(timestep)  # type: ignore[call-overload]
    if t not in set(valid):
        raise SelectionError(f"timestep {t} is not in {where}: valid timesteps are {shown}")
    return t


def check_selection(
    benchmarks: Sequence[str], participants: Iterable[int] | None = None, sequences: Iterable[str] | None = None,
) -> None:
    """Raise :class:`UnknownIdError` (a :class:`~nersemble_zarr.core.errors.SelectionError`) unless every named
    benchmark, participant and sequence is published.

    ``benchmarks``: the benchmarks selected (all when empty). A participant must belong to one of them and
    a sequence to one of the selected participants (all of the benchmarks' participants when none is
    named). The message names the first value that fails and the valid choices. Whether a store or raw
    folder holds them is for the code reading it to say.
    """
    names = [check_benchmark(b) for b in benchmarks] or list(BENCHMARK_NAMES)
    wanted = [_participant_id(p) for p in participants or ()]
    for p in wanted:
        if not any(p in BENCHMARKS[n].participants for n in names):
            offered = "; ".join(f"{n}: {_choices(BENCHMARKS[n].participants)}" for n in names) if len(names) > 1 \
                else _choices(BENCHMARKS[names[0]].participants)
            raise UnknownIdError(f"participant {p} is not in the {' or '.join(names)} benchmark: expected one of {offered}")
    pairs = [(n, p) for n in names for p in BENCHMARKS[n].participants if not wanted or p in wanted]
    published = list(dict.fromkeys(s for n, p in pairs for s in BENCHMARKS[n].sequences[p]))
    whose = f"participant{'s' if len(wanted) != 1 else ''} {', '.join(f'{p:03d}' for p in wanted)}" if wanted else ""
    scope = f"the {' or '.join(names)} benchmark" + (f" for {whose}" if whose else "")
    for s in sequences or ():
        if s not in published:
            raise UnknownIdError(f"sequence {s!r} is not in {scope}: expected one of {_choices(published)}")


# ---------------------------------------------------------------------------------------------
# Path scheme: relative to <root>/<benchmark>/ on disk and <URL>/<benchmark>/ on the server.
# ---------------------------------------------------------------------------------------------

METADATA_FILE = "metadata.json"


def participant_dir(participant: int) -> str:
    """``"388"`` style folder name of a participant (zero-padded to 3 digits)."""
    return f"{int(participant):03d}"


def metadata_path() -> str:
    """Relative path of the benchmark's ``metadata.json``."""
    return METADATA_FILE


def calibration_path(participant: int) -> str:
    """Relative path of a participant's ``camera_params.json``."""
    return f"{participant_dir(participant)}/calibration/camera_params.json"


def sequence_dir(participant: int, sequence: str) -> str:
    """Relative folder holding one sequence's assets."""
    return f"{participant_dir(participant)}/sequences/{sequence}"


def video_path(participant: int, sequence: str, serial: str, kind: AssetKind = "images") -> str:
    """Relative path of a camera's RGB (``kind="images"``) or alpha (``"alpha_maps"``) mp4."""
    if kind not in ("images", "alpha_maps"):
        raise ValueError(f"video kind must be 'images' or 'alpha_maps', not {kind!r}")
    return f"{sequence_dir(participant, sequence)}/{kind}/cam_{serial}.mp4"


def pointcloud_path(participant: int, sequence: str, timestep: int) -> str:
    """Relative path of the ``.pcd`` point cloud of one timestep (NVS)."""
    return f"{sequence_dir(participant, sequence)}/pointclouds/frame_{int(timestep):05d}.pcd"


def tracking_path(participant: int, sequence: str, version: int = 2) -> str:
    """Relative path of a sequence's FLAME 2023 tracking npz (``version`` 1 or 2; 2 is current)."""
    if version not in TRACKING_FILES:
        raise ValueError(f"tracking version must be 1 or 2, not {version!r}")
    return f"{sequence_dir(participant, sequence)}/tracking/{TRACKING_FILES[version]}"


def submission_video_path(participant: int, sequence: str, serial: str) -> str:
    """Path of one rendered video inside a submission zip: ``<pid:03d>/<sequence>/cam_<serial>.mp4``."""
    return f"{participant_dir(participant)}/{sequence}/cam_{serial}.mp4"


def serial_from_video_name(name: str) -> str:
    """``"cam_222200037.mp4"`` → ``"222200037"``; raises ValueError for other names."""
    stem = name.rsplit("/", 1)[-1]
    if not (stem.startswith("cam_") and stem.endswith(".mp4")):
        raise ValueError(f"not a camera video name (expected cam_<serial>.mp4): {name!r}")
    return stem[len("cam_"):-len(".mp4")]
