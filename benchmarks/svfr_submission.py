"""SVFR submissions: writing and validating FLAME-topology meshes, against the official toolkit's way.

Baselines (re-implemented here from nersemble_benchmark 0.2.0's source, which this venv does not install):
- write: ``trimesh.Trimesh(v, f)`` (processed) exported as PLY straight into a ``zipfile`` member, per mesh;
- validate: ``trimesh.Trimesh(**load_ply(f))`` of every mesh member, the official validator's per-mesh work.

Ours: ``SVFRSubmissionDataWriter.add_posed_mesh`` per mesh (staged file, checks incl. the official reader's
vertex count, atomic zip), ``write_svfr_submission`` (the batch path on the job runner's threads), and
``validate_svfr_submission`` (official checks plus parse/face-index/NaN/degenerate checks).

    .venv/bin/python benchmarks/svfr_submission.py [--meshes 100]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Harness  # noqa: E402

import trimesh  # noqa: E402
from trimesh.exchange.ply import load_ply  # noqa: E402

from nersemble_zarr.core.benchmark import SVFR_IMAGE_KEYS  # noqa: E402
from nersemble_zarr.submission.svfr import SVFRSubmissionDataWriter, svfr_mesh_path, write_svfr_submission  # noqa: E402
from nersemble_zarr.submission.validate_svfr import validate_svfr_submission  # noqa: E402
from nersemble_zarr.testing.flame_model import synthetic_flame_arrays  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meshes", type=int, default=100, help="meshes per run (whole participants: multiples of 20 fit best)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    keys = SVFR_IMAGE_KEYS[:args.meshes]
    participants = sorted({k.participant for k in keys})
    arrays = synthetic_flame_arrays()
    v0, faces = np.asarray(arrays["v_template"], np.float32), np.asarray(arrays["f"]).astype(np.int64)
    vertices = v0[None] + (np.arange(len(keys), dtype=np.float32) * 1e-3)[:, None, None]
    tmp = Path(tempfile.mkdtemp(prefix="bench-svfr-"))

    def official_write() -> None:
        with zipfile.ZipFile(tmp / "official.zip", "w") as zf:
            for k, v in zip(keys, vertices):
                with zf.open(svfr_mesh_path(k, "posed"), "w") as f:
                    trimesh.Trimesh(v, faces).export(f, "ply")

    def ours_drop_in() -> None:
        with SVFRSubmissionDataWriter(tmp / "drop_in.zip") as w:
            for k, v in zip(keys, vertices):
                w.add_posed_mesh(k.participant, k.sequence, k.timestep, k.serial, (v, faces))

    def ours_batch() -> None:
        write_svfr_submission(tmp / "batch.zip", vertices, faces, keys=keys)

    def official_validate() -> None:
        with zipfile.ZipFile(tmp / "batch.zip") as zf:
            for k in keys:
                with zf.open(svfr_mesh_path(k, "posed")) as f:
                    mesh = trimesh.Trimesh(**load_ply(f))
                    assert len(mesh.vertices) == 5023

    def ours_validate() -> None:
        report = validate_svfr_submission(tmp / "batch.zip", participants=participants)
        assert not any(p.kind != "missing_mesh" for p in report.problems)

    h = Harness("svfr_submission", description=__doc__.splitlines()[0],
                params={"meshes": len(keys), "vertices": 5023, "faces": 9976})
    n = len(keys)
    h.time("official-style: trimesh export into zipfile", official_write, group="write", items=n, unit="mesh",
           baseline=True, repeats=args.repeats)
    h.time("SVFRSubmissionDataWriter.add_posed_mesh", ours_drop_in, group="write", items=n, unit="mesh",
           repeats=args.repeats)
    h.time("write_svfr_submission (batch, threads)", ours_batch, group="write", items=n, unit="mesh",
           repeats=args.repeats)
    h.time("official-style: Trimesh(**load_ply) per mesh", official_validate, group="validate", items=n,
           unit="mesh", baseline=True, repeats=args.repeats)
    h.time("validate_svfr_submission", ours_validate, group="validate", items=n, unit="mesh", repeats=args.repeats)
    h.finish()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
