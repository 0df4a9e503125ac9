"""Completion markers of a store, and the one ``consolidate``.

Writers (convert, downscale, flame, ``check --repair``) mark work done only after it is written, and
re-consolidate the metadata last, so readers that open the tree from the root's consolidated copy see
the markers. This module is the one place that reads or writes a marker; :func:`consolidate` is the only
place that writes consolidated metadata.

Two markers (their attribute names are in :mod:`nersemble_zarr.core.schema`):

- ``complete`` (:data:`~nersemble_zarr.core.schema.COMPLETE_ATTR`): ``True`` on a group (calibration,
  pointclouds, tracking_vN, flame_vN, level_f), on a sequence's coordinate arrays and on ``flame_faces``
  once everything in it is written; ``False`` while it is being (re)written.
- ``complete_cameras`` (:data:`~nersemble_zarr.core.schema.COMPLETE_CAMERAS_ATTR`): on ``images`` and
  ``alpha`` (full resolution and levels), the sorted serials whose frames are all written.

Every reader accepts a ``zarr.Group``/``zarr.Array`` or a node's attributes as a mapping (``check`` reads
metadata documents, not zarr nodes).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import zarr

from ..core.schema import COMPLETE_ATTR, COMPLETE_CAMERAS_ATTR
from .location import StoreLocation

Node = zarr.Group | zarr.Array


def _attrs(node: Node | Mapping[str, Any] | None) -> Mapping[str, Any]:
    if node is None:
        return {}
    if isinstance(node, Mapping):
        return node
    return node.attrs


# ---------------------------------------------------------------------------------------------
# ``complete`` on groups and arrays
# ---------------------------------------------------------------------------------------------


#: Attributes of a group or array created before its content is written (merge into ``attributes=``).
INCOMPLETE: dict[str, Any] = {COMPLETE_ATTR: False}


def is_complete(node: Node | Mapping[str, Any] | None) -> bool:
    """True when ``node`` (a group/array, or its attributes) carries ``complete: true``; ``None`` (absent) is
    not complete."""
    return _attrs(node).get(COMPLETE_ATTR, False) is True


def has_complete_attr(node: Node | Mapping[str, Any] | None) -> bool:
    """True when ``node`` carries a ``complete`` attribute at all (true or false): it is a marked unit."""
    return COMPLETE_ATTR in _attrs(node)


def mark_complete(node: Node) -> None:
    """Write ``complete: true`` on ``node``: call it last, after everything in the node is on the store (and
    re-consolidate after the last marker)."""
    node.update_attributes({COMPLETE_ATTR: True})


def unmark(node: Node, *, drop_other_attrs: bool = False) -> None:
    """Write ``complete: false`` on ``node`` (before it is rewritten, or when ``check --repair`` found it damaged).

    ``drop_other_attrs=True``: the node's attributes become exactly ``{complete: false}`` (one write; a
    downscale level loses its "prepared" attrs with its marker); nothing is written when they already are."""
    if drop_other_attrs:
        if dict(node.attrs) != INCOMPLETE:
            node.attrs.put(dict(INCOMPLETE))
        return
    node.update_attributes({COMPLETE_ATTR: False})


def unmarked_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``attrs`` with the ``complete`` marker cleared (``False`` when it was set, else unchanged): for a
    node document restored from the consolidated copy, whose content was not verified."""
    out = dict(attrs)
    if out.get(COMPLETE_ATTR):
        out[COMPLETE_ATTR] = False
    return out


# ---------------------------------------------------------------------------------------------
# ``complete_cameras`` on images / alpha
# ---------------------------------------------------------------------------------------------


def complete_cameras(array: zarr.Array | Mapping[str, Any] | None) -> list[str]:
    """Serials whose frames are all written in ``array`` (``images``/``alpha``, or its attributes), sorted;
    ``[]`` without a marker."""
    return sorted(str(c) for c in _attrs(array).get(COMPLETE_CAMERAS_ATTR, None) or [])


def has_complete_cameras(array: zarr.Array | Mapping[str, Any] | None) -> bool:
    """True when ``array`` lists at least one complete camera."""
    return bool(_attrs(array).get(COMPLETE_CAMERAS_ATTR))


def mark_cameras_complete(array: zarr.Array, serials: Iterable[str]) -> list[str]:
    """Add ``serials`` to ``array``'s ``complete_cameras`` (last, after their frames are on the store); returns
    the new list."""
    done = sorted(set(complete_cameras(array)) | {str(s) for s in serials})
    array.update_attributes({COMPLETE_CAMERAS_ATTR: done})
    return done


def unmark_cameras(array: zarr.Array, serials: Iterable[str] | None = None) -> list[str]:
    """Remove ``serials`` (``None``: every camera) from ``array``'s ``complete_cameras``; returns the new list.
    Writes nothing when none of them was listed."""
    before = complete_cameras(array)
    drop = set(before) if serials is None else {str(s) for s in serials}
    done = [c for c in before if c not in drop]
    if done != before:
        array.update_attributes({COMPLETE_CAMERAS_ATTR: done})
    return done


def cameras_attrs(serials: Iterable[str] = ()) -> dict[str, Any]:
    """The ``complete_cameras`` attribute for ``attributes=`` of a new ``images``/``alpha`` array (no camera
    complete yet by default)."""
    return {COMPLETE_CAMERAS_ATTR: sorted(str(s) for s in serials)}


# ---------------------------------------------------------------------------------------------
# Consolidated metadata
# ---------------------------------------------------------------------------------------------


def consolidate(store: StoreLocation | Any) -> None:
    """Write the store's consolidated metadata into its root ``zarr.json`` (one read opens the whole tree).

    ``store``: a :class:`~nersemble_zarr.storage.location.StoreLocation` (a fresh zarr store is opened
    for it) or a writable zarr store / path that :func:`zarr.consolidate_metadata` accepts.
    """
    zstore = store.zarr_store() if isinstance(store, StoreLocation) else store
    with warnings.catch_warnings():
        # consolidated metadata is not in the v3 spec yet; it is part of our store schema (DESIGN §2),
        # zarr-python and xarray read it
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        zarr.consolidate_metadata(zstore)


__all__ = [
    "INCOMPLETE",
    "cameras_attrs",
    "complete_cameras",
    "consolidate",
    "has_complete_attr",
    "has_complete_cameras",
    "is_complete",
    "mark_cameras_complete",
    "mark_complete",
    "unmark",
    "unmark_cameras",
    "unmarked_attrs",
]
