"""The NeRSemble benchmarks' facts: ids, sequences, serials, splits, resolutions, fps and paths.

The single source of truth: no other module spells a participant id, a serial, a sequence name
or a raw/server path pattern. Relative paths use ``/`` and are the same on disk (below
``<raw root>/<benchmark>/``) and on the server (below ``<access URL>/<benchmark>/``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from .errors import SelectionError

NVS = "nvs"
MONO = "mono_flame_avatar"
SVFR = "svfr"
#: The two video benchmarks (each has a :class:`Benchmark` with sequences, cameras and videos).
BENCHMARK_NAMES: tuple[str, ...] = (NVS, MONO)
#: Every published benchmark: the video ones and SVFR (single-view face reconstruction: still images, no
#: calibration; its facts are ``SVFR_*`` below, not a :class:`Benchmark`).
ALL_BENCHMARK_NAMES: tuple[str, ...] = (NVS, MONO, SVFR)

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
    """The constants of video benchmark ``name`` (``"nvs"`` or ``"mono_flame_avatar"``).

    ``"svfr"`` has no videos and so no :class:`Benchmark`: its facts are ``SVFR_PARTICIPANTS``, ``SVFR_IMAGE_KEYS``.
    """
    try:
        return BENCHMARKS[name]
    except (KeyError, TypeError):
        if name == SVFR:
            raise UnknownIdError(
                f"benchmark {name!r} (single-view face reconstruction) has still images, not video sequences: "
                f"expected one of {_choices(BENCHMARK_NAMES)} here"
            ) from None
        raise UnknownIdError(f"unknown benchmark {name!r}: expected one of {_choices(ALL_BENCHMARK_NAMES)}") from None


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


def participants_of(benchmark: str) -> tuple[int, ...]:
    """The participant ids of any benchmark (``"nvs"``, ``"mono_flame_avatar"`` or ``"svfr"``), in official order."""
    return SVFR_PARTICIPANTS if benchmark == SVFR else get_benchmark(benchmark).participants


def check_participant(benchmark: str, participant: int) -> int:
    """Return ``participant`` as int if the benchmark (any of the three) has it, else raise :class:`UnknownIdError`."""
    participants = participants_of(benchmark)
    p = _participant_id(participant)
    if p not in participants:
        raise UnknownIdError(
            f"participant {participant} is not in the {benchmark} benchmark: expected one of {_choices(participants)}"
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
    names = [b if b == SVFR else check_benchmark(b) for b in benchmarks] or list(BENCHMARK_NAMES)
    wanted = [_participant_id(p) for p in participants or ()]
    for p in wanted:
        if not any(p in participants_of(n) for n in names):
            offered = "; ".join(f"{n}: {_choices(participants_of(n))}" for n in names) if len(names) > 1 \
                else _choices(participants_of(names[0]))
            raise UnknownIdError(f"participant {p} is not in the {' or '.join(names)} benchmark: expected one of {offered}")
    pairs = [(n, p) for n in names for p in participants_of(n) if not wanted or p in wanted]
    published = list(dict.fromkeys(s for n, p in pairs for s in _sequences_of(n, p)))
    whose = f"participant{'s' if len(wanted) != 1 else ''} {', '.join(f'{p:03d}' for p in wanted)}" if wanted else ""
    scope = f"the {' or '.join(names)} benchmark" + (f" for {whose}" if whose else "")
    for s in sequences or ():
        if s not in published:
            raise UnknownIdError(f"sequence {s!r} is not in {scope}: expected one of {_choices(published)}")


def _sequences_of(benchmark: str, participant: int) -> tuple[str, ...]:
    if benchmark == SVFR:
        return tuple(dict.fromkeys(k.sequence for k in svfr_image_keys(participant)))
    return BENCHMARKS[benchmark].sequences[participant]


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


# ---------------------------------------------------------------------------------------------
# SVFR: single-view 3D face reconstruction (official nersemble_benchmark 0.2.0).
# 391 still images, 512 x 512 RGB PNG, of 20 participants; no calibration, no metadata file.
# ---------------------------------------------------------------------------------------------

#: Height and width in pixels of every SVFR input image.
SVFR_IMAGE_SIZE: tuple[int, int] = (512, 512)
#: File name of the image inside its download folder.
SVFR_IMAGE_FILE = "rgb.png"


class SVFRImageKey(NamedTuple):
    """One SVFR input image: participant id, sequence name, timestep (frame index) and camera serial.

    The same key is spelled two ways: the download/server folder has the timestep unpadded
    (``EXP-4-lips_6_221501007``), a submission folder pads it to 3 digits (``EXP-4-lips_006_221501007``).
    ``sequence_name`` and ``to_key()`` mirror the official ``ImageKey`` (whose ``to_key`` is the padded spelling).
    """

    participant: int
    sequence: str
    timestep: int
    serial: str

    @property
    def sequence_name(self) -> str:
        """The sequence (the official ``ImageKey`` field name)."""
        return self.sequence

    def download_folder(self) -> str:
        """``"{sequence}_{timestep}_{serial}"``: the folder below ``svfr/<pid:03d>/`` on the server and on disk."""
        return f"{self.sequence}_{self.timestep}_{self.serial}"

    def submission_folder(self) -> str:
        """``"{sequence}_{timestep:03d}_{serial}"``: the folder below ``<pid:03d>/`` in a submission zip."""
        return f"{self.sequence}_{self.timestep:03d}_{self.serial}"

    def to_key(self) -> str:
        """The official ``ImageKey.to_key()`` spelling (= :meth:`submission_folder`)."""
        return self.submission_folder()

    def image_path(self) -> str:
        """Relative path of the image below ``<root>/svfr/``: ``"{pid:03d}/{download_folder}/rgb.png"``."""
        return svfr_image_path(self)

    @classmethod
    def from_folder(cls, participant: int, folder: str) -> SVFRImageKey:
        """Parse a folder name, padded or not (``"SEN-01-cramp_small_danger_42_222200037"``), into a key.

        Split from the right: the serial is the last ``_`` part, the timestep the one before (sequence names
        hold ``-``, ``+`` and ``_``). Raises ValueError naming the folder when it is not of that form. Whether
        the key is one of the benchmark's is :func:`check_svfr_key`'s business.
        """
        parts = folder.rsplit("_", 2)
        if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or not parts[2].isdigit() \
                or not parts[1].isascii() or not parts[2].isascii():
            raise ValueError(
                f"not an SVFR image folder name (expected <sequence>_<timestep>_<serial>, e.g. "
                f"'EXP-4-lips_6_221501007'): {folder!r}"
            )
        return cls(int(participant), parts[0], int(parts[1]), parts[2])


# The facts of the official constants (BENCHMARK_SVFR_IMAGE_KEYS), as download folder names per participant,
# in the official order (participants as published; each participant's folders sorted by name).
_SVFR_FOLDERS: dict[int, str] = {
    17: (
        "EMO-1-shout+laugh_156_221501007 EMO-1-shout+laugh_180_222200048 EMO-1-shout+laugh_339_222200039 "
        "EMO-2-surprise+fear_219_220700191 EMO-3-angry+sad_153_222200042 EXP-1-head_429_222200040 "
        "EXP-3-cheeks+nose_345_222200043 EXP-3-cheeks+nose_78_222200045 EXP-4-lips_423_222200036 "
        "EXP-4-lips_6_221501007 EXP-5-mouth_360_222200036 EXP-5-mouth_429_222200039 EXP-5-mouth_6_222200049 "
        "EXP-8-jaw-1_489_222200041 FREE_336_222200046 FREE_354_222200047 FREE_453_222200037 FREE_582_222200040 "
        "FREE_609_222200044 FREE_786_222200038"
    ),
    60: (
        "EMO-1-shout+laugh_0_222200041 EMO-1-shout+laugh_12_222200042 EMO-1-shout+laugh_177_222200049 "
        "EMO-1-shout+laugh_186_220700191 EMO-1-shout+laugh_21_222200037 EMO-1-shout+laugh_243_222200036 "
        "EMO-1-shout+laugh_27_222200043 EMO-1-shout+laugh_30_221501007 EMO-1-shout+laugh_33_222200047 "
        "EMO-1-shout+laugh_3_222200044 EMO-1-shout+laugh_51_222200048 EMO-1-shout+laugh_60_222200036 "
        "EMO-1-shout+laugh_75_222200045 EMO-1-shout+laugh_84_222200044 EMO-1-shout+laugh_87_222200037 "
        "SEN-10-port_strong_smokey_162_222200045 SEN-10-port_strong_smokey_177_222200038 "
        "SEN-10-port_strong_smokey_186_222200040 SEN-10-port_strong_smokey_198_222200039 "
        "SEN-10-port_strong_smokey_9_222200046"
    ),
    71: (
        "EMO-1-shout+laugh_0_222200046 EMO-1-shout+laugh_102_222200040 EMO-1-shout+laugh_120_220700191 "
        "EMO-1-shout+laugh_147_222200041 EMO-1-shout+laugh_153_222200047 EMO-1-shout+laugh_156_222200048 "
        "EMO-1-shout+laugh_174_222200044 EMO-1-shout+laugh_183_222200048 EMO-1-shout+laugh_186_222200036 "
        "EMO-1-shout+laugh_195_222200045 EMO-1-shout+laugh_213_221501007 EMO-1-shout+laugh_228_222200049 "
        "EMO-1-shout+laugh_234_222200047 EMO-1-shout+laugh_237_222200037 EMO-1-shout+laugh_240_222200038 "
        "EMO-1-shout+laugh_27_222200042 EMO-1-shout+laugh_36_222200039 EMO-1-shout+laugh_42_222200037 "
        "EMO-1-shout+laugh_48_222200043 EMO-1-shout+laugh_90_222200044"
    ),
    102: (
        "EMO-1-shout+laugh_0_222200048 EMO-1-shout+laugh_117_222200041 EMO-1-shout+laugh_123_221501007 "
        "EMO-1-shout+laugh_126_220700191 EMO-1-shout+laugh_129_222200044 EMO-1-shout+laugh_132_222200043 "
        "EMO-1-shout+laugh_135_222200046 EMO-1-shout+laugh_141_222200036 EMO-1-shout+laugh_147_222200047 "
        "EMO-1-shout+laugh_153_222200044 EMO-1-shout+laugh_3_222200037 EMO-1-shout+laugh_75_222200039 "
        "EMO-1-shout+laugh_81_222200045 EMO-1-shout+laugh_84_222200037 EMO-1-shout+laugh_90_222200040 "
        "EMO-1-shout+laugh_96_222200049 SEN-10-port_strong_smokey_102_222200042 "
        "SEN-10-port_strong_smokey_135_222200038 SEN-10-port_strong_smokey_36_222200040 "
        "SEN-10-port_strong_smokey_78_220700191"
    ),
    112: (
        "EMO-3-angry+sad_0_222200043 EMO-3-angry+sad_105_221501007 EMO-3-angry+sad_183_222200039 "
        "EMO-3-angry+sad_219_222200047 EMO-3-angry+sad_243_222200036 EMO-3-angry+sad_255_222200049 "
        "EMO-3-angry+sad_264_222200042 EMO-3-angry+sad_48_222200047 EMO-3-angry+sad_81_222200042 "
        "EMO-3-angry+sad_96_222200040 EXP-5-mouth_183_222200048 EXP-5-mouth_33_222200045 EXP-5-mouth_354_222200041 "
        "EXP-5-mouth_378_222200041 EXP-5-mouth_501_222200037 EXP-5-mouth_54_222200038 "
        "SEN-06-problems_wise_chief_0_222200046 SEN-06-problems_wise_chief_39_222200045 "
        "SEN-08-clothes_and_lodging_129_220700191 SEN-08-clothes_and_lodging_177_222200044"
    ),
    123: (
        "EMO-3-angry+sad_0_222200044 EMO-3-angry+sad_126_222200046 EMO-3-angry+sad_129_222200045 "
        "EMO-3-angry+sad_135_222200042 EMO-3-angry+sad_237_222200041 EMO-3-angry+sad_303_221501007 "
        "EMO-3-angry+sad_54_222200040 EMO-3-angry+sad_75_222200038 EMO-3-angry+sad_84_222200039 "
        "EXP-1-head_105_222200038 EXP-1-head_150_222200047 EXP-1-head_201_222200042 EXP-1-head_333_222200036 "
        "EXP-1-head_393_222200045 EXP-1-head_408_222200039 EXP-1-head_474_222200037 "
        "SEN-04-two_plus_seven_153_222200043 SEN-04-two_plus_seven_198_222200048 "
        "SEN-05-glow_eyes_sweet_girl_261_222200049 SEN-05-glow_eyes_sweet_girl_60_220700191"
    ),
    133: (
        "EMO-4-disgust+happy_0_222200038 EMO-4-disgust+happy_117_222200037 EMO-4-disgust+happy_135_222200036 "
        "EMO-4-disgust+happy_210_222200045 EMO-4-disgust+happy_237_222200048 EMO-4-disgust+happy_258_222200049 "
        "EMO-4-disgust+happy_321_222200043 EMO-4-disgust+happy_336_222200039 EMO-4-disgust+happy_345_222200040 "
        "EMO-4-disgust+happy_360_222200041 EMO-4-disgust+happy_414_222200041 EMO-4-disgust+happy_486_222200037 "
        "EMO-4-disgust+happy_504_222200047 EMO-4-disgust+happy_570_222200049 SEN-03-pluck_bright_rose_0_220700191 "
        "SEN-03-pluck_bright_rose_129_222200042 SEN-03-pluck_bright_rose_153_221501007 "
        "SEN-03-pluck_bright_rose_18_222200044 SEN-03-pluck_bright_rose_246_220700191 "
        "SEN-03-pluck_bright_rose_315_222200046"
    ),
    139: (
        "EMO-3-angry+sad_0_222200044 EMO-3-angry+sad_123_220700191 EMO-3-angry+sad_159_222200046 "
        "EMO-3-angry+sad_201_222200044 EMO-3-angry+sad_222_221501007 EMO-3-angry+sad_39_222200049 "
        "EMO-3-angry+sad_45_222200039 EMO-3-angry+sad_51_222200048 EMO-3-angry+sad_84_222200036 "
        "EMO-3-angry+sad_9_222200047 EXP-3-cheeks+nose_0_222200040 EXP-3-cheeks+nose_177_222200041 "
        "EXP-3-cheeks+nose_222_222200036 EXP-3-cheeks+nose_258_222200043 EXP-3-cheeks+nose_294_222200045 "
        "EXP-3-cheeks+nose_63_222200037 SEN-09-frown_events_bad_135_222200042 SEN-09-frown_events_bad_186_222200038 "
        "SEN-09-frown_events_bad_201_222200045 SEN-09-frown_events_bad_30_222200041"
    ),
    175: (
        "EMO-2-surprise+fear_384_222200043 EMO-2-surprise+fear_54_222200037 EMO-2-surprise+fear_84_222200039 "
        "EMO-3-angry+sad_306_222200048 EMO-4-disgust+happy_255_221501007 EMO-4-disgust+happy_321_220700191 "
        "EXP-2-eyes_108_222200040 EXP-2-eyes_426_222200036 EXP-2-eyes_75_222200047 EXP-4-lips_429_222200049 "
        "EXP-5-mouth_153_222200044 EXP-8-jaw-1_558_222200045 EXP-8-jaw-1_582_222200046 EXP-8-jaw-1_591_222200044 "
        "EXP-8-jaw-1_69_222200038 EXP-9-jaw-2_609_222200042 FREE_195_221501007 FREE_354_222200047 FREE_729_222200041"
    ),
    178: (
        "EMO-3-angry+sad_0_222200045 EMO-3-angry+sad_102_222200038 EMO-3-angry+sad_126_221501007 "
        "EMO-3-angry+sad_144_222200036 EMO-3-angry+sad_171_221501007 EMO-3-angry+sad_174_222200048 "
        "EMO-3-angry+sad_189_222200047 EMO-3-angry+sad_225_222200049 EMO-3-angry+sad_246_222200040 "
        "EMO-3-angry+sad_306_222200039 EMO-3-angry+sad_318_222200041 EMO-3-angry+sad_339_220700191 "
        "EMO-3-angry+sad_342_222200037 EMO-3-angry+sad_345_222200042 EMO-3-angry+sad_378_222200038 "
        "EMO-3-angry+sad_3_222200046 EMO-3-angry+sad_57_222200048 EMO-3-angry+sad_72_222200043 "
        "EMO-3-angry+sad_81_222200041 EMO-3-angry+sad_90_222200045"
    ),
    183: (
        "EMO-4-disgust+happy_123_222200039 EMO-4-disgust+happy_12_222200049 EMO-4-disgust+happy_153_222200041 "
        "EMO-4-disgust+happy_177_221501007 EMO-4-disgust+happy_18_222200043 EMO-4-disgust+happy_222_222200040 "
        "EMO-4-disgust+happy_240_222200045 EMO-4-disgust+happy_273_222200048 EMO-4-disgust+happy_312_222200038 "
        "EMO-4-disgust+happy_324_222200037 EMO-4-disgust+happy_336_222200036 EMO-4-disgust+happy_393_222200046 "
        "EMO-4-disgust+happy_39_222200040 EMO-4-disgust+happy_408_222200036 EMO-4-disgust+happy_459_222200047 "
        "EMO-4-disgust+happy_99_222200039 SEN-10-port_strong_smokey_102_222200038 "
        "SEN-10-port_strong_smokey_126_220700191 SEN-10-port_strong_smokey_138_222200047 "
        "SEN-10-port_strong_smokey_198_222200042"
    ),
    194: (
        "EMO-1-shout+laugh_0_222200040 EMO-1-shout+laugh_162_222200043 EMO-1-shout+laugh_165_222200049 "
        "EMO-1-shout+laugh_180_222200046 EMO-1-shout+laugh_189_222200042 EMO-1-shout+laugh_219_222200047 "
        "EMO-1-shout+laugh_291_222200041 EMO-1-shout+laugh_351_222200048 EMO-1-shout+laugh_51_222200036 "
        "EMO-1-shout+laugh_54_221501007 EMO-1-shout+laugh_57_222200037 EMO-1-shout+laugh_63_222200038 "
        "SEN-07-fond_note_fried_162_220700191 SEN-07-fond_note_fried_177_222200049 "
        "SEN-07-fond_note_fried_186_220700191 SEN-07-fond_note_fried_204_222200044 "
        "SEN-07-fond_note_fried_210_222200045 SEN-07-fond_note_fried_42_222200042 SEN-07-fond_note_fried_54_222200039"
    ),
    215: (
        "EMO-4-disgust+happy_183_221501007 EMO-4-disgust+happy_222_222200037 EMO-4-disgust+happy_24_222200048 "
        "EMO-4-disgust+happy_261_222200047 EMO-4-disgust+happy_291_222200042 EMO-4-disgust+happy_30_222200040 "
        "EMO-4-disgust+happy_327_222200043 EMO-4-disgust+happy_48_222200036 EMO-4-disgust+happy_60_222200038 "
        "EMO-4-disgust+happy_63_222200041 SEN-07-fond_note_fried_174_222200046 SEN-07-fond_note_fried_315_222200041 "
        "SEN-07-fond_note_fried_51_221501007"
    ),
    226: (
        "EMO-4-disgust+happy_117_222200036 EMO-4-disgust+happy_249_220700191 EMO-4-disgust+happy_306_222200045 "
        "EMO-4-disgust+happy_321_222200039 EXP-1-head_117_222200041 EXP-1-head_252_222200043 EXP-1-head_279_222200047 "
        "EXP-1-head_306_222200040 EXP-1-head_321_222200049 EXP-1-head_333_222200042 EXP-1-head_408_222200048 "
        "EXP-1-head_417_222200038 EXP-1-head_48_222200041 EXP-1-head_90_222200037 EXP-1-head_99_222200043 "
        "SEN-03-pluck_bright_rose_246_222200047 SEN-03-pluck_bright_rose_252_221501007 "
        "SEN-03-pluck_bright_rose_264_220700191 SEN-03-pluck_bright_rose_303_222200046 "
        "SEN-03-pluck_bright_rose_81_222200048"
    ),
    256: (
        "EMO-2-surprise+fear_189_222200049 EMO-2-surprise+fear_198_222200048 EMO-2-surprise+fear_210_222200046 "
        "EMO-2-surprise+fear_237_222200046 EMO-2-surprise+fear_246_222200040 EMO-2-surprise+fear_282_222200037 "
        "EMO-2-surprise+fear_381_222200038 EMO-2-surprise+fear_87_222200039 EMO-2-surprise+fear_96_222200044 "
        "EXP-3-cheeks+nose_0_221501007 EXP-3-cheeks+nose_114_222200043 EXP-3-cheeks+nose_12_222200038 "
        "EXP-3-cheeks+nose_144_222200044 EXP-3-cheeks+nose_171_222200045 EXP-3-cheeks+nose_216_222200045 "
        "EXP-3-cheeks+nose_381_222200036 EXP-3-cheeks+nose_402_222200042 EXP-3-cheeks+nose_444_222200047 "
        "EXP-3-cheeks+nose_90_220700191 SEN-09-frown_events_bad_159_222200041"
    ),
    266: (
        "EMO-1-shout+laugh_0_222200049 EMO-1-shout+laugh_114_222200046 EMO-1-shout+laugh_144_222200039 "
        "EMO-1-shout+laugh_171_222200042 EMO-1-shout+laugh_192_222200048 EMO-1-shout+laugh_204_222200047 "
        "EMO-1-shout+laugh_210_222200045 EMO-1-shout+laugh_219_222200046 EMO-1-shout+laugh_225_222200049 "
        "EMO-1-shout+laugh_234_222200038 EMO-1-shout+laugh_333_222200047 EMO-1-shout+laugh_78_220700191 "
        "EMO-1-shout+laugh_87_222200043 EMO-1-shout+laugh_90_222200036 SEN-10-port_strong_smokey_171_222200037 "
        "SEN-10-port_strong_smokey_186_222200038 SEN-10-port_strong_smokey_198_222200041 "
        "SEN-10-port_strong_smokey_219_222200043 SEN-10-port_strong_smokey_258_222200040 "
        "SEN-10-port_strong_smokey_54_221501007"
    ),
    289: (
        "EMO-2-surprise+fear_0_222200040 EMO-2-surprise+fear_0_222200048 EMO-2-surprise+fear_123_221501007 "
        "EMO-2-surprise+fear_150_222200043 EMO-2-surprise+fear_168_222200036 EMO-2-surprise+fear_177_222200037 "
        "EMO-2-surprise+fear_192_222200042 EMO-2-surprise+fear_213_222200046 EMO-2-surprise+fear_258_222200039 "
        "EMO-2-surprise+fear_264_222200038 EMO-2-surprise+fear_267_220700191 EMO-2-surprise+fear_291_222200041 "
        "EMO-2-surprise+fear_42_222200040 EMO-2-surprise+fear_51_222200045 EMO-2-surprise+fear_54_222200047 "
        "EMO-2-surprise+fear_60_222200038 SEN-09-frown_events_bad_243_222200041 SEN-09-frown_events_bad_273_222200049 "
        "SEN-09-frown_events_bad_66_222200047 SEN-09-frown_events_bad_75_222200045"
    ),
    310: (
        "EMO-1-shout+laugh_0_222200037 EMO-1-shout+laugh_120_222200043 EMO-1-shout+laugh_162_222200049 "
        "EMO-1-shout+laugh_168_222200048 EMO-1-shout+laugh_171_222200046 EMO-1-shout+laugh_180_222200040 "
        "EMO-1-shout+laugh_189_222200041 EMO-1-shout+laugh_195_222200047 EMO-1-shout+laugh_198_222200037 "
        "EMO-1-shout+laugh_201_222200047 EMO-1-shout+laugh_207_220700191 EMO-1-shout+laugh_219_222200036 "
        "EMO-1-shout+laugh_243_222200040 EMO-1-shout+laugh_288_222200036 EMO-1-shout+laugh_330_222200038 "
        "EMO-1-shout+laugh_72_222200042 EMO-1-shout+laugh_75_222200039 EMO-1-shout+laugh_78_222200045 "
        "EMO-1-shout+laugh_87_221501007 EMO-1-shout+laugh_99_222200046"
    ),
    320: (
        "EMO-4-disgust+happy_150_222200045 EMO-4-disgust+happy_213_222200047 EMO-4-disgust+happy_219_222200041 "
        "EMO-4-disgust+happy_231_222200038 EMO-4-disgust+happy_234_220700191 EMO-4-disgust+happy_57_222200042 "
        "EMO-4-disgust+happy_69_221501007 EMO-4-disgust+happy_75_222200049 EMO-4-disgust+happy_90_222200046 "
        "EXP-4-lips_132_222200041 EXP-4-lips_165_222200044 EXP-4-lips_237_222200044 EXP-4-lips_252_222200037 "
        "EXP-4-lips_264_222200039 EXP-4-lips_342_222200037 EXP-4-lips_366_222200036 EXP-4-lips_405_222200040 "
        "EXP-4-lips_447_222200048 EXP-4-lips_480_222200043 EXP-4-lips_513_222200048"
    ),
    372: (
        "EMO-2-surprise+fear_0_222200036 EMO-2-surprise+fear_117_222200048 EMO-2-surprise+fear_135_222200039 "
        "EMO-2-surprise+fear_144_221501007 EMO-2-surprise+fear_165_222200045 EMO-2-surprise+fear_183_222200037 "
        "EMO-2-surprise+fear_186_222200038 EMO-2-surprise+fear_192_220700191 EMO-2-surprise+fear_198_222200046 "
        "EMO-2-surprise+fear_207_222200043 EMO-2-surprise+fear_216_222200047 EMO-2-surprise+fear_225_222200041 "
        "EMO-2-surprise+fear_237_222200044 EMO-2-surprise+fear_252_222200047 EMO-2-surprise+fear_261_222200042 "
        "EMO-2-surprise+fear_270_222200045 EMO-2-surprise+fear_273_222200041 EMO-2-surprise+fear_291_222200049 "
        "EMO-2-surprise+fear_315_222200040 EMO-2-surprise+fear_345_222200036"
    ),
}

#: The 20 SVFR participant ids, in official order.
SVFR_PARTICIPANTS: tuple[int, ...] = tuple(_SVFR_FOLDERS)

#: All 391 SVFR image keys, in official order.
SVFR_IMAGE_KEYS: tuple[SVFRImageKey, ...] = tuple(
    SVFRImageKey.from_folder(p, folder) for p, folders in _SVFR_FOLDERS.items() for folder in folders.split()
)
_SVFR_KEY_SET = frozenset(SVFR_IMAGE_KEYS)


def svfr_image_keys(participant: int | None = None) -> tuple[SVFRImageKey, ...]:
    """The SVFR image keys of one participant (all 391 when ``None``), in official order.

    Raises :class:`UnknownIdError` for a participant that SVFR does not have.
    """
    if participant is None:
        return SVFR_IMAGE_KEYS
    p = check_participant(SVFR, participant)
    return tuple(k for k in SVFR_IMAGE_KEYS if k.participant == p)


def check_svfr_key(key: SVFRImageKey) -> SVFRImageKey:
    """Return ``key`` if it is one of the 391 published SVFR images, else raise :class:`UnknownIdError` naming it."""
    key = SVFRImageKey(*key)
    check_participant(SVFR, key.participant)
    if key not in _SVFR_KEY_SET:
        raise UnknownIdError(
            f"SVFR participant {key.participant:03d} has no image {key.download_folder()!r} "
            f"(sequence {key.sequence!r}, timestep {key.timestep}, serial {key.serial}): "
            f"it has {len(svfr_image_keys(key.participant))} images"
        )
    return key


def svfr_image_path(key: SVFRImageKey) -> str:
    """Relative path of an SVFR image below ``<root>/svfr/`` (disk) or ``<URL>/svfr/`` (server):
    ``"{pid:03d}/{sequence}_{timestep}_{serial}/rgb.png"`` (timestep unpadded)."""
    return f"{participant_dir(key.participant)}/{key.download_folder()}/{SVFR_IMAGE_FILE}"
