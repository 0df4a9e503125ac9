"""The integrity guard: a missing or damaged store object never reads as data (issue #10, points 1, 2, 4, 13).

The corruption matrix: every damage kind of ``tests/damage.py`` (rows) × every reader of this package
(columns). Each cell damages a fresh copy of the session store and asserts that the reader raises a
:class:`StoreIntegrityError` whose one-line message names the store, the damaged object and, for chunk
damage, the camera / timesteps it holds. Columns are entries of :data:`READERS`: add one (``check``,
``info``, ``verify``) by adding a :class:`Reader` there; cells that do not apply go in :data:`NOT_DAMAGE`.
"""

from __future__ import annotations

import pickle
import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zarr

from damage import ARRAY_DAMAGE, corrupt_zarr_json, damaged_copy, shard_files
from nersemble_zarr.core import schema
from nersemble_zarr.core.benchmark import MONO, MONO_BENCHMARK, NVS
from nersemble_zarr.core.errors import CorruptObjectError, MissingObjectError, StoreIntegrityError

NVS_SEQ = "GLASSES"
MONO_SEQ = "EXP-1-head"
MONO_TEST_SEQ = "FREE"
RENDER_SERIAL = MONO_BENCHMARK.evaluation_serials[0]
RENDER_FRAMES = 2

#: Rows: the damage kinds of tests/damage.py, and the root zarr.json (point 4).
KINDS = [*ARRAY_DAMAGE, "missing_consolidated", "corrupt_root_zarr_json"]
#: Kinds that damage one chunk/shard object: the error also names the camera/timesteps it holds.
CHUNK_KINDS = {"missing_shard", "truncated_shard", "chunk_bit_flip", "index_bit_flip"}


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the expected warnings (consolidated metadata, incomplete cameras) of a read."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _camera_of(store: Path, array_path: str, key: str) -> str | None:
    """Serial of the camera whose frames the damaged object ``key`` (``.../c/<camera>/...``) holds."""
    parts = key.split("/c/")
    if len(parts) != 2 or array_path.rsplit("/", 1)[-1] not in (schema.IMAGES, schema.ALPHA):
        return None
    seq = zarr.open_group(store / array_path.rsplit("/", 1)[0], mode="r", use_consolidated=False)
    return str(seq["camera"][int(parts[1].split("/")[0])])


# ---------------------------------------------------------------------------------------------
# Readers (the columns)
# ---------------------------------------------------------------------------------------------


@dataclass
class Reader:
    """One column: the array it damages and how it reads. ``read(store, camera, ctx)`` must raise."""

    array: str
    read: Callable[[Path, str, dict], object]
    #: labels the error must name for chunk damage ("camera", "timesteps"), "" for none
    names: tuple[str, ...] = ("camera", "timesteps")


def _open_sequence(store: Path, camera: str, ctx: dict) -> object:
    from nersemble_zarr.read.store import open_sequence

    return open_sequence(store, NVS, 388, NVS_SEQ).compute()


def _open_store(store: Path, camera: str, ctx: dict) -> object:
    from nersemble_zarr.read.store import open_store

    return open_store(store)[f"{NVS}/388/{NVS_SEQ}"].to_dataset().compute()


def _nvs_image(store: Path, camera: str, ctx: dict) -> object:
    from nersemble_zarr.read.data_manager import NVSDataManager

    return NVSDataManager(store, 388).load_image(NVS_SEQ, camera, 0)


def _nvs_alpha(store: Path, camera: str, ctx: dict) -> object:
    from nersemble_zarr.read.data_manager import NVSDataManager

    return NVSDataManager(store, 388).load_alpha_map(NVS_SEQ, camera, 0)


def _mono_image(store: Path, camera: str, ctx: dict) -> object:
    from nersemble_zarr.read.data_manager import MonoFlameAvatarDataManager

    return MonoFlameAvatarDataManager(store, 393).load_image(MONO_SEQ, camera, 0, as_uint8=True)


def _frame_dataset(store: Path, camera: str, ctx: dict) -> object:
    pytest.importorskip("torch")  # the Python 3.12 CI job (.ci/py312) runs without torch
    from nersemble_zarr.read.torch_dataset import FrameDataset

    ds = FrameDataset(store, NVS, 388, NVS_SEQ, cameras=[camera] if camera else None)
    return [ds[i] for i in range(len(ds))]


