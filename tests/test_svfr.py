"""SVFR (single-view face reconstruction): benchmark facts, download, sample, convert, data manager, info/check/verify."""

from __future__ import annotations

import hashlib
import re
import shutil

import pytest

from nersemble_zarr.core import benchmark as bm
from nersemble_zarr.core.benchmark import SVFR, SVFR_IMAGE_KEYS, SVFR_PARTICIPANTS, SVFRImageKey, svfr_image_keys
from nersemble_zarr.core.errors import SelectionError

# sha256 of "<pid>/<download folder>" lines over the official BENCHMARK_SVFR_IMAGE_KEYS (nersemble_benchmark 0.2.0).
_OFFICIAL_KEYS_SHA256 = "c6b1da4cc69ce6028e70f414884edc123eef40a4b904e639dec58001e5d2bbf2"


def test_svfr_facts_match_the_official_constants():
    assert SVFR == "svfr" and SVFR in bm.ALL_BENCHMARK_NAMES
    assert len(SVFR_IMAGE_KEYS) == 391 and len(set(SVFR_IMAGE_KEYS)) == 391
    assert SVFR_PARTICIPANTS == (17, 60, 71, 102, 112, 123, 133, 139, 175, 178, 183, 194, 215, 226, 256, 266, 289,
                                 310, 320, 372)
    assert bm.SVFR_IMAGE_SIZE == (512, 512)
    lines = "\n".join(f"{k.participant}/{k.download_folder()}" for k in SVFR_IMAGE_KEYS)
    assert hashlib.sha256(lines.encode()).hexdigest() == _OFFICIAL_KEYS_SHA256
    assert sum(k.download_folder() != k.submission_folder() for k in SVFR_IMAGE_KEYS) == 116
    assert sum(len(svfr_image_keys(p)) for p in SVFR_PARTICIPANTS) == 391
    assert svfr_image_keys() == SVFR_IMAGE_KEYS
    assert all(k.serial in bm.SERIALS for k in SVFR_IMAGE_KEYS)


def test_svfr_key_spellings_and_parsing():
    key = SVFRImageKey(17, "EXP-4-lips", 6, "221501007")
    assert key in SVFR_IMAGE_KEYS
    assert key.download_folder() == "EXP-4-lips_6_221501007"
    assert key.submission_folder() == key.to_key() == "EXP-4-lips_006_221501007"
    assert key.sequence_name == "EXP-4-lips"
    assert key.image_path() == bm.svfr_image_path(key) == "017/EXP-4-lips_6_221501007/rgb.png"
    assert SVFRImageKey.from_folder(17, "EXP-4-lips_006_221501007") == key
    assert SVFRImageKey.from_folder(17, "EXP-4-lips_6_221501007") == key
    # sequence names hold '_' (parsed from the right)
    sen = next(k for k in SVFR_IMAGE_KEYS if "_" in k.sequence)
    assert SVFRImageKey.from_folder(sen.participant, sen.download_folder()) == sen
    assert SVFRImageKey.from_folder(sen.participant, sen.submission_folder()) == sen
    for bad in ("EXP-4-lips", "EXP-4-lips_6", "_6_221501007", "EXP-4-lips_x_221501007", "EXP-4-lips_6_2215O1007"):
        with pytest.raises(ValueError, match="not an SVFR image folder name"):
            SVFRImageKey.from_folder(17, bad)


def test_svfr_selection_errors_name_the_value():
    with pytest.raises(SelectionError, match="participant 388 is not in the svfr benchmark: expected one of 17, 60"):
        svfr_image_keys(388)
    with pytest.raises(SelectionError, match="has no image 'EXP-4-lips_7_221501007'"):
        bm.check_svfr_key(SVFRImageKey(17, "EXP-4-lips", 7, "221501007"))
    bm.check_selection([SVFR], [17], ["FREE"])
    with pytest.raises(SelectionError, match="sequence 'HAIR' is not in the svfr benchmark for participant 017"):
        bm.check_selection([SVFR], [17], ["HAIR"])
    with pytest.raises(SelectionError, match="still images, not video sequences"):
        bm.get_benchmark(SVFR)


