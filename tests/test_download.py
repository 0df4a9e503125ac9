"""`nersemble-zarr download` against a real HTTP server on 127.0.0.1 with injected faults."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nersemble_zarr.pipelines.download import selection as assets
from nersemble_zarr.core.benchmark import ACCESS_FORM_URL, MONO, MONO_BENCHMARK, NVS, NVS_BENCHMARK
from nersemble_zarr.pipelines.download import (
    AccessDeniedError, DownloadError, DownloadProgress, Downloader, FetchResult, Redactor, Status, download_benchmark,
)
from nersemble_zarr.pipelines.download import engine as engine_module

sys.path.insert(0, str(Path(__file__).parent))
from http_server import Fault, FileServer, _etag  # noqa: E402

CLI = str(Path(sys.executable).with_name("nersemble-zarr"))
#: A distinctive secret in the URL path: it must never show up in output or in written files.
TOKEN = "s3cr3t-TOKEN-4f9a1c"
NVS_PID, MONO_PID = 388, 393


def _nvs_metadata(timesteps: list[int]) -> dict:
    return {"sequences": {str(p): {"sequence_name": NVS_BENCHMARK.sequences[p][0], "timesteps": timesteps}
                          for p in NVS_BENCHMARK.participants}}


def _mono_metadata() -> dict:
    return {"participants_metadata": {str(p): {"sequences_metadata": {s: {"n_frames": 7} for s in MONO_BENCHMARK.sequences[p]}}
                                      for p in MONO_BENCHMARK.participants}}


def _empty_file() -> str:
    return assets.select_files(MONO, participants=[MONO_PID], assets="flame2023_tracking_v2")[-1]


@pytest.fixture(scope="module")
def tree() -> dict[str, bytes]:
    """A served tree in the official layout (paths from benchmark.py): NVS 388 with point clouds at
    irregular timesteps, mono 393 with both tracking versions. Contents are random bytes of varied
    sizes (one > 2 MiB, one empty): the downloader must not care what the files hold."""
    rng = random.Random(5)
    nvs_meta = _nvs_metadata([2, 5, 9, 14])
    files = {f"{NVS}/metadata.json": json.dumps(nvs_meta).encode(), f"{MONO}/metadata.json": json.dumps(_mono_metadata()).encode()}
    for rel in assets.select_files(NVS, participants=[NVS_PID], pointcloud_frames="all", metadata=nvs_meta):
        # videos are big enough for the faults below (cuts at 40 kB); the rest as small as 1 byte
        files[f"{NVS}/{rel}"] = rng.randbytes(rng.randint(50_000, 150_000) if rel.endswith(".mp4") else rng.randint(1, 30_000))
    for rel in assets.select_files(MONO, participants=[MONO_PID]):
        files[f"{MONO}/{rel}"] = rng.randbytes(rng.randint(1, 30_000))
    files[f"{NVS}/{assets.select_files(NVS, participants=[NVS_PID], assets='images')[5]}"] = rng.randbytes(2_500_000)
    files[f"{MONO}/{_empty_file()}"] = b""
    return files


@pytest.fixture()
def server(tree):
    with FileServer(dict(tree), prefix=TOKEN) as srv:
        yield srv


def _nvs_files(tree: dict[str, bytes]) -> dict[str, bytes]:
    return {k[len(NVS) + 1:]: v for k, v in tree.items() if k.startswith(f"{NVS}/")}


def _local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _env(url: str | None, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NERSEMBLE_BENCHMARK_URL"}
    env["HOME"] = str(home)  # the user's real ~/.config/nersemble_benchmark/.env is never read
    if url is not None:
        env["NERSEMBLE_BENCHMARK_URL"] = url
    return env


def _cli(args: list[str], url: str | None, home: Path, *, debug: bool = False) -> subprocess.CompletedProcess:
    cmd = [CLI, *(["--debug"] if debug else []), "download", *args]
    return subprocess.run(cmd, env=_env(url, home), capture_output=True, text=True, timeout=120)


def _video(kind: str = "images", index: int = 0) -> str:
    """Relative path (below nvs/) of the index-th selected NVS video of participant 388."""
    return assets.select_files(NVS, participants=[NVS_PID], assets=[kind])[index]


def _download_nvs(raw: Path, url: str, **kwargs):
    kwargs = {"participants": [NVS_PID], "pointcloud_frames": "all", "backoff": 0.0, "progress": False} | kwargs
    return download_benchmark(raw, NVS, url=url, **kwargs)


# --------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------


def test_nvs_selection_is_13_train_cameras_and_first_pointcloud_by_default():
    meta = _nvs_metadata([3, 4, 5])
    files = assets.select_files(NVS, participants=[422], metadata=meta)
    seq = NVS_BENCHMARK.sequences[422][0]
    videos = [f for f in files if "/images/" in f or "/alpha_maps/" in f]
    assert len(NVS_BENCHMARK.train_serials) == 13 and len(videos) == 26
    assert not any(s in f for s in NVS_BENCHMARK.hold_out_serials for f in videos)
    assert [f for f in files if f.endswith(".pcd")] == [f"422/sequences/{seq}/pointclouds/frame_00003.pcd"]
    assert files[0] == "422/calibration/camera_params.json"
    all_clouds = assets.select_files(NVS, participants=[422], assets=["pointclouds"], pointcloud_frames="all", metadata=meta)
    assert [f[-9:-4] for f in all_clouds] == ["00003", "00004", "00005"]


def test_mono_selection_has_video_only_for_train_sequences_and_tracking_for_all():
    files = assets.select_files(MONO, participants=[461])
    videos = [f for f in files if f.endswith(".mp4")]
    tracking = [f for f in files if f.endswith(".npz")]
    assert len(videos) == 2 * len(MONO_BENCHMARK.train_sequences[461])
    assert all(MONO_BENCHMARK.train_serials[0] in f for f in videos)
    assert not any(t in f for t in MONO_BENCHMARK.test_sequences[461] for f in videos)
    assert len(tracking) == 2 * len(MONO_BENCHMARK.sequences[461])
    v2_only = assets.select_files(MONO, participants=[461], assets=["flame2023_tracking_v2"])
    assert len(v2_only) == len(MONO_BENCHMARK.sequences[461]) and all(f.endswith("_v2.npz") for f in v2_only)


def test_selection_rejects_unknown_asset_participant_and_timestep_naming_them():
    with pytest.raises(assets.AssetSelectionError, match="'depth'.*calibration"):
        assets.resolve_assets(NVS, ["depth"])
    with pytest.raises(assets.AssetSelectionError, match="pointclouds"):
        assets.resolve_assets(MONO, ["pointclouds"])
    with pytest.raises(assets.AssetSelectionError, match="participant 999"):
        assets.select_files(NVS, participants=[999])
    with pytest.raises(assets.AssetSelectionError, match=r"timestep\(s\) 7 .*participant 388.*3\.\.5"):
        assets.select_files(NVS, participants=[388], assets=["pointclouds"], pointcloud_frames=[3, 7],
                            metadata=_nvs_metadata([3, 4, 5]))


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--assets", "images,depth"], "unknown asset 'depth'"), (["-p", "388,999"], "participant 999 is not in the nvs"),
     (["--pointcloud-frames", "all,3"], "expected integers")],
    ids=["asset", "participant", "pointcloud-frames"],
)
def test_invalid_selection_is_one_line_error_before_any_request(server, tmp_path, args, message):
    r = _cli([str(tmp_path / "raw"), NVS, *args], server.url, tmp_path)
    assert r.returncode in (1, 2) and message in r.stderr and "Traceback" not in r.stderr
    assert server.requests == [] and not (tmp_path / "raw").exists()


# --------------------------------------------------------------------------------------------
# The command end to end
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_complete_download_of_the_sample_equals_the_served_tree_byte_for_byte(sample_root, tmp_path):
    served = {rel: data for rel, data in _local_files(sample_root).items() if rel.split("/", 1)[0] in (NVS, MONO)}
    raw = tmp_path / "raw"
    with FileServer(dict(served), prefix=TOKEN) as srv:
        for benchmark in (NVS, MONO):
            pids = sorted(d.name for d in (sample_root / benchmark).iterdir() if d.is_dir())  # those with files
            r = _cli([str(raw), benchmark, "-p", ",".join(map(str, pids)), "--pointcloud-frames", "all", "--workers", "4"],
                     srv.url, tmp_path)
            assert r.returncode == 0, r.stderr
            assert "failed:        0 files" in r.stdout and "not on server: 0 files" in r.stdout, r.stdout
            assert TOKEN not in r.stdout + r.stderr
        assert _local_files(raw) == served  # every file, byte for byte; no .part leftovers, nothing else
        assert sum(srv.bytes_served.values()) == sum(map(len, served.values()))  # every byte exactly once
    n_mono = sum(rel.startswith(f"{MONO}/") for rel in served) - 1  # metadata.json is fetched before the bar
    assert "100%" in r.stderr and f"files {n_mono}/{n_mono}]" in r.stderr and "B/s" in r.stderr  # bytes, rate, files


def test_complete_files_are_skipped_without_any_request(server, tree, tmp_path):
    raw = tmp_path / "raw"
    assert _download_nvs(raw, server.url).ok
    server.reset_counters()
    report = _download_nvs(raw, server.url)
    assert report.downloaded == [] and sorted(report.skipped) == sorted(_nvs_files(tree))
    assert server.requests == []


def test_overwrite_replaces_complete_files_atomically(server, tree, tmp_path):
    raw = tmp_path / "raw"
    assert _download_nvs(raw, server.url, assets=["calibration"]).ok
    calibration = raw / NVS / f"{NVS_PID}/calibration/camera_params.json"
    calibration.write_bytes(b"stale")
    report = _download_nvs(raw, server.url, assets=["calibration"], overwrite=True)
    assert len(report.downloaded) == 2  # metadata.json too
    assert calibration.read_bytes() == tree[f"{NVS}/{NVS_PID}/calibration/camera_params.json"]


def test_check_sizes_redownloads_files_left_incomplete_by_another_tool(server, tree, tmp_path):
    raw = tmp_path / "raw"
    assert _download_nvs(raw, server.url).ok
    truncated = _video("images", 5)
    (raw / NVS / truncated).write_bytes(tree[f"{NVS}/{truncated}"][:1000])  # as a direct-to-final-path writer leaves it
    server.reset_counters()
    assert truncated in _download_nvs(raw, server.url).skipped  # no request: trusted as complete
    report = _download_nvs(raw, server.url, check_sizes=True)
    assert report.downloaded == [truncated] and len(report.skipped) == len(_nvs_files(tree)) - 1
    assert (raw / NVS / truncated).read_bytes() == tree[f"{NVS}/{truncated}"]
    assert {r.path for r in server.requests if r.method == "GET"} == {f"{NVS}/{truncated}"}
    assert sum(server.bytes_served.values()) == len(tree[f"{NVS}/{truncated}"])


@pytest.mark.slow
def test_killed_download_resumes_only_the_missing_bytes(server, tree, tmp_path):
    raw = tmp_path / "raw"
    order = assets.select_files(NVS, participants=[NVS_PID], pointcloud_frames="all", metadata=json.loads(tree[f"{NVS}/metadata.json"]))
    stalled = order[len(order) // 2]
    size = len(tree[f"{NVS}/{stalled}"])
    cut = size // 3
    server.add_fault(f"{NVS}/{stalled}", Fault(stall_after=cut))
    proc = subprocess.Popen(
        [CLI, "download", str(raw), NVS, "-p", str(NVS_PID), "--pointcloud-frames", "all", "--workers", "1"],
        env=_env(server.url, tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        assert server.wait_stalled(f"{NVS}/{stalled}") == cut
        part = raw / NVS / f"{stalled}.part"
        deadline = time.monotonic() + 30
        while (not part.exists() or part.stat().st_size < cut) and time.monotonic() < deadline:
            time.sleep(0.01)  # waiting for the client to write what the server has sent
        assert part.stat().st_size == cut
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished = [rel for rel in order if (raw / NVS / rel).is_file()]
    assert finished == order[: order.index(stalled)]  # one worker: everything before the stalled file
    assert not (raw / NVS / stalled).exists()

    server.release()
    server.reset_counters()
    r = _cli([str(raw), NVS, "-p", str(NVS_PID), "--pointcloud-frames", "all"], server.url, tmp_path)
    assert r.returncode == 0, r.stderr
    assert _local_files(raw / NVS) == _nvs_files(tree)
    for rel in finished:
        assert server.bytes_served[f"{NVS}/{rel}"] == 0 and not server.gets(f"{NVS}/{rel}")
    assert server.bytes_served[f"{NVS}/{stalled}"] == size - cut
    assert [g.range for g in server.gets(f"{NVS}/{stalled}")] == [f"bytes={cut}-"]
    for rel in order[order.index(stalled) + 1:]:
        assert server.bytes_served[f"{NVS}/{rel}"] == len(tree[f"{NVS}/{rel}"])
    assert f"skipped:       {len(finished) + 1} files" in r.stdout  # + metadata.json


@pytest.mark.slow
def test_ctrl_c_stops_at_once_even_on_a_silent_server_and_keeps_the_part(server, tree, tmp_path):
    raw = tmp_path / "raw"
    stalled = _video("images", 0)
    server.add_fault(f"{NVS}/{stalled}", Fault(stall_after=20_000))
    proc = subprocess.Popen(
        [CLI, "download", str(raw), NVS, "-p", str(NVS_PID), "--workers", "2", "--timeout", "600"],
        env=_env(server.url, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        server.wait_stalled(f"{NVS}/{stalled}")
        part = raw / NVS / f"{stalled}.part"
        deadline = time.monotonic() + 30
        while (not part.exists() or part.stat().st_size < 20_000) and time.monotonic() < deadline:
            time.sleep(0.01)  # waiting for the client to write what the server has sent
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)  # far below --timeout: the stalled read was interrupted
    finally:
        proc.kill()
    assert proc.returncode == 130 and "interrupted; rerun the same command to resume" in err  # issue #10 point 12
    assert part.read_bytes() == tree[f"{NVS}/{stalled}"][:20_000]
    assert TOKEN not in out + err


def test_connection_cut_mid_file_resumes_from_the_cut(server, tree, tmp_path):
    big = _video("images", 5)
    server.add_fault(f"{NVS}/{big}", Fault(cut_after=700_000))
    report = _download_nvs(tmp_path / "raw", server.url)
    assert report.ok and big in report.downloaded
    assert (tmp_path / "raw" / NVS / big).read_bytes() == tree[f"{NVS}/{big}"]
    assert server.bytes_served[f"{NVS}/{big}"] == len(tree[f"{NVS}/{big}"])  # nothing fetched twice
    assert [g.range for g in server.gets(f"{NVS}/{big}")] == [None, "bytes=700000-"]


def test_part_holding_the_whole_file_is_renamed_without_fetching_it_again(server, tree, tmp_path):
    rel = _video("alpha_maps", 0)
    part = tmp_path / "raw" / NVS / f"{rel}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(tree[f"{NVS}/{rel}"])  # killed between the last byte and the rename
    state = {"size": len(tree[f"{NVS}/{rel}"]), "validator": _etag(tree[f"{NVS}/{rel}"])}
    (part.parent / f"{part.name}.json").write_text(json.dumps(state))
    report = _download_nvs(tmp_path / "raw", server.url)
    assert report.ok and rel in report.downloaded
    assert (tmp_path / "raw" / NVS / rel).read_bytes() == tree[f"{NVS}/{rel}"] and not part.exists()
    assert [g.status for g in server.gets(f"{NVS}/{rel}")] == [416] and server.bytes_served[f"{NVS}/{rel}"] == 0


def test_leftover_temporary_state_files_of_an_interrupted_run_are_removed(server, tree, tmp_path):
    """An interrupt can stop a worker between writing a ``.part.json``'s temporary file and its rename; the
    rerun removes such leftovers, so the folder ends equal to a clean download."""
    rel = _video("images", 1)
    folder = (tmp_path / "raw" / NVS / rel).parent
    folder.mkdir(parents=True)
    leftover = folder / f".{Path(rel).name}.part.json.b693cb71.tmp"
    leftover.write_bytes(b"")
    report = _download_nvs(tmp_path / "raw", server.url)
    assert report.ok and not leftover.exists()
    assert _local_files(tmp_path / "raw" / NVS) == _nvs_files(tree)


def test_stalled_response_times_out_and_resumes(server, tree, tmp_path):
    rel = _video("images", 2)
    server.add_fault(f"{NVS}/{rel}", Fault(stall_after=30_000))
    report = _download_nvs(tmp_path / "raw", server.url, timeout=0.5)
    assert report.ok and rel in report.downloaded
    assert (tmp_path / "raw" / NVS / rel).read_bytes() == tree[f"{NVS}/{rel}"]
    assert [g.range for g in server.gets(f"{NVS}/{rel}")] == [None, "bytes=30000-"]
    assert server.bytes_served[f"{NVS}/{rel}"] == len(tree[f"{NVS}/{rel}"])


def test_server_error_once_is_retried(server, tree, tmp_path):
    rel = _video("alpha_maps", 2)
    server.add_fault(f"{NVS}/{rel}", Fault(status=500))
    report = _download_nvs(tmp_path / "raw", server.url)
    assert report.ok and rel in report.downloaded
    assert [g.status for g in server.gets(f"{NVS}/{rel}")] == [500, 200]
    assert (tmp_path / "raw" / NVS / rel).read_bytes() == tree[f"{NVS}/{rel}"]


@pytest.mark.parametrize(
    ("if_range", "new_size"),
    [(True, 90_000), (False, 90_000), (False, 10_000)],
    ids=["if-range-refused", "total-size-changed", "range-not-satisfiable"],
)
def test_file_changed_on_server_during_download_restarts_cleanly(server, tree, tmp_path, if_range, new_size):
    rel = _video("images", 1)
    new = random.Random(new_size).randbytes(new_size)
    server.honour_if_range = if_range
    server.add_fault(f"{NVS}/{rel}", Fault(cut_after=40_000))
    server.replace_on_get[f"{NVS}/{rel}"] = new
    report = _download_nvs(tmp_path / "raw", server.url)
    assert report.ok and rel in report.downloaded
    assert (tmp_path / "raw" / NVS / rel).read_bytes() == new
    assert not (tmp_path / "raw" / NVS / f"{rel}.part").exists()
    statuses = [g.status for g in server.gets(f"{NVS}/{rel}")]
    assert statuses[0] == 200 and statuses[-1] == 200, statuses  # restarted from byte 0


@pytest.mark.parametrize("validators", ["etag", "last-modified", "last-modified-now", "none"])
def test_same_size_change_on_a_server_ignoring_if_range_is_never_spliced(server, tree, tmp_path, validators):
    # the worst server: it answers every Range with 206 whatever If-Range says, and the file changes
    # to new bytes of the same size between the interrupted download and the resume
    rel = _video("images", 1)
    old = tree[f"{NVS}/{rel}"]
    new = random.Random(3).randbytes(len(old))
    server.honour_if_range = False
    server.validators = validators
    server.add_fault(f"{NVS}/{rel}", Fault(cut_after=40_000))
    server.replace_on_get[f"{NVS}/{rel}"] = new
    report = _download_nvs(tmp_path / "raw", server.url)
    assert report.ok and rel in report.downloaded
    assert (tmp_path / "raw" / NVS / rel).read_bytes() == new  # the new file exactly, not old[:40000] + new[40000:]
    assert not (tmp_path / "raw" / NVS / f"{rel}.part").exists()
    assert not (tmp_path / "raw" / NVS / f"{rel}.part.json").exists()
    for path in (tmp_path / "raw").rglob("*"):
        assert not path.is_file() or TOKEN.encode() not in path.read_bytes(), path
    gets = server.gets(f"{NVS}/{rel}")
    assert gets[-1].range is None and gets[-1].status == 200, gets  # the new version fetched from byte 0
    if validators in ("etag", "last-modified"):
        # a validator was recorded: the resume was tried and its 206 refused for carrying another version
        assert [(g.range, g.status) for g in gets] == [(None, 200), ("bytes=40000-", 206), (None, 200)]
    else:
        # nothing proves the 40 000 bytes on disk belong to the current version: no resume is even tried
        assert [(g.range, g.status) for g in gets] == [(None, 200), (None, 200)]


@pytest.mark.parametrize("validators", ["etag", "last-modified"])
def test_unchanged_file_resumes_with_either_strong_validator(server, tree, tmp_path, validators):
    rel = _video("images", 3)
    server.honour_if_range = False  # the 206 itself must prove the version, not the server's If-Range
    server.validators = validators
    server.add_fault(f"{NVS}/{rel}", Fault(cut_after=40_000))
    report = _download_nvs(tmp_path / "raw", server.url)
    assert report.ok and rel in report.downloaded
    assert (tmp_path / "raw" / NVS / rel).read_bytes() == tree[f"{NVS}/{rel}"]
    assert [g.range for g in server.gets(f"{NVS}/{rel}")] == [None, "bytes=40000-"]
    assert server.bytes_served[f"{NVS}/{rel}"] == len(tree[f"{NVS}/{rel}"])  # nothing fetched twice


@pytest.mark.parametrize("state", ["no state file", "state without validator", "unreadable state"])
def test_part_whose_version_is_unknown_is_restarted_from_zero(server, tree, tmp_path, state):
    # e.g. left by an older downloader, or another tool: its bytes may belong to another version
    rel = _video("alpha_maps", 1)
    part = tmp_path / "raw" / NVS / f"{rel}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 20_000)  # not the server's bytes: a resume would splice them in
    if state == "state without validator":
        (part.parent / f"{part.name}.json").write_text(json.dumps({"size": len(tree[f"{NVS}/{rel}"]), "validator": None}))
    elif state == "unreadable state":
        (part.parent / f"{part.name}.json").write_text("{not json")
    report = _download_nvs(tmp_path / "raw", server.url)
    assert report.ok and rel in report.downloaded
    assert (tmp_path / "raw" / NVS / rel).read_bytes() == tree[f"{NVS}/{rel}"]
    assert [g.range for g in server.gets(f"{NVS}/{rel}")] == [None]


def test_content_encoded_body_is_refused_not_saved(server, tmp_path):
    rel = _video("images", 6)
    server.headers[f"{NVS}/{rel}"] = {"Content-Encoding": "gzip"}
    report = _download_nvs(tmp_path / "raw", server.url)
    assert "gzip-encoded" in report.failed[rel] and len(server.gets(f"{NVS}/{rel}")) == 1  # not retried
    assert not (tmp_path / "raw" / NVS / rel).exists()


def test_missing_file_is_reported_not_on_server_and_exit_code_zero(server, tree, tmp_path):
    missing = _video("alpha_maps", 7)
    del server.files[f"{NVS}/{missing}"]
    r = _cli([str(tmp_path / "raw"), NVS, "-p", str(NVS_PID), "--pointcloud-frames", "all"], server.url, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "not on server: 1 file" in r.stdout and "failed:        0 files" in r.stdout
    assert f"<NERSEMBLE_BENCHMARK_URL>/{NVS}/{missing}" in r.stdout
    assert not (tmp_path / "raw" / NVS / missing).exists()
    assert len(_local_files(tmp_path / "raw" / NVS)) == len(_nvs_files(tree)) - 1


def test_persistent_server_error_is_failed_and_exit_code_one(server, tree, tmp_path):
    rel = _video("images", 3)
    server.add_fault(f"{NVS}/{rel}", Fault(status=503, times=None))
    r = _cli([str(tmp_path / "raw"), NVS, "-p", str(NVS_PID), "--pointcloud-frames", "all", "--retries", "2",
              "--backoff", "0"], server.url, tmp_path)
    assert r.returncode == 1
    assert "failed:        1 file" in r.stdout and f"{NVS}/{rel}: gave up after 3 attempts: HTTP 503" in r.stdout
    assert "error: 1 file failed to download" in r.stderr
    assert len(server.gets(f"{NVS}/{rel}")) == 3
    assert len(_local_files(tmp_path / "raw" / NVS)) == len(_nvs_files(tree)) - 1


@pytest.mark.parametrize("on_head", [True, False], ids=["head-and-get", "get-only"])
def test_forbidden_stops_with_access_url_rejected_and_exit_code_one(server, tmp_path, on_head):
    rel = _video("images", 4)
    server.add_fault(f"{NVS}/{rel}", Fault(status=403, times=None, include_head=on_head))
    r = _cli([str(tmp_path / "raw"), NVS, "-p", str(NVS_PID)], server.url, tmp_path)
    assert r.returncode == 1
    assert f"error: access URL rejected (HTTP 403 for <NERSEMBLE_BENCHMARK_URL>/{NVS}/{rel})" in r.stderr
    assert "downloaded:" in r.stdout  # the summary of what was done before stopping
    assert len(server.gets(f"{NVS}/{rel}")) == (0 if on_head else 1)  # never retried
    assert not (tmp_path / "raw" / NVS / rel).exists()
    assert TOKEN not in r.stdout + r.stderr


def test_forbidden_metadata_raises_access_denied_from_the_library(server, tmp_path):
    server.add_fault(f"{NVS}/metadata.json", Fault(status=401, times=None, include_head=True))
    with pytest.raises(AccessDeniedError, match="access URL rejected.*HTTP 401"):
        _download_nvs(tmp_path / "raw", server.url)
    assert not (tmp_path / "raw" / NVS / "metadata.json").exists()


def test_access_url_never_appears_in_output_or_written_files(server, tmp_path):
    server.add_fault(f"{NVS}/{_video('images', 0)}", Fault(cut_after=10))
    server.add_fault(f"{NVS}/{_video('images', 1)}", Fault(status=500, times=None))
    del server.files[f"{NVS}/{_video('images', 2)}"]
    raw = tmp_path / "raw"
    r = _cli([str(raw), NVS, "-p", str(NVS_PID), "--retries", "1", "--backoff", "0"], server.url, tmp_path,
             debug=True)
    assert r.returncode == 1 and "<NERSEMBLE_BENCHMARK_URL>" in r.stdout
    assert TOKEN not in r.stdout + r.stderr
    for path in raw.rglob("*"):
        assert not path.is_file() or TOKEN.encode() not in path.read_bytes(), path


def test_unreachable_server_error_is_redacted(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/{TOKEN}"
    r = _cli([str(tmp_path / "raw"), NVS, "--retries", "1", "--backoff", "0"], url, tmp_path, debug=True)
    assert r.returncode == 1
    assert f"error: cannot download <NERSEMBLE_BENCHMARK_URL>/{NVS}/metadata.json" in r.stderr
    assert "connection failed" in r.stderr and TOKEN not in r.stderr + r.stdout
    with pytest.raises(DownloadError) as e:
        download_benchmark(tmp_path / "raw", NVS, url=url, retries=0, progress=False)
    assert TOKEN not in str(e.value) and e.value.__cause__ is None and e.value.__context__ is None


def test_missing_access_url_says_how_to_get_one(tmp_path):
    r = _cli([str(tmp_path / "raw"), MONO], None, tmp_path)
    assert r.returncode == 1
    assert ACCESS_FORM_URL in r.stderr and str(tmp_path / ".config/nersemble_benchmark/.env") in r.stderr
    assert not (tmp_path / "raw").exists()


def test_malformed_access_url_is_rejected_without_showing_it(tmp_path):
    r = _cli([str(tmp_path / "raw"), NVS], f"ftp:/{TOKEN}", tmp_path)
    assert r.returncode == 1 and "is not an http(s):// URL" in r.stderr and TOKEN not in r.stderr + r.stdout


def test_access_url_is_read_from_the_env_file(server, tmp_path):
    env_file = tmp_path / ".config" / "nersemble_benchmark" / ".env"
    env_file.parent.mkdir(parents=True)
    env_file.write_text(f'NERSEMBLE_BENCHMARK_URL="{server.url}"\n')
    r = _cli([str(tmp_path / "raw"), MONO, "-p", str(MONO_PID), "--assets", "calibration,flame2023_tracking_v2"],
             None, tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"downloaded:    {1 + 1 + len(MONO_BENCHMARK.sequences[MONO_PID])} files" in r.stdout
    assert (tmp_path / "raw" / MONO / _empty_file()).read_bytes() == b""  # an empty file is complete too
    assert TOKEN not in r.stdout + r.stderr


@pytest.mark.slow
def test_convert_option_converts_what_was_downloaded(sample_root, tmp_path):
    import zarr

    from nersemble_zarr.core.benchmark import video_path
    from nersemble_zarr.raw import read_frame

    raw, store = tmp_path / "raw", tmp_path / "store.zarr"
    with FileServer.from_tree(sample_root, prefix=TOKEN) as srv:
        r = _cli([str(raw), MONO, "-p", str(MONO_PID), "--convert", str(store)], srv.url, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "0 failed" in r.stdout and "units converted" in r.stdout
    assert TOKEN not in r.stdout + r.stderr
    seq = MONO_BENCHMARK.train_sequences[MONO_PID][0]
    images = zarr.open_array(store, path=f"{MONO}/{MONO_PID}/{seq}/images", mode="r")
    mp4 = raw / MONO / video_path(MONO_PID, seq, MONO_BENCHMARK.train_serials[0])
    assert (images[0, 0] == read_frame(mp4, 0)).all()  # converted from the downloaded file


# --------------------------------------------------------------------------------------------
# The engine apart: outcomes, no benchmark knowledge, no state beyond a call
# --------------------------------------------------------------------------------------------

_PLAIN = {"a/one.bin": b"1" * 70_000, "a/two.bin": b"2" * 5_000, "b/three.bin": b"", "gone.bin": b"x"}


@pytest.fixture()
def plain_server():
    """Files that are no benchmark's: the engine is handed a base URL, a folder and paths, nothing else."""
    with FileServer(dict(_PLAIN), prefix=TOKEN) as srv:
        yield srv