def _flame_vertices(store: Path, camera: str, ctx: dict) -> object:
    pytest.importorskip("torch")  # the Python 3.12 CI job (.ci/py312) runs without torch
    from nersemble_zarr.flame.provider import flame_vertices
    from nersemble_zarr.read.store import open_sequence

    return flame_vertices(open_sequence(store, MONO, 393, MONO_TEST_SEQ), flame_model=ctx["flame_model"]).compute()


def _submit(store: Path, camera: str, ctx: dict) -> object:
    from nersemble_zarr.submission.writer import write_submission

    metadata = {"participants_metadata": {"393": {"sequences_metadata": {
        s: {"n_frames": RENDER_FRAMES} for s in MONO_BENCHMARK.test_sequences[393]}}}}
    return write_submission(store, MONO, ctx["tmp"] / "s.zip", metadata=metadata, finalize=False)


READERS: dict[str, Reader] = {
    "open_sequence": Reader(f"{NVS}/388/{NVS_SEQ}/images", _open_sequence),
    "open_store": Reader(f"{NVS}/388/{NVS_SEQ}/images", _open_store),
    "nvs_load_image": Reader(f"{NVS}/388/{NVS_SEQ}/images", _nvs_image),
    "nvs_load_alpha_map": Reader(f"{NVS}/388/{NVS_SEQ}/alpha", _nvs_alpha),
    "mono_load_image": Reader(f"{MONO}/393/{MONO_SEQ}/images", _mono_image),
    "frame_dataset": Reader(f"{NVS}/388/{NVS_SEQ}/images", _frame_dataset),
    "flame_vertices": Reader(f"{MONO}/393/{MONO_TEST_SEQ}/tracking_v2/expression", _flame_vertices, ("timesteps",)),
    "submit_renders": Reader(f"393/{MONO_TEST_SEQ}/{RENDER_SERIAL}", _submit, ("timestep",)),
}
#: (kind, reader) cells where the "damage" is none for that reader, with why.
NOT_DAMAGE = {
    ("missing_consolidated", "submit_renders"): "a renders store need not be consolidated (users write it)",
}


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def renders_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A consolidated renders store of one scored video (``393/FREE/<serial>``, 2 frames 512×512), written
    with the package's compressor chain (crc32c) and every chunk stored, as the submission docs advise."""
    path = tmp_path_factory.mktemp("renders") / "renders.zarr"
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(RENDER_FRAMES, 512, 512, 3), dtype=np.uint8)
    root = zarr.open_group(path, mode="w", zarr_format=3)
    root.require_group(f"393/{MONO_TEST_SEQ}").create_array(
        RENDER_SERIAL, data=frames, chunks=(1, 512, 512, 3), dimension_names=("timestep", "height", "width", "rgb"),
        **schema.chunk_codecs(),
    )
    with _quiet():
        zarr.consolidate_metadata(path)
    return path


def _source(reader: str, converted_store: Path, renders_store: Path) -> Path:
    return renders_store if reader == "submit_renders" else converted_store


def test_undamaged_copies_read_in_every_column(converted_store, renders_store, flame_model_path, tmp_path):
    """The matrix's control row: without damage every reader returns data (so a raise below is the damage's)."""
    for name, reader in READERS.items():
        store = _source(name, converted_store, renders_store)
        camera = _camera_of(store, reader.array, shard_files(store, reader.array)[0].relative_to(store).as_posix()) or ""
        ctx = {"tmp": tmp_path / name, "flame_model": flame_model_path}
        ctx["tmp"].mkdir()
        with _quiet():
            assert reader.read(store, camera, ctx) is not None, name


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("kind", KINDS)
def test_damaged_store_raises_naming_the_object(kind, reader, converted_store, renders_store, flame_model_path, tmp_path):
    if (kind, reader) in NOT_DAMAGE:
        pytest.skip(NOT_DAMAGE[(kind, reader)])
    spec = READERS[reader]
    source = _source(reader, converted_store, renders_store)
    first = shard_files(source, spec.array)[0].relative_to(source).as_posix()
    camera = _camera_of(source, spec.array, first) or ""
    copy = tmp_path / "store.zarr"
    if kind == "corrupt_root_zarr_json":
        shutil.copytree(source, copy)
        key = corrupt_zarr_json(copy, "")
    else:
        copy, key = damaged_copy(source, copy, kind, spec.array)
    ctx = {"tmp": tmp_path, "flame_model": flame_model_path}

    with _quiet(), pytest.raises(StoreIntegrityError) as info:
        spec.read(copy, camera, ctx)
    message = str(info.value)
    assert "\n" not in message.strip(), message  # one line
    assert str(copy) in message, message  # the store
    if kind == "missing_array_folder":
        assert spec.array in message and isinstance(info.value, MissingObjectError), message
    elif kind in CHUNK_KINDS:
        assert key in message, message  # the object
        expected_cls = MissingObjectError if kind == "missing_shard" else CorruptObjectError
        assert isinstance(info.value, expected_cls), message
        if "camera" in spec.names:
            assert f"camera {camera}" in message, message
        for label in spec.names:
            if label != "camera":
                assert label in message, message
    elif kind == "corrupt_zarr_json":
        assert key in message and isinstance(info.value, CorruptObjectError), message
    else:  # the root document
        assert "zarr.json" in message or "consolidated" in message, message
    assert "nersemble-zarr check" in message, message