# ---------------------------------------------------------------------------------------------
# sample -> download (local HTTP server) -> convert -> SVFRDataManager, resume, damage, info/check/verify
# ---------------------------------------------------------------------------------------------

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from nersemble_zarr.core.errors import MissingObjectError  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from http_server import Fault, FileServer  # noqa: E402

PIDS = (17, 60)
N_IMAGES = 3


def _official_load(path: Path) -> np.ndarray:
    """What the official SVFRDataManager.load_image returns (elias load_img: np.asarray(PIL.Image.open))."""
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def svfr_sample(tmp_path_factory) -> Path:
    from nersemble_zarr.testing.sample import generate_sample

    return generate_sample(tmp_path_factory.mktemp("svfr") / "sample", benchmarks=(SVFR,), participants=PIDS,
                           svfr_images=N_IMAGES, seed=3)


@pytest.fixture(scope="module")
def svfr_store(svfr_sample, tmp_path_factory) -> Path:
    from nersemble_zarr.pipelines.convert import convert_benchmark

    store = tmp_path_factory.mktemp("svfr_store") / "s.zarr"
    report = convert_benchmark(svfr_sample, store, progress=False)
    assert report.ok and len(report.done) == len(PIDS), report.summary()
    return store


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_sample_writes_the_official_layout(svfr_sample):
    from nersemble_zarr.testing.sample import svfr_source_image

    root = svfr_sample / SVFR
    expected = {bm.svfr_image_path(k) for p in PIDS for k in svfr_image_keys(p)[:N_IMAGES]}
    assert set(_files(root)) == expected  # no metadata.json, no calibration: the release has none
    for rel in sorted(expected)[:2]:
        pid, folder, _ = rel.split("/")
        key = SVFRImageKey.from_folder(int(pid), folder)
        image = _official_load(root / rel)
        assert image.shape == (512, 512, 3) and image.dtype == np.uint8
        assert np.array_equal(image, svfr_source_image(key, seed=3))
        assert image.std() > 20  # a picture, not a flat fill
    # the official list_image_keys pattern finds every folder


    pattern = re.compile(r"^([a-zA-Z0-9-_+]+)_(\d+)_(\d+)$")
    assert all(pattern.match(p.name) for p in (root / "017").iterdir())
    # deterministic from the seed, and another seed gives other pixels
    key = svfr_image_keys(17)[0]
    assert np.array_equal(svfr_source_image(key, seed=3), svfr_source_image(key, seed=3))
    assert not np.array_equal(svfr_source_image(key, seed=3), svfr_source_image(key, seed=4))


