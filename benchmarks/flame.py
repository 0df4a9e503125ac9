"""All FLAME vertices of a T-timestep sequence: batched forward vs the official per-timestep loop.

Baseline (measured in the same run): what the official ``FlameProvider.get_vertices`` does per timestep —
batch-1 ``lbs`` with betas = shape ‖ expression (400), pose [0 | neck | jaw | eyes], then a 4×4 model→world
matrix from scipy ``Rotation.from_euler('XYZ')`` applied with ``bmm`` — looped over all T timesteps.
Ours: ``FlameProvider.vertices()`` (batched, chunked). Peak memory per chunk size is measured in a fresh
subprocess each (max RSS growth during the forward). Uses the synthetic FLAME-2023-shaped model.
Runs once with torch's default thread count and once single-threaded: the per-timestep loop's cost is
mostly per-op overhead, which multiplies when intra-op threads must synchronise on a busy machine.

Under load (#14.5): the official loop (as ``FlameProvider.get_mesh`` runs it: batch-1 lbs, scipy
``Rotation.from_euler`` model→world, a ``trimesh.Trimesh(process=False)`` per timestep) and the thread
policies of the batched forward, interleaved repeat by repeat, once on the machine as it is ("idle") and
once while a spawned process keeps one core busy (a Python busy loop): torch's default intra-op threads
with sequential chunks (the first release), one intra-op thread with sequential chunks, and the policy
``vertices()`` uses now: chunks in parallel on ``torch.get_num_threads()`` Python threads, each with one
intra-op thread. ``uptime`` before and after is saved.

    .venv/bin/python benchmarks/flame.py [--timesteps 1000] [--repeats 3] [--device cuda] [--load-timesteps 600]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nersemble_zarr.flame.provider import FlameProvider, load_flame_parameters  # noqa: E402
from nersemble_zarr.flame.model import FlameModel  # noqa: E402
from nersemble_zarr.testing.flame_model import synthetic_flame_tracking, write_synthetic_flame_model  # noqa: E402


def median_seconds(fn, repeats: int, sync=lambda: None) -> float:
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def official_style_loop(model: FlameModel, tracking, mesh: bool = False) -> np.ndarray:
    """The official provider's per-timestep evaluation (batch 1, full 400 betas, scipy pose per step);
    ``mesh``: also build the ``trimesh.Trimesh(vertices, faces, process=False)`` that ``get_mesh`` returns.
    Conservative: the official FLAME forward also computes landmarks per timestep, which this loop skips."""
    import trimesh
    from scipy.spatial.transform import Rotation
    from smplx.lbs import lbs

    p = load_flame_parameters(tracking)
    dev, dt = model.device, model.dtype
    shapedirs = torch.cat([model.shapedirs, model.exprdirs], dim=-1)
    shape = torch.as_tensor(p.shape, dtype=dt, device=dev)[None]
    out = np.empty((p.n_timesteps, 5023, 3), np.float32)
    with torch.no_grad():
        for i in range(p.n_timesteps):
            betas = torch.cat([shape, torch.as_tensor(p.expression[[i]], dtype=dt, device=dev)], dim=1)
            pose = torch.cat([torch.zeros((1, 3), dtype=dt, device=dev)] + [
                torch.as_tensor(a[[i]], dtype=dt, device=dev) for a in (p.neck, p.jaw, p.eyes)], dim=1)
            verts, _ = lbs(betas, pose, model.v_template[None], shapedirs, model.posedirs, model.J_regressor,
                           model.parents, model.lbs_weights)
            m = np.eye(4, dtype=np.float32)
            m[:3, :3] = Rotation.from_euler("XYZ", p.rotation[i]).as_matrix() * p.scale
            m[:3, 3] = p.translation[i]
            m = torch.as_tensor(m, device=dev)[None]
            homo = torch.cat([verts, torch.ones((1, verts.shape[1], 1), dtype=dt, device=dev)], dim=-1)
            out[i] = torch.bmm(homo, m.permute(0, 2, 1))[0, :, :3].cpu().numpy()
            if mesh:
                trimesh.Trimesh(out[i], model.faces, process=False)
    return out


def first_release_policy(model: FlameModel, tracking, chunk: int = 64) -> np.ndarray:
    """The first release's forward: batched lbs chunk after chunk with torch's intra-op threads as set."""
    from smplx.lbs import lbs

    p = load_flame_parameters(tracking)
    f32 = lambda a: torch.as_tensor(np.asarray(a, np.float32))  # noqa: E731
    expr, neck, jaw, eyes, rot, trans = (f32(a) for a in (p.expression, p.neck, p.jaw, p.eyes, p.rotation, p.translation))
    out = np.empty((p.n_timesteps, 5023, 3), np.float32)
    with torch.inference_mode():
        template = model.v_template + torch.einsum("l,mkl->mk", f32(p.shape).reshape(-1), model.shapedirs)
        for start in range(0, p.n_timesteps, chunk):
            sl = slice(start, min(start + chunk, p.n_timesteps))
            pose = torch.cat([torch.zeros((sl.stop - sl.start, 3)), neck[sl], jaw[sl], eyes[sl]], dim=1)
            verts, _ = lbs(expr[sl], pose, template, model.exprdirs, model.posedirs, model.J_regressor,
                           model.parents, model.lbs_weights, pose2rot=True)
            from nersemble_zarr.flame.model import euler_xyz_to_matrix

            m = euler_xyz_to_matrix(rot[sl]) * float(np.asarray(p.scale).reshape(-1)[0])
            out[sl] = torch.baddbmm(trans[sl].unsqueeze(1), verts, m.transpose(1, 2)).numpy()
    return out


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def load_section(h, model: FlameModel, timesteps: int, repeats: int, baseline_repeats: int) -> dict:
    """Idle and with one core kept busy: the official loop and three thread policies, interleaved."""
    tracking = synthetic_flame_tracking(timesteps, seed=1)
    default_threads = torch.get_num_threads()
    provider = FlameProvider(tracking, model)

    def with_threads(n: int, fn):
        def run():
            prev = torch.get_num_threads()
            torch.set_num_threads(n)
            try:
                return fn()
            finally:
                torch.set_num_threads(prev)
        return run

    policies = {
        f"first release: {default_threads} intra-op threads, chunks in turn": with_threads(
            default_threads, lambda: first_release_policy(model, tracking)),
        "1 intra-op thread, chunks in turn": lambda: provider.flame_model.forward(
            *_args(tracking), chunk_size=provider.chunk_size, threads=1),
        f"vertices() now: {default_threads} chunks at once, 1 intra-op thread each": provider.vertices,
    }
    ref = provider.vertices()
    for name, fn in policies.items():  # equal to the default within float32 noise; the new policies bit for bit
        diff = float(np.abs(np.asarray(fn()) - ref).max())
        assert diff < 1e-5, (name, diff)
    assert np.array_equal(np.asarray(policies["1 intra-op thread, chunks in turn"]()), ref)
    summary: dict = {"uptime_before": _uptime(), "torch_threads": default_threads}
    for condition in ("idle", "one core busy"):
        busy = None
        if condition != "idle":
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)
        try:
            secs: dict[str, list[float]] = {"official": [], **{k: [] for k in policies}}
            for r in range(max(repeats, baseline_repeats)):
                if r < baseline_repeats:
                    t0 = time.perf_counter()
                    official_style_loop(model, tracking, mesh=True)
                    secs["official"].append(time.perf_counter() - t0)
                if r < repeats:
                    for name, fn in policies.items():
                        t0 = time.perf_counter()
                        fn()
                        secs[name].append(time.perf_counter() - t0)
            summary[f"uptime_{condition}"] = _uptime()
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
        group = f"T={timesteps}, {condition}"
        h.add("official get_mesh loop (batch 1, scipy, trimesh)", secs["official"], group=group, items=timesteps,
              unit="timestep", baseline=True)
        for name in policies:
            h.add(name, secs[name], group=group, items=timesteps, unit="timestep")
        base = statistics.median(secs["official"])
        summary[condition] = {name: round(base / statistics.median(secs[name]), 1) for name in policies}
        summary[condition]["official_s"] = round(base, 3)
    summary["uptime_after"] = _uptime()
    return summary


def _args(tracking):
    p = load_flame_parameters(tracking)
    return p.shape, p.expression, p.neck, p.jaw, p.eyes, p.rotation, p.translation, p.scale


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _peak_memory_child(model_path: str, timesteps: int, chunk: int) -> None:
    """Subprocess body: print the peak RSS growth (MiB, sampled every 0.5 ms) while evaluating all timesteps.

    The output array is allocated before measuring, so the figure is the forward's working memory.
    """
    import threading

    model = FlameModel.load(model_path)
    tracking = synthetic_flame_tracking(timesteps, seed=0)
    FlameProvider(tracking, model, chunk_size=chunk).vertices(slice(0, 2))  # warm up kernels
    p = load_flame_parameters(tracking)
    out = np.ones((timesteps, 5023, 3), np.float32)
    before = _rss_bytes()
    peak, done = [before], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    for sl, verts, _ in model.iter_forward(p.shape, p.expression, p.neck, p.jaw, p.eyes, p.rotation, p.translation,
                                           p.scale, chunk_size=chunk):
        out[sl] = verts.numpy()
    done.set()
    sampler.join()
    print(json.dumps({"peak_extra_mib": (max(peak[0], _rss_bytes()) - before) / 2**20}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timesteps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-repeats", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--chunks", default="1,16,64,256,1000")
    ap.add_argument("--load-timesteps", type=int, default=600)
    ap.add_argument("--load-repeats", type=int, default=5)
    ap.add_argument("--load-baseline-repeats", type=int, default=2)
    ap.add_argument("--skip-chunks", action="store_true", help="only the under-load section")
    ap.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        _peak_memory_child(args._child[0], int(args._child[1]), int(args._child[2]))
        return

    from harness import Harness

    chunks = [int(c) for c in args.chunks.split(",")]
    h = Harness(
        "flame" if args.device == "cpu" else f"flame_{args.device.split(':')[0]}",
        description=f"all FLAME vertices of a T={args.timesteps} sequence: batched/chunked vs the official-style "
                    "per-timestep loop (batch 1); peak_extra_mib = RSS growth during the forward (fresh process)",
        params={"timesteps": args.timesteps, "device": args.device, "torch_threads": torch.get_num_threads(),
                "repeats": args.repeats, "chunk_sizes": chunks},
    )
    thread_counts = sorted({1, torch.get_num_threads()}) if args.device == "cpu" else [torch.get_num_threads()]
    with tempfile.TemporaryDirectory() as tmp:
        model_path = write_synthetic_flame_model(tmp)
        model = FlameModel.load(model_path, device=args.device)
        sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
        tracking = synthetic_flame_tracking(args.timesteps, seed=0)
        if args.device == "cpu":
            h.params["under_load"] = load_section(h, model, args.load_timesteps, args.load_repeats,
                                                  args.load_baseline_repeats)
        for threads in ([] if args.skip_chunks else thread_counts):
            torch.set_num_threads(threads)
            group = f"{args.device}, {threads} thread{'s' if threads > 1 else ''}"
            refs: list[np.ndarray] = []
            loop = [median_seconds(lambda: refs.append(official_style_loop(model, tracking)), 1, sync)
                    for _ in range(args.baseline_repeats)]
            h.add("official-style loop (batch 1)", loop, group=group, items=args.timesteps, unit="timestep", baseline=True)
            for chunk in chunks:
                provider = FlameProvider(tracking, model, chunk_size=chunk)
                err = float(np.abs(provider.vertices() - refs[0]).max())
                secs = [median_seconds(provider.vertices, 1, sync) for _ in range(args.repeats if chunk > 1 else 1)]
                mem = None
                if args.device == "cpu":
                    child = subprocess.run(
                        [sys.executable, __file__, "--_child", str(model_path), str(args.timesteps), str(chunk)],
                        capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
                    )
                    mem = round(json.loads(child.stdout.strip().splitlines()[-1])["peak_extra_mib"], 1)
                h.add(f"vertices(), chunk_size={chunk}", secs, group=group, items=args.timesteps,
                      unit="timestep", peak_extra_mib=mem, max_abs_diff_vs_loop_m=err,
                      note=f"peak +{mem} MiB" if mem is not None else "")
    h.finish()
    for c in h.cases:
        if not c.baseline and "peak_extra_mib" in c.extra:
            print(f"  {c.group}: {c.label}: peak +{c.extra['peak_extra_mib']} MiB, "
                  f"max |diff| vs loop {c.extra['max_abs_diff_vs_loop_m']:.1e} m")


if __name__ == "__main__":
    main()
