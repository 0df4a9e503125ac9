"""Shared fixtures: one small generated sample benchmark (and its converted store) per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Participants the shared sample holds: one per benchmark keeps the session fast.
SAMPLE_PARTICIPANTS = (388, 393)
SAMPLE_FRAMES = 10


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated raw benchmark folder (official layout) holding ``nvs/`` and ``mono_flame_avatar/``.

    Shared and read-only: tests that modify raw files copy what they need first.
    """
    from nersemble_zarr.testing.sample import generate_sample

    root = tmp_path_factory.mktemp("sample") / "raw"
    generate_sample(root, participants=SAMPLE_PARTICIPANTS, frames=SAMPLE_FRAMES, seed=0)
    return root


@pytest.fixture(scope="session")
def flame_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic FLAME-2023-shaped model pickle (``flame2023.pkl``), deterministic."""
    from nersemble_zarr.testing.flame_model import write_synthetic_flame_model

    return write_synthetic_flame_model(tmp_path_factory.mktemp("flame"), seed=0)


@pytest.fixture(scope="session")
def converted_store(sample_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sample_root`` converted with default settings (lossless) into a local Zarr store. Read-only."""
    from nersemble_zarr.pipelines.convert import convert_benchmark

    store = tmp_path_factory.mktemp("store") / "sample.zarr"
    report = convert_benchmark(sample_root, store, progress=False)
    assert report.ok, report.summary()
    return store
