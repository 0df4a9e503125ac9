"""nersemble-zarr: the NeRSemble benchmarks as chunked Zarr v3 stores.

Public API (imported lazily so ``import nersemble_zarr`` stays light):
``open_store``, ``open_sequence``, ``NVSDataManager``, ``MonoFlameAvatarDataManager``,
``FlameModel``, ``FlameProvider``, ``SubmissionWriter``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from . import codecs  # noqa: F401  registers the JPEG codec

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "convert_benchmark": "nersemble_zarr.convert",
    "verify_store": "nersemble_zarr.verify",
    "store_info": "nersemble_zarr.info",
    "open_store": "nersemble_zarr.store",
    "open_sequence": "nersemble_zarr.store",
    "NVSDataManager": "nersemble_zarr.data_manager",
    "MonoFlameAvatarDataManager": "nersemble_zarr.data_manager",
    "FrameDataset": "nersemble_zarr.torch_dataset",
    "FlameModel": "nersemble_zarr.flame",
    "FlameProvider": "nersemble_zarr.flame",
    "SubmissionWriter": "nersemble_zarr.submission",
    "write_submission": "nersemble_zarr.submission",
    "validate_submission": "nersemble_zarr.validate",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nersemble_zarr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