def test_download_svfr_from_a_local_server_with_resume(svfr_sample, tmp_path):
    from nersemble_zarr.pipelines.download import download_benchmark
    from nersemble_zarr.pipelines.download import selection

    served = {f"{SVFR}/{rel}": data for rel, data in _files(svfr_sample / SVFR).items()}
    rel_17 = [bm.svfr_image_path(k) for k in svfr_image_keys(17)]
    assert selection.select_files(SVFR, participants=[17]) == rel_17  # all 20 official images, unpadded
    raw = tmp_path / "raw"
    with FileServer(served, prefix="tok") as srv:
        cut = f"{SVFR}/{bm.svfr_image_path(svfr_image_keys(60)[1])}"
        srv.add_fault(cut, Fault(cut_after=len(served[cut]) // 3))
        first = download_benchmark(raw, SVFR, participants=[60], url=srv.url, retries=0, progress=False)
        assert not first.ok and list(first.failed) == [cut[len(SVFR) + 1:]]
        assert not any(r.path.endswith("metadata.json") for r in srv.requests)  # SVFR has no metadata.json
        # a rerun resumes the cut file (a Range request) and skips the complete ones
        srv.reset_counters()
        again = download_benchmark(raw, SVFR, participants=[60], url=srv.url, progress=False)
        assert again.ok
        assert [r.range for r in srv.gets(cut)] and srv.gets(cut)[0].range.startswith("bytes=")
        done = f"{SVFR}/{bm.svfr_image_path(svfr_image_keys(60)[0])}"
        assert srv.gets(done) == []
    got = _files(raw / SVFR)
    # only participant 60 was selected; what the server has of it arrives byte for byte
    assert set(got) == {rel for rel in _files(svfr_sample / SVFR) if rel.startswith("060/")}
    assert all(got[rel] == served[f"{SVFR}/{rel}"] for rel in got)


@pytest.mark.slow
def test_round_trip_sample_download_convert_data_manager(svfr_sample, tmp_path):
    from nersemble_zarr import SVFRDataManager
    from nersemble_zarr.pipelines.convert import convert_benchmark
    from nersemble_zarr.pipelines.download import download_benchmark

    served = {f"{SVFR}/{rel}": data for rel, data in _files(svfr_sample / SVFR).items()}
    raw, store = tmp_path / "raw", tmp_path / "s.zarr"
    with FileServer(served, prefix="tok") as srv:
        got = download_benchmark(raw, SVFR, participants=list(PIDS), url=srv.url, progress=False)
    # the sample server holds the first 3 official images of each participant; the rest are "not on server"
    assert got.ok and len(got.downloaded) == len(PIDS) * N_IMAGES
    assert len(got.not_found) == sum(len(svfr_image_keys(p)) for p in PIDS) - len(PIDS) * N_IMAGES
    report = convert_benchmark(raw, store, benchmarks=[SVFR], progress=False)
    assert report.ok, report.summary()
    for p in PIDS:
        dm = SVFRDataManager(store, p)
        keys = dm.list_image_keys()
        assert [k.to_key() for k in keys] == [k.submission_folder() for k in svfr_image_keys(p)[:N_IMAGES]]
        for key in keys:
            png = Path(dm.get_asset_folder(key)) / "rgb.png"
            assert png == raw / SVFR / f"{p:03d}" / f"{key.sequence_name}_{key.timestep}_{key.serial}" / "rgb.png"
            image = dm.load_image(key)
            expected = _official_load(png)
            assert image.dtype == expected.dtype == np.uint8 and image.shape == expected.shape == (512, 512, 3)
            assert np.array_equal(image, expected)
            assert np.array_equal(image, _official_load(svfr_sample / SVFR / png.relative_to(raw / SVFR)))


def test_store_layout_codecs_and_resume(svfr_sample, svfr_store):
    import zarr

    from nersemble_zarr.core import schema
    from nersemble_zarr.pipelines.convert import convert_benchmark

    g = zarr.open_group(svfr_store, mode="r", path="svfr/017")
    images = g["images"]
    assert images.shape == (N_IMAGES, 512, 512, 3) and images.dtype == np.uint8 and images.chunks == (1, 512, 512, 3)
    assert images.metadata.dimension_names == ("image", "height", "width", "rgb")
    for name in ("images", "image", "sequence", "timestep", "camera"):  # crc32c last on every array
        assert type(g[name].compressors[-1]).__name__ == "Crc32cCodec", name
    keys = svfr_image_keys(17)[:N_IMAGES]
    assert list(g["image"][:]) == [k.download_folder() for k in keys]
    assert list(g["sequence"][:]) == [k.sequence for k in keys]
    assert g["timestep"][:].tolist() == [k.timestep for k in keys] and g["timestep"].dtype == np.int64
    assert list(g["camera"][:]) == [k.serial for k in keys]  # the serial, named camera as everywhere
    assert g.attrs["complete"] is True and g.attrs["n_images"] == N_IMAGES and g.attrs["n_official_images"] == 20
    assert images.attrs["codec"] == schema.ImageCodec("lossless").to_attrs()
    # xarray reads the participant as one Dataset
    xr = pytest.importorskip("xarray")
    ds = xr.open_zarr(svfr_store, group="svfr/017", consolidated=False)
    assert ds["images"].dims == ("image", "height", "width", "rgb")
    assert np.array_equal(ds["images"].sel(image=keys[1].download_folder()).values,
                          _official_load(svfr_sample / SVFR / bm.svfr_image_path(keys[1])))
    # a rerun skips the complete participants
    again = convert_benchmark(svfr_sample, svfr_store, progress=False)
    assert again.ok and not again.done and len(again.skipped) == len(PIDS)


def test_deleted_image_object_names_the_key_and_check_repairs_it(svfr_sample, svfr_store, tmp_path):
    from nersemble_zarr import SVFRDataManager
    from nersemble_zarr.pipelines.check import check_store
    from nersemble_zarr.pipelines.convert import convert_benchmark
    from nersemble_zarr.pipelines.info import format_info, store_info
    from nersemble_zarr.pipelines.verify import verify_store

    store = tmp_path / "s.zarr"
    shutil.copytree(svfr_store, store)
    key = svfr_image_keys(60)[1]
    (store / "svfr/060/images/c/1/0/0/0").unlink()
    dm = SVFRDataManager(store, 60)
    assert np.array_equal(dm.load_image(dm.list_image_keys()[0]),
                          _official_load(svfr_sample / SVFR / bm.svfr_image_path(svfr_image_keys(60)[0])))
    with pytest.raises(MissingObjectError, match=re.escape(f"image '{key.download_folder()}'") + ".*svfr/060/images/c/1/0/0/0"):
        dm.load_image(dm.list_image_keys()[1])
    text = format_info(store_info(store))
    assert "DAMAGED" in text and "svfr/060/images/c/1/0/0/0" in text
    assert "017/  3 of 20 images 512x512 [lossless" in text
    report = check_store(store, progress=False)
    assert [(p.kind, p.key) for p in report.problems] == [("missing_object", "svfr/060/images/c/1/0/0/0")]
    assert not verify_store(store, svfr_sample).ok
    repaired = check_store(store, repair=True, progress=False)
    assert any("unmarked svfr/060" in line for line in repaired.repaired)
    from nersemble_zarr.read.svfr import SVFRDataManagerError

    with pytest.raises(SVFRDataManagerError, match="svfr participant 060 is not completely converted"):
        SVFRDataManager(store, 60).list_image_keys()
    redo = convert_benchmark(svfr_sample, store, progress=False)
    assert [r.unit.name for r in redo.done] == ["svfr/060 images"] and len(redo.skipped) == 1
    assert check_store(store, deep=True, progress=False).ok
    assert verify_store(store, svfr_sample).ok
    assert np.array_equal(SVFRDataManager(store, 60).load_image(key.download_folder()),
                          _official_load(svfr_sample / SVFR / bm.svfr_image_path(key)))


def test_verify_finds_a_changed_raw_image_and_convert_refuses_stray_folders(svfr_sample, svfr_store, tmp_path):
    from nersemble_zarr.pipelines.convert import convert_benchmark
    from nersemble_zarr.pipelines.verify import verify_store

    raw = tmp_path / "raw"
    shutil.copytree(svfr_sample, raw)
    key = svfr_image_keys(17)[2]
    png = raw / SVFR / bm.svfr_image_path(key)
    image = _official_load(png).copy()
    image[100, 100] ^= 1
    Image.fromarray(image).save(png)
    report = verify_store(svfr_store, raw, benchmarks=[SVFR])
    bad = [c for c in report.checks if not c.ok]
    assert [c.name for c in bad] == ["svfr/017 images"] and key.download_folder() in bad[0].message
    # a padded (submission-spelled) folder is no download folder: refused by name, nothing else of 017 converted
    padded = raw / SVFR / "017" / svfr_image_keys(17)[0].submission_folder().replace("_156_", "_0156_")
    padded.mkdir()
    out = convert_benchmark(raw, tmp_path / "s2.zarr", progress=False)
    assert [r.unit.name for r in out.failed] == ["svfr/017 images"]
    assert padded.name in out.failed[0].message and "not an SVFR image folder of participant 017" in out.failed[0].message
    assert [r.unit.name for r in out.done] == ["svfr/060 images"]
    # an image of another size is refused naming the file, expected and found
    padded.rmdir()
    Image.fromarray(image[:256]).save(png)
    out = convert_benchmark(raw, tmp_path / "s2.zarr", progress=False)
    assert [r.unit.name for r in out.failed] == ["svfr/017 images"]
    assert str(png) in out.failed[0].message and "found shape (256, 512, 3)" in out.failed[0].message


def test_data_manager_errors_name_what_is_missing(svfr_store):
    from nersemble_zarr import SVFRDataManager
    from nersemble_zarr.read.svfr import ImageKey, SVFRDataManagerError

    dm = SVFRDataManager(svfr_store, 17)
    official_not_converted = svfr_image_keys(17)[5]
    with pytest.raises(SVFRDataManagerError, match="an official key that was not downloaded or converted"):
        dm.load_image(ImageKey(official_not_converted.sequence, official_not_converted.timestep,
                               official_not_converted.serial))
    with pytest.raises(SVFRDataManagerError, match="svfr participant 071 is not in the store"):
        SVFRDataManager(svfr_store, 71).list_image_keys()
    with pytest.raises(SelectionError, match="participant 388 is not in the svfr benchmark"):
        SVFRDataManager(svfr_store, 388)
    with pytest.raises(SVFRDataManagerError, match="of svfr participant 060, not 017"):
        dm.load_image(svfr_image_keys(60)[0])
    # every spelling of a key loads the same image
    k = svfr_image_keys(17)[0]
    ref = dm.load_image(k)
    for spelling in (k.download_folder(), k.submission_folder(), ImageKey(k.sequence, k.timestep, k.serial)):
        assert np.array_equal(dm.load_image(spelling), ref)
    import pickle

    assert np.array_equal(pickle.loads(pickle.dumps(dm)).load_image(k), ref)


def test_cli_covers_svfr(svfr_sample, svfr_store, tmp_path):
    from click.testing import CliRunner

    from nersemble_zarr.cli.main import cli

    run = lambda *args: CliRunner().invoke(cli, [str(a) for a in args])  # noqa: E731
    r = run("sample", tmp_path / "s", "-b", "svfr", "-p", "372", "--svfr-images", "1", "--no-progress")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s" / SVFR / bm.svfr_image_path(svfr_image_keys(372)[0])).is_file()
    assert len(list((tmp_path / "s" / SVFR).rglob("rgb.png"))) == 1
    r = run("sample", tmp_path / "bad", "-b", "svfr", "--svfr-images", "0")
    assert r.exit_code == 2 and "expected a number of images or 'all'" not in r.output and "at least 1" in r.output
    r = run("info", svfr_store)
    assert r.exit_code == 0 and "060/  3 of 20 images 512x512" in r.output, r.output
    r = run("check", svfr_store, "-b", "svfr", "--deep", "--no-progress")
    assert r.exit_code == 0 and "ok" in r.output, r.output
    r = run("verify", svfr_store, svfr_sample, "-b", "svfr")
    assert r.exit_code == 0 and "3/3 checks passed" in r.output, r.output
    r = run("show", svfr_store, "-b", "svfr", "-p", "17", "--out", tmp_path / "sheet.png", "--tile-width", "64")
    assert r.exit_code == 0 and "3 images of svfr 017" in r.output, r.output
    assert Image.open(tmp_path / "sheet.png").size == (128, 128)
    r = run("show", svfr_store, "-b", "svfr", "-p", "17", "--flame", tmp_path / "f.png")
    assert r.exit_code == 2 and "svfr has still images only" in r.output
    r = run("download", tmp_path / "raw", "svfr", "-p", "388")  # refused before any request (no URL needed)
    assert isinstance(r.exception, SelectionError) and "participant 388 is not in the svfr benchmark" in str(r.exception)
    assert not (tmp_path / "raw").exists()
