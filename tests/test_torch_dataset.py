"""FrameDataset: items equal the raw frames and calibration; correct through DataLoader worker processes."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")  # the Python 3.12 CI job (.ci/py312) runs without torch

import torch
from torch.utils.data import DataLoader

from nersemble_zarr.core import benchmark as bm
from nersemble_zarr.imaging import scale_intrinsics
from nersemble_zarr.raw import iter_frames, read_camera_params
from nersemble_zarr.read.store import list_participants
from nersemble_zarr.read.torch_dataset import FrameDataset, FrameDatasetError

pytestmark = pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")  # zarr: not in the v3 spec yet


class RawTruth:
    """Frames and calibration decoded from the raw sample (the official way), cached per video."""

    def __init__(self, sample_root: Path, benchmark: str) -> None:
        self.root, self.benchmark = sample_root, benchmark
        self._videos: dict[tuple, np.ndarray] = {}

    def frames(self, p: int, s: str, serial: str, kind: str = "images") -> np.ndarray:
        key = (p, s, serial, kind)
        if key not in self._videos:
            path = self.root / self.benchmark / bm.video_path(p, s, serial, kind)
            self._videos[key] = np.stack(list(iter_frames(path, alpha=kind == "alpha_maps")))
        return self._videos[key]

    def calibration(self, p: int):
        return read_camera_params(self.root / self.benchmark / bm.calibration_path(p))


def check_item(item: dict, truth: RawTruth, *, float_images: bool = False) -> None:
    p, s, serial, t = item["participant"], item["sequence"], item["serial"], item["timestep"]
    image = truth.frames(p, s, serial)[t]
    alpha = truth.frames(p, s, serial, "alpha_maps")[t][..., None]
    if float_images:
        assert item["image"].dtype == torch.float32
        torch.testing.assert_close(item["image"], torch.from_numpy(image).float() / 255.0, rtol=0, atol=0)
        torch.testing.assert_close(item["alpha"], torch.from_numpy(alpha).float() / 255.0, rtol=0, atol=0)
    else:
        assert item["image"].dtype == torch.uint8
        np.testing.assert_array_equal(item["image"].numpy(), image)
        np.testing.assert_array_equal(item["alpha"].numpy(), alpha)
    calib = truth.calibration(p)
    np.testing.assert_array_equal(item["world_2_cam"].numpy(), calib.world_2_cam[serial])
    np.testing.assert_array_equal(item["intrinsics"].numpy(), calib.intrinsics[serial])


def test_items_are_the_raw_frames_with_their_calibration(converted_store: Path, sample_root: Path) -> None:
    ds = FrameDataset(converted_store, bm.NVS)
    truth = RawTruth(sample_root, bm.NVS)
    p = list_participants(converted_store, bm.NVS)[0]
    s = ds.units[0]["sequence"]
    n_t = len(truth.frames(p, s, ds.units[0]["serials"][0]))
    assert len(ds) == sum(len(u["serials"]) * len(u["timesteps"]) for u in ds.units)
    assert len(ds.units[0]["serials"]) == len(bm.NVS_BENCHMARK.train_serials) and len(ds.units[0]["timesteps"]) == n_t
    rng = np.random.default_rng(0)
    for i in rng.choice(len(ds), size=6, replace=False).tolist() + [0, len(ds) - 1]:
        item = ds[i]
        assert (item["participant"], item["sequence"], item["serial"], item["timestep"]) == ds.key(i)
        check_item(item, truth)
    item = FrameDataset(converted_store, bm.NVS, dtype="float32", channels_first=True)[3]
    assert item["image"].shape[0] == 3 and item["image"].dtype == torch.float32
    float_item = FrameDataset(converted_store, bm.NVS, dtype="float32")[3]
    check_item(float_item, truth, float_images=True)


@pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_dataloader_with_two_workers_yields_every_item_correctly(
    converted_store: Path, sample_root: Path, context: str
) -> None:
    p = list_participants(converted_store, bm.NVS)[0]
    serials = list(bm.NVS_BENCHMARK.train_serials[:3])
    ds = FrameDataset(converted_store, bm.NVS, participants=[p], cameras=serials)
    _ = ds[0]  # handles opened in the parent must not leak into the workers
    loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0),
                        multiprocessing_context=context)
    truth = RawTruth(sample_root, bm.NVS)
    seen = []
    for batch in loader:
        for j in range(batch["image"].shape[0]):
            item = {key: value[j] for key, value in batch.items()}
            item["timestep"] = int(item["timestep"])
            item["participant"] = int(item["participant"])
            check_item(item, truth)
            seen.append((item["participant"], item["sequence"], item["serial"], item["timestep"]))
    assert sorted(seen) == sorted(ds.key(i) for i in range(len(ds)))
    assert {k[2] for k in seen} == set(serials)


def test_dataset_pickles_without_open_store_handles(converted_store: Path) -> None:
    ds = FrameDataset(converted_store, bm.MONO)
    before = ds[len(ds) - 1]
    blob = pickle.dumps(ds)
    assert len(blob) < 100_000
    clone = pickle.loads(blob)
    assert clone._handles is None
    after = clone[len(ds) - 1]
    assert torch.equal(before["image"], after["image"]) and before["serial"] == after["serial"]


def test_missing_level_is_refused_and_resize_gives_level_intrinsics(converted_store: Path, sample_root: Path) -> None:
    with pytest.raises(FrameDatasetError, match="nersemble-zarr downscale STORE --factor 2"):
        FrameDataset(converted_store, bm.MONO, level=2)
    ds = FrameDataset(converted_store, bm.MONO, scale=0.5, resize=True)
    item = ds[0]
    p = item["participant"]
    full = RawTruth(sample_root, bm.MONO).frames(p, item["sequence"], item["serial"])[item["timestep"]]
    h, w = full.shape[0] // 2, full.shape[1] // 2
    assert tuple(item["image"].shape) == (h, w, 3) and tuple(item["alpha"].shape) == (h, w, 1)
    k = RawTruth(sample_root, bm.MONO).calibration(p).intrinsics[item["serial"]]
    np.testing.assert_array_equal(item["intrinsics"].numpy(), scale_intrinsics(k, 2))


def test_selection_that_matches_nothing_names_it(converted_store: Path) -> None:
    with pytest.raises(FrameDatasetError, match="no frames selected"):
        FrameDataset(converted_store, bm.NVS, cameras=["222200046"])  # hold-out: no video


def test_mono_split_trains_on_the_first_frames_and_validates_on_the_last(converted_store: Path) -> None:
    from nersemble_zarr.core.splits import split_sequence

    train = FrameDataset(converted_store, bm.MONO, sequences="EXP-1-head", split="train", with_alpha=False)
    val = FrameDataset(converted_store, bm.MONO, sequences="EXP-1-head", split="validation", with_alpha=False)
    every = FrameDataset(converted_store, bm.MONO, sequences="EXP-1-head", with_alpha=False)
    stored = sorted(every.key(i)[3] for i in range(len(every)))
    parts = split_sequence(None, bm.MONO, "EXP-1-head", ["222200037"], stored)
    assert [train.key(i)[3] for i in range(len(train))] == list(parts["train"].timesteps)
    assert [val.key(i)[3] for i in range(len(val))] == list(parts["validation"].timesteps)
    assert val.key(len(val) - 1)[3] == stored[-1] and len(train) + len(val) == len(every)
    # a whole held-out sequence: it leaves the train part and is the validation part
    held = FrameDataset(converted_store, bm.MONO, split="train", split_rule="sequences=EXP-1-head", with_alpha=False)
    assert "EXP-1-head" not in {held.key(i)[1] for i in range(len(held))}


def test_bad_split_arguments_are_refused(converted_store: Path) -> None:
    from nersemble_zarr.core.splits import SplitError

    with pytest.raises(SplitError, match="split part must be one of train, validation, all, not 'test'"):
        FrameDataset(converted_store, bm.NVS, split="test")
    with pytest.raises(SplitError, match="'nearest' is for the nvs benchmark"):
        FrameDataset(converted_store, bm.MONO, split="validation", split_rule="nearest")
    with pytest.raises(FrameDatasetError, match=r"no frames selected.*validation part of split cameras=222200036"):
        FrameDataset(converted_store, bm.NVS, cameras=["222200042"], split="validation", split_rule="cameras=222200036")
