"""nersemble-zarr: the NeRSemble benchmarks as chunked Zarr v3 stores.

Public API (imported lazily so ``import nersemble_zarr`` stays light):
``open_store``, ``open_sequence``, ``NVSDataManager``, ``MonoFlameAvatarDataManager``,
``FlameModel``, ``FlameProvider``, ``SubmissionWriter``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from .storage import codecs  # noqa: F401  registers the JPEG codec

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "convert_benchmark": "nersemble_zarr.pipelines.convert",
    "verify_store": "nersemble_zarr.pipelines.verify",
    "store_info": "nersemble_zarr.pipelines.info",
    "open_store": "nersemble_zarr.read.store",
    "open_sequence": "nersemble_zarr.read.store",
    "NVSDataManager": "nersemble_zarr.read.data_manager",
    "SVFRDataManager": "nersemble_zarr.read.svfr",
    "MonoFlameAvatarDataManager": "nersemble_zarr.read.data_manager",
    "FrameDataset": "nersemble_zarr.read.torch_dataset",
    "FlameModel": "nersemble_zarr.flame.model",
    "FlameProvider": "nersemble_zarr.flame.provider",
    "SubmissionWriter": "nersemble_zarr.submission.writer",
    "write_submission": "nersemble_zarr.submission.writer",
    "SVFRSubmissionDataWriter": "nersemble_zarr.submission.svfr",
    "write_svfr_submission": "nersemble_zarr.submission.svfr",
    "validate_submission": "nersemble_zarr.submission.validate",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nersemble_zarr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