def test_engine_returns_one_outcome_per_path_instead_of_raising(plain_server, tmp_path):
    del plain_server.files["gone.bin"]
    plain_server.add_fault("a/two.bin", Fault(status=503, times=None))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "three.bin").write_bytes(b"")  # already complete: no request
    result = Downloader(plain_server.url, tmp_path, retries=1, backoff=0).fetch(
        ["a/one.bin", "a/two.bin", "b/three.bin", "gone.bin", "a/one.bin"])  # a duplicate counts once
    assert isinstance(result, FetchResult) and not result.ok
    assert [(o.path, o.status) for o in result.outcomes] == [
        ("a/one.bin", Status.DOWNLOADED), ("a/two.bin", Status.FAILED), ("b/three.bin", Status.SKIPPED),
        ("gone.bin", Status.NOT_FOUND)]
    assert result.failed == {"a/two.bin": "gave up after 2 attempts: HTTP 503"}
    assert result.bytes_received == 70_000 and (tmp_path / "a/one.bin").read_bytes() == _PLAIN["a/one.bin"]
    assert result.denied is None and result.seconds > 0


def test_engine_denied_is_an_outcome_that_aborts_the_rest_of_the_call(plain_server, tmp_path):
    plain_server.add_fault("a/one.bin", Fault(status=403, times=None, include_head=True))
    result = Downloader(plain_server.url, tmp_path, workers=1).fetch(["a/one.bin", "a/two.bin"])
    assert result.denied is not None and result.denied.path == "a/one.bin" and result.denied.http_status == 403
    assert {o.path: o.status for o in result.outcomes}["a/two.bin"] in (Status.ABORTED, Status.DOWNLOADED)
    assert not (tmp_path / "a/one.bin").exists()


