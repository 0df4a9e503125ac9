"""Completion markers of a store, and the one ``consolidate``.

Writers (convert, downscale, flame, ``check --repair``) mark work done only after it is written, and
re-consolidate the metadata last, so readers that open the tree from the root's consolidated copy see
the markers. :func:`consolidate` is the only place that writes consolidated metadata.
"""

from __future__ import annotations

import warnings
from typing import Any

import zarr

from .location import StoreLocation


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
