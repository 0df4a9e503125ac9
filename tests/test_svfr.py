"""SVFR (single-view face reconstruction): benchmark facts, download, sample, convert, data manager, info/check/verify."""

from __future__ import annotations

import hashlib

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