def test_engine_knows_no_benchmark_no_selection_and_no_secret():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(engine_module))
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if any(w in m for w in ("benchmark", "config", "selection", "report", "run"))}, imported
    # no module-level mutable state: no global container, flag or lock that a call could leave behind
    import collections

    mutable_types = (dict, list, set, bytearray, collections.deque, threading.Event, type(threading.Lock()),
                     type(threading.RLock()), threading.Condition)
    mutable = {k: type(v).__name__ for k, v in vars(engine_module).items()
               if not k.startswith("__") and isinstance(v, mutable_types)}
    assert mutable == {}, mutable


def test_a_fetch_after_a_denied_one_on_the_same_downloader_is_independent(plain_server, tmp_path):
    plain_server.add_fault("a/one.bin", Fault(status=401, times=1))
    engine = Downloader(plain_server.url, tmp_path, backoff=0)
    first = engine.fetch(["a/one.bin", "a/two.bin"])
    assert first.denied is not None and first.denied.http_status == 401
    second = engine.fetch(["a/one.bin", "a/two.bin"])  # the abort of the first call did not outlive it
    assert second.ok and second.denied is None
    assert {o.status for o in second.outcomes} <= {Status.DOWNLOADED, Status.SKIPPED}
    assert (tmp_path / "a/one.bin").read_bytes() == _PLAIN["a/one.bin"]


