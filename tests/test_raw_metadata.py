"""metadata.json of both benchmarks: frame counts per (participant, sequence), errors naming the file."""

from __future__ import annotations

import pytest

from nersemble_zarr.core.benchmark import MONO, NVS
from nersemble_zarr.raw import RawFormatError, parse_metadata, read_metadata, write_metadata

NVS_OBJ = {"sequences": {"388": {"sequence_name": "GLASSES", "timesteps": [0, 3, 6]}, "422": {"sequence_name": "EXP-2-eyes", "timesteps": []}}}
MONO_OBJ = {"participants_metadata": {"393": {"sequences_metadata": {"FREE": {"n_frames": 12}, "EXP-1-head": {"n_frames": 40}}}}}


def test_nvs_frame_count_is_the_number_of_timesteps(tmp_path):
    path = tmp_path / "metadata.json"
    write_metadata(path, NVS_OBJ)
    meta = read_metadata(path, NVS)
    assert meta.frame_counts == {(388, "GLASSES"): 3, (422, "EXP-2-eyes"): 0}
    assert meta.participants == [388, 422] and meta.raw == NVS_OBJ and meta.benchmark == NVS


def test_mono_frame_counts_per_sequence(tmp_path):
    path = tmp_path / "metadata.json"
    write_metadata(path, MONO_OBJ)
    meta = read_metadata(path, MONO)
    assert meta.n_frames(393, "FREE") == 12 and meta.n_frames(393, "EXP-1-head") == 40
    with pytest.raises(KeyError, match="no sequence 'HAIR' for participant 393"):
        meta.n_frames(393, "HAIR")


@pytest.mark.parametrize(
    "obj, benchmark, message",
    [
        ({"participants_metadata": {}}, NVS, "nvs metadata needs 'sequences'"),
        ({"sequences": {"388": {"sequence_name": "GLASSES"}}}, NVS, r"sequences\['388'\]: expected"),
        ({"sequences": {"abc": {"sequence_name": "GLASSES", "timesteps": []}}}, NVS, "'abc' is not an integer id"),
        ({"participants_metadata": {"393": {"sequences_metadata": {"FREE": {"n_frames": -1}}}}}, MONO, r"n_frames: expected a non-negative integer, found -1"),
        ({"participants_metadata": {"393": {"sequences_metadata": {"FREE": {}}}}}, MONO, r"n_frames: missing"),
        ([1, 2], MONO, "must be a JSON object, found list"),
    ],
)
def test_bad_content_names_file_and_place(tmp_path, obj, benchmark, message):
    path = tmp_path / "metadata.json"
    write_metadata(path, obj)
    with pytest.raises(RawFormatError, match=rf"{path}: .*{message}"):
        read_metadata(path, benchmark)


def test_parse_names_its_source_and_bad_json_is_named(tmp_path):
    with pytest.raises(RawFormatError, match="^server metadata: "):
        parse_metadata({}, MONO, source="server metadata")
    path = tmp_path / "metadata.json"
    path.write_text("{not json")
    with pytest.raises(RawFormatError, match=rf"{path}: expected JSON nvs metadata"):
        read_metadata(path, NVS)


def test_a_failed_write_keeps_the_previous_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "metadata.json"
    good = {"sequences": {"388": {"sequence_name": "GLASSES", "timesteps": [0, 1, 2]}}}
    write_metadata(path, good)
    before = path.read_bytes()
    unserialisable = {"sequences": {"388": {"sequence_name": "GLASSES", "timesteps": [0, 1, object()]}}}
    with pytest.raises(TypeError):
        write_metadata(path, unserialisable)  # fails after the first timesteps were serialised
    assert path.read_bytes() == before
    assert read_metadata(path, NVS).frame_counts == {(388, "GLASSES"): 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metadata.json"]
