"""A benchmark's ``metadata.json``: which participants/sequences exist and how many frames each has."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..core.benchmark import MONO, NVS, get_benchmark
from ._json import dump_json, load_json
from .errors import RawFormatError

__all__ = ["BenchmarkMetadata", "read_metadata", "parse_metadata", "write_metadata"]


@dataclass
class BenchmarkMetadata:
    """Parsed ``metadata.json``.

    ``benchmark`` is ``"nvs"`` or ``"mono_flame_avatar"``; ``raw`` the JSON as loaded;
    ``frame_counts[(participant, sequence)]`` the number of frames the published videos have and a
    submission video must have. NVS additionally lists the ``timesteps`` evaluated; they are in
    ``raw``.
    """

    benchmark: str
    raw: dict
    frame_counts: dict[tuple[int, str], int]

    @property
    def participants(self) -> list[int]:
        """Participant ids listed, sorted."""
        return sorted({p for p, _ in self.frame_counts})

    def n_frames(self, participant: int, sequence: str) -> int:
        """Frames of ``(participant, sequence)``; KeyError naming the pair if it is not listed."""
        try:
            return self.frame_counts[(int(participant), sequence)]
        except KeyError:
            raise KeyError(f"{self.benchmark} metadata lists no sequence {sequence!r} for participant {int(participant):03d}") from None


def _pid(source: str, key: Any) -> int:
    try:
        return int(key)
    except (TypeError, ValueError):
        raise RawFormatError(source, f"metadata participant key {key!r} is not an integer id") from None


def _count(source: str, where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RawFormatError(source, f"metadata {where}: expected a non-negative integer, found {value!r}")
    return value


def parse_metadata(obj: dict, benchmark: str, *, source: str = "<metadata>") -> BenchmarkMetadata:
    """Parse an already loaded ``metadata.json`` object of ``benchmark``; ``source`` names it in errors.

    NVS: ``{"sequences": {"<pid>": {"sequence_name": str, "timesteps": [int]}}}``, frame count
    ``len(timesteps)``. Mono: ``{"participants_metadata": {"<pid>": {"sequences_metadata":
    {"<seq>": {"n_frames": int}}}}}``.
    """
    get_benchmark(benchmark)
    counts: dict[tuple[int, str], int] = {}
    if not isinstance(obj, dict):
        raise RawFormatError(source, f"metadata must be a JSON object, found {type(obj).__name__}")
    if benchmark == NVS:
        seqs = obj.get("sequences")
        if not isinstance(seqs, dict):
            raise RawFormatError(source, "nvs metadata needs 'sequences': {\"<pid>\": {\"sequence_name\", \"timesteps\"}}")
        for key, entry in seqs.items():
            p = _pid(source, key)
            if not isinstance(entry, dict) or not isinstance(entry.get("sequence_name"), str) or not isinstance(entry.get("timesteps"), list):
                raise RawFormatError(source, f"nvs metadata sequences[{key!r}]: expected {{'sequence_name': str, 'timesteps': [int]}}, found {entry!r:.80}")
            for i, t in enumerate(entry["timesteps"]):
                _count(source, f"sequences[{key!r}].timesteps[{i}]", t)
            counts[(p, entry["sequence_name"])] = len(entry["timesteps"])
    elif benchmark == MONO:
        parts = obj.get("participants_metadata")
        if not isinstance(parts, dict):
            raise RawFormatError(source, "mono_flame_avatar metadata needs 'participants_metadata': {\"<pid>\": {\"sequences_metadata\": …}}")
        for key, entry in parts.items():
            p = _pid(source, key)
            seqs = entry.get("sequences_metadata") if isinstance(entry, dict) else None
            if not isinstance(seqs, dict):
                raise RawFormatError(source, f"mono_flame_avatar metadata participants_metadata[{key!r}]: expected 'sequences_metadata' mapping")
            for seq, meta in seqs.items():
                where = f"participants_metadata[{key!r}].sequences_metadata[{seq!r}].n_frames"
                if not isinstance(meta, dict) or "n_frames" not in meta:
                    raise RawFormatError(source, f"metadata {where}: missing")
                counts[(p, str(seq))] = _count(source, where, meta["n_frames"])
    return BenchmarkMetadata(benchmark=benchmark, raw=obj, frame_counts=counts)


def read_metadata(path: str | os.PathLike, benchmark: str) -> BenchmarkMetadata:
    """Read and parse ``<root>/<benchmark>/metadata.json``; errors name the file."""
    path = os.fspath(path)
    return parse_metadata(load_json(path, f"{benchmark} metadata"), benchmark, source=path)


def write_metadata(path: str | os.PathLike, obj: dict) -> None:
    """Write a metadata object (as :func:`parse_metadata` accepts it) as indented JSON."""
    dump_json(path, obj)