def test_a_fetch_after_a_ctrl_c_on_the_same_downloader_is_independent(plain_server, tmp_path):
    plain_server.add_fault("a/one.bin", Fault(stall_after=20_000))
    engine = Downloader(plain_server.url, tmp_path, timeout=600)
    timer = threading.Thread(
        target=lambda: (plain_server.wait_stalled("a/one.bin"), time.sleep(0.2), os.kill(os.getpid(), signal.SIGINT)))
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        engine.fetch(["a/one.bin"])
    timer.join()
    assert time.monotonic() - t0 < 60  # far below the timeout: the stalled read was interrupted
    assert (tmp_path / "a/one.bin.part").read_bytes() == _PLAIN["a/one.bin"][:20_000]  # kept for a resume
    plain_server.release()
    plain_server.reset_counters()
    result = engine.fetch(["a/one.bin"])
    assert result.downloaded == ["a/one.bin"] and (tmp_path / "a/one.bin").read_bytes() == _PLAIN["a/one.bin"]
    assert [g.range for g in plain_server.gets("a/one.bin")] == ["bytes=20000-"]


def test_two_downloads_at_once_in_one_process_are_independent(tree, tmp_path):
    # one server denies everything, the other serves: the denial must not abort the other download
    with FileServer(dict(tree), prefix=TOKEN) as good, FileServer(dict(tree), prefix=TOKEN) as bad:
        for path in tree:
            bad.add_fault(path, Fault(status=403, times=None, include_head=True))
        results: dict[str, object] = {}

        def run(name: str, url: str) -> None:
            try:
                results[name] = _download_nvs(tmp_path / name, url, assets=["images", "alpha_maps"], workers=2)
            except AccessDeniedError as e:
                results[name] = e

        threads = [threading.Thread(target=run, args=(n, s.url)) for n, s in (("good", good), ("bad", bad))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert isinstance(results["bad"], AccessDeniedError)
    report = results["good"]
    assert report.ok and len(report.downloaded) == 1 + 2 * len(NVS_BENCHMARK.train_serials)
    videos = {rel for rel in _nvs_files(tree) if rel.endswith(".mp4")}
    assert {rel for rel in _local_files(tmp_path / "good" / NVS)} == videos | {"metadata.json"}


def test_report_redacts_every_form_of_the_access_url_and_gives_the_exit_code(tmp_path):
    from nersemble_zarr.pipelines.download.engine import FileOutcome

    url = f"https://user:pw@example.org/{TOKEN}/x?sig={TOKEN}2"
    redact = Redactor(url)
    assert TOKEN not in redact(f"failed {url}/nvs/a, example.org/{TOKEN}/x, /{TOKEN}/x, sig={TOKEN}2") and TOKEN not in repr(redact)
    result = FetchResult((FileOutcome("a.bin", Status.FAILED, reason=f"connection failed: {url}/nvs/a.bin"),
                          FileOutcome("b.bin", Status.DOWNLOADED, 10)), 1.0)
    from nersemble_zarr.pipelines.download import DownloadReport

    report = DownloadReport(NVS, tmp_path).add(result, redact)
    assert report.exit_code == 1 and report.downloaded == ["b.bin"] and report.bytes_downloaded == 10
    text = "\n".join(report.summary_lines())
    assert TOKEN not in text and "<NERSEMBLE_BENCHMARK_URL>/nvs/a.bin: connection failed: <NERSEMBLE_BENCHMARK_URL>" in text
    assert DownloadReport(NVS, tmp_path).exit_code == 0


def test_progress_display_counts_bytes_and_files(plain_server, tmp_path, capsys):
    display = DownloadProgress(True, desc="download test")
    result = Downloader(plain_server.url, tmp_path).fetch(list(_PLAIN), progress=display)
    assert result.ok
    err = capsys.readouterr().err
    assert "download test" in err and "100%" in err and "files 4/4]" in err and "B/s" in err
