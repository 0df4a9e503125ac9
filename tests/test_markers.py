"""storage/markers.py: the one place that reads and writes completion markers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from nersemble_zarr.core import schema
from nersemble_zarr.storage import markers


def _images(root: zarr.Group) -> zarr.Array:
    return root.create_array("images", shape=(2,), dtype="uint8", attributes=markers.cameras_attrs())


def test_group_markers_are_written_and_read_as_one_attribute(tmp_path: Path) -> None:
    root = zarr.open_group(tmp_path / "s.zarr", mode="w")
    group = root.create_group("tracking_v2", attributes=dict(markers.INCOMPLETE))
    assert not markers.is_complete(group) and markers.has_complete_attr(group)
    markers.mark_complete(group)
    assert markers.is_complete(zarr.open_group(tmp_path / "s.zarr", path="tracking_v2", mode="r"))
    assert dict(group.attrs) == {schema.COMPLETE_ATTR: True}
    markers.unmark(group)
    assert group.attrs[schema.COMPLETE_ATTR] is False
    # a truthy value that is not True (a hand-edited store) is not a marker; absent nodes are not complete
    assert not markers.is_complete({schema.COMPLETE_ATTR: "yes"}) and not markers.is_complete(None)


def test_unmark_drop_other_attrs_leaves_only_the_marker(tmp_path: Path) -> None:
    group = zarr.open_group(tmp_path / "s.zarr", mode="w").create_group("level_2", attributes={"factor": 2, "complete": True})
    markers.unmark(group, drop_other_attrs=True)
    assert dict(group.attrs) == {schema.COMPLETE_ATTR: False}


def test_camera_markers_add_sorted_and_remove_only_what_is_named(tmp_path: Path) -> None:
    arr = _images(zarr.open_group(tmp_path / "s.zarr", mode="w"))
    assert markers.complete_cameras(arr) == [] and not markers.has_complete_cameras(arr)
    assert markers.mark_cameras_complete(arr, ["222200049", "222200036"]) == ["222200036", "222200049"]
    assert markers.mark_cameras_complete(arr, [np.str_("222200036"), "220700191"]) == ["220700191", "222200036", "222200049"]
    assert markers.unmark_cameras(arr, ["222200036", "000000000"]) == ["220700191", "222200049"]
    reread = zarr.open_array(tmp_path / "s.zarr", path="images", mode="r")
    assert markers.complete_cameras(reread) == ["220700191", "222200049"]
    assert markers.unmark_cameras(arr) == [] and arr.attrs[schema.COMPLETE_CAMERAS_ATTR] == []


def test_unmarked_attrs_clears_only_a_set_marker() -> None:
    assert markers.unmarked_attrs({"complete": True, "version": 2}) == {"complete": False, "version": 2}
    assert markers.unmarked_attrs({"version": 2}) == {"version": 2}