# ---------------------------------------------------------------------------------------------
# Report columns: check, info and verify report the damage (a problem row, DAMAGED, a failed check)
# ---------------------------------------------------------------------------------------------


def _check(store: Path, ctx: dict) -> tuple[bool, str]:
    from nersemble_zarr.pipelines.check import check_store

    report = check_store(store, deep=True)
    return report.ok, "\n".join(f"{p.kind} {p.key} {p.array} {p.where()} {p.message}" for p in report.problems)


def _info(store: Path, ctx: dict) -> tuple[bool, str]:
    from nersemble_zarr.core.errors import NersembleZarrError
    from nersemble_zarr.pipelines.info import format_info, store_info

    try:
        info = store_info(store)
    except NersembleZarrError as e:  # a root it cannot read at all: one line naming it
        return False, str(e)
    return info.complete, format_info(info)


def _verify(store: Path, ctx: dict) -> tuple[bool, str]:
    from nersemble_zarr.pipelines.verify import verify_store

    report = verify_store(store, ctx["raw"], benchmarks=[NVS], participants=[388])
    return report.ok, report.summary()


REPORTERS: dict[str, Callable[[Path, dict], tuple[bool, str]]] = {"check": _check, "info": _info, "verify": _verify}
#: info reads the listing, the markers and metadata, never a shard index or chunk data: it says so and
#: points to check (these rows are check's; the reader columns above refuse the data itself).
REPORT_OUT_OF_REACH = {
    ("truncated_shard", "info"), ("chunk_bit_flip", "info"), ("index_bit_flip", "info"),
}


@pytest.mark.parametrize("reporter", list(REPORTERS))
@pytest.mark.parametrize("kind", KINDS)
def test_damaged_store_is_reported(kind, reporter, converted_store, sample_root, tmp_path):
    array = f"{NVS}/388/{NVS_SEQ}/images"
    copy = tmp_path / "store.zarr"
    if kind == "corrupt_root_zarr_json":
        shutil.copytree(converted_store, copy)
        key = corrupt_zarr_json(copy, "")
    else:
        copy, key = damaged_copy(converted_store, copy, kind, array)
    with _quiet():
        ok, text = REPORTERS[reporter](copy, {"raw": sample_root})
    if (kind, reporter) in REPORT_OUT_OF_REACH:
        assert "nersemble-zarr check" in text and "--deep" in text, text  # says what it did not check
        return
    assert not ok, text
    if reporter == "check":
        assert (key if kind != "missing_array_folder" else array) in text, text
    elif reporter == "info":
        assert "DAMAGED" in text or "zarr.json" in text, text
    else:
        expected = {"missing_consolidated": "consolidated", "corrupt_root_zarr_json": "zarr.json"}.get(kind, "images")
        assert expected in text, text


# ---------------------------------------------------------------------------------------------
# Checksums (point 2) and what the writers store
# ---------------------------------------------------------------------------------------------


def _arrays(group: zarr.Group) -> list[zarr.Array]:
    out = [a for _, a in group.arrays()]
    for _, child in group.groups():
        out += _arrays(child)
    return out


def _inner_codecs(arr: zarr.Array) -> tuple:
    codecs = arr.metadata.codecs
    if len(codecs) == 1 and hasattr(codecs[0], "codecs"):  # sharding: the inner chunk's chain
        return tuple(codecs[0].codecs)
    return tuple(codecs)


def test_every_array_of_a_converted_store_ends_its_chunk_codecs_with_crc32c(converted_store):
    from zarr.codecs import Crc32cCodec

    root = zarr.open_group(converted_store, mode="r", use_consolidated=False)
    arrays = _arrays(root)
    assert len(arrays) > 50
    missing = [a.path for a in arrays if not isinstance(_inner_codecs(a)[-1], Crc32cCodec)]
    assert missing == []


def test_every_chunk_of_a_converted_store_is_stored(converted_store):
    """Writers store every chunk (write_empty_chunks): an absent one can only mean a lost object."""
    root = zarr.open_group(converted_store, mode="r", use_consolidated=False)
    for arr in _arrays(root):
        grid = arr.shards or arr.chunks
        expected = int(np.prod([-(-n // g) for n, g in zip(arr.shape, grid)])) if arr.shape else 1
        stored = converted_store / arr.path / "c"  # a 0-d array's one chunk is the file "c" itself
        found = 1 if stored.is_file() else sum(1 for p in stored.rglob("*") if p.is_file())
        assert found == expected, arr.path


def test_an_all_fill_value_chunk_is_written_and_reads_back(tmp_path):
    """A chunk equal to the fill value (all-zero tracking, all-NaN vertices) is stored, so the guard never
    mistakes good data for a missing object."""
    from nersemble_zarr.read.store import as_zarr_store
    from nersemble_zarr.storage.integrity import read

    arr = zarr.create_array(tmp_path / "a.zarr", shape=(4, 3), chunks=(2, 3), dtype="float32", fill_value=np.nan,
                            **schema.chunk_codecs())
    arr[...] = np.full((4, 3), np.nan, np.float32)
    assert sorted(p.name for p in (tmp_path / "a.zarr" / "c").iterdir()) == ["0", "1"]
    guarded = zarr.open_array(as_zarr_store(tmp_path / "a.zarr"), mode="r")
    assert np.isnan(read(guarded)).all()


def test_a_store_written_without_crc32c_still_opens_and_reads(converted_store, tmp_path):
    """Stores from before the checksum (codec chain without crc32c) keep opening and reading bit-exactly."""
    from nersemble_zarr.read.store import open_sequence

    copy = tmp_path / "old.zarr"
    shutil.copytree(converted_store, copy)
    path = f"{NVS}/388/{NVS_SEQ}/images"
    old = zarr.open_array(copy / path, mode="r")
    data, attrs = old[...], dict(old.attrs)
    kwargs = schema.images_array_kwargs(*data.shape[:4], schema.ImageCodec(), shard_timesteps=old.shards[1])
    kwargs["compressors"] = kwargs["compressors"][:-1]  # the previous chain: blosc only
    new = zarr.create_array(copy / path, overwrite=True, attributes=attrs, **kwargs)
    new[...] = data
    assert not any(type(c).__name__ == "Crc32cCodec" for c in _inner_codecs(new))
    with _quiet():
        zarr.consolidate_metadata(copy)
        ds = open_sequence(copy, NVS, 388, NVS_SEQ)
    stored = [str(c) for c in zarr.open_array(copy / f"{NVS}/388/{NVS_SEQ}/camera", mode="r")[...]]
    np.testing.assert_array_equal(ds.images.values, data[[stored.index(c) for c in ds.camera.values]])


def test_guarded_reads_pickle_for_dask_distributed(converted_store, tmp_path):
    """The lazy arrays (guarded store and arrays inside) survive pickling, as dask.distributed ships them,
    and still raise after the round trip."""
    from nersemble_zarr.read.store import open_sequence

    copy, key = damaged_copy(converted_store, tmp_path / "s.zarr", "missing_shard", f"{NVS}/388/{NVS_SEQ}/images")
    with _quiet():
        images = open_sequence(copy, NVS, 388, NVS_SEQ).images.data
    clone = pickle.loads(pickle.dumps(images))
    with pytest.raises(MissingObjectError, match=key.replace("/", ".")):
        clone.compute(scheduler="sync")


def test_fsspec_urls_are_guarded_too(converted_store, tmp_path):
    from nersemble_zarr.read.store import open_sequence

    copy, key = damaged_copy(converted_store, tmp_path / "s.zarr", "missing_shard", f"{NVS}/388/{NVS_SEQ}/alpha")
    with _quiet():
        ds = open_sequence(f"file://{copy}", NVS, 388, NVS_SEQ)
    with pytest.raises(MissingObjectError, match=key):
        ds.alpha.compute()


# ---------------------------------------------------------------------------------------------
# Python-side argument checks (point 13)
# ---------------------------------------------------------------------------------------------

BAD_TIMESTEPS = [3.7, 3.0, "3", True, -1]


@pytest.mark.parametrize("bad", BAD_TIMESTEPS)
def test_data_manager_refuses_a_timestep_that_is_no_frame_index(converted_store, bad):
    from nersemble_zarr.read.data_manager import NVSDataManager

    dm = NVSDataManager(converted_store, 388)
    serial = dm.list_serials(NVS_SEQ)[0]
    for call in (lambda: dm.load_image(NVS_SEQ, serial, bad), lambda: dm.load_alpha_map(NVS_SEQ, serial, bad),
                 lambda: dm.load_pointcloud(NVS_SEQ, bad)):
        with pytest.raises(ValueError, match=f"timestep must be an integer frame index >= 0, not {bad!r}"):
            call()
    assert dm.load_image(NVS_SEQ, serial, np.int64(0), as_uint8=True).shape[-1] == 3  # numpy ints are fine


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_every_nth_frame_must_be_a_positive_integer(converted_store, bad):
    from nersemble_zarr.read.data_manager import NVSDataManager
    from nersemble_zarr.read.store import open_sequence, select_frames
    pytest.importorskip("torch")  # the Python 3.12 CI job (.ci/py312) runs without torch
    from nersemble_zarr.read.torch_dataset import FrameDataset

    dm = NVSDataManager(converted_store, 388)
    serial = dm.list_serials(NVS_SEQ)[0]
    pattern = f"every_nth_frame must be a positive integer .*not {bad!r}"
    with pytest.raises(ValueError, match=pattern):
        dm.load_all_images(NVS_SEQ, serial, every_nth_frame=bad)
    with pytest.raises(ValueError, match=pattern):
        dm.load_all_alpha_maps(NVS_SEQ, serial, every_nth_frame=bad)
    with _quiet():
        ds = open_sequence(converted_store, NVS, 388, NVS_SEQ)
    with pytest.raises(ValueError, match=pattern):
        select_frames(ds, every_nth_frame=bad)
    with pytest.raises(ValueError, match=pattern):
        FrameDataset(converted_store, NVS, 388, NVS_SEQ, every_nth_frame=bad)
    assert len(dm.load_all_images(NVS_SEQ, serial, every_nth_frame=3, as_uint8=True)) == 4  # 10 frames: 0 3 6 9


@pytest.mark.parametrize("bad", BAD_TIMESTEPS)
def test_select_frames_and_frame_dataset_refuse_a_timestep_that_is_no_frame_index(converted_store, bad):
    from nersemble_zarr.read.store import open_sequence, select_frames
    pytest.importorskip("torch")  # the Python 3.12 CI job (.ci/py312) runs without torch
    from nersemble_zarr.read.torch_dataset import FrameDataset

    with _quiet():
        ds = open_sequence(converted_store, NVS, 388, NVS_SEQ)
    pattern = f"timesteps must be an integer frame index >= 0, not {bad!r}"
    for value in (bad, [0, bad]):
        with pytest.raises(ValueError, match=pattern):
            select_frames(ds, timesteps=value)
        with pytest.raises(ValueError, match=pattern):
            FrameDataset(converted_store, NVS, 388, NVS_SEQ, timesteps=value)
    assert select_frames(ds, timesteps=[0, np.int64(2)]).sizes["timestep"] == 2


def test_frame_dataset_selects_timesteps_and_refuses_a_non_integer_index(converted_store):
    pytest.importorskip("torch")  # the Python 3.12 CI job (.ci/py312) runs without torch
    from nersemble_zarr.read.torch_dataset import FrameDataset

    full = FrameDataset(converted_store, NVS, 388, NVS_SEQ)
    picked = FrameDataset(converted_store, NVS, 388, NVS_SEQ, timesteps=slice(2, 8), every_nth_frame=2)
    assert len(picked) == len(full) // 10 * 3
    assert [picked.key(i)[3] for i in range(3)] == [2, 4, 6]
    item = picked[1]
    assert item["timestep"] == 4
    np.testing.assert_array_equal(item["image"].numpy(), full[4]["image"].numpy())  # same frame as the full set
    for bad in (1.0, "1", True):
        with pytest.raises(ValueError, match="index must be an integer item number"):
            picked[bad]
