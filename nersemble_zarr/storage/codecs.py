"""Image array→bytes codecs for Zarr v3 around imagecodecs: JPEG (tier ``jpeg``) and JPEG-XL lossless (tier ``compact``).

Zarr 3 image codecs are serializers (``serializer=``), not ``compressors=``. The codec is
registered through zarr's ``zarr.codecs`` entry-point group (``pyproject.toml``): any process in
an environment where nersemble-zarr is installed — dask workers, plain ``zarr`` or
``xr.open_datatree`` without ``import nersemble_zarr`` — finds ``imagecodecs_jpeg`` when it first
meets it in a store's metadata (likewise ``imagecodecs_jpegxl``). Importing this module also registers them (``register_codec``), for
a source checkout used without installing. The on-disk name and configuration match imagecodecs'
numcodecs codec (``imagecodecs_jpeg`` with ``level``) so other imagecodecs-aware readers can
decode it too.

A chunk is one image: its shape must squeeze to ``(H, W)`` or ``(H, W, C)`` with C in {1, 3}
(the store's inner chunk is ``(1, 1, H, W, 3)``); dtype uint8.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.core.common import JSON, parse_named_configuration
from zarr.registry import register_codec

from ..core.schema import COMPACT_EFFORT, JPEG_CODEC_NAME, JPEGXL_CODEC_NAME

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec

_SUBSAMPLING = ("420", "422", "444")


def _image_shape(shape: tuple[int, ...], codec: str = "JPEG") -> tuple[int, ...]:
    """The ``(H, W)`` / ``(H, W, C)`` image inside a chunk shape with leading singleton axes."""
    dims = list(shape)
    while len(dims) > 3 and dims[0] == 1:
        dims.pop(0)
    if len(dims) == 3 and dims[-1] not in (1, 3) and dims[0] == 1:
        dims.pop(0)
    if len(dims) == 2 or (len(dims) == 3 and dims[-1] in (1, 3)):
        return tuple(dims)
    raise ValueError(
        f"{codec} chunks must hold one (H, W) or (H, W, 1|3) image after leading 1-axes, found chunk shape {shape}"
    )


class _ImageCodec(ArrayBytesCodec):
    """What the image codecs share: one uint8 image per chunk (:func:`_image_shape`), a decoded size check, and
    zarr's sync/async plumbing. A subclass sets ``label`` and implements ``_encode_image``/``_decode_image``."""

    is_fixed_size = False
    label = "image"

    def _encode_image(self, image: np.ndarray) -> bytes:
        raise NotImplementedError

    def _decode_image(self, data: bytes) -> np.ndarray:
        raise NotImplementedError

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        native = dtype.to_native_dtype() if hasattr(dtype, "to_native_dtype") else np.dtype(dtype)
        if np.dtype(native) != np.uint8:
            raise ValueError(f"the {self.label} codec stores uint8 images, found dtype {native}")

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        image = np.asarray(chunk_array.as_numpy_array())
        image = np.ascontiguousarray(image.reshape(_image_shape(image.shape, self.label)))
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[:, :, 0]
        return chunk_spec.prototype.buffer.from_bytes(self._encode_image(image))

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        decoded = self._decode_image(chunk_bytes.to_bytes())
        if decoded.size != int(np.prod(chunk_spec.shape)):
            raise ValueError(
                f"{self.label} chunk decodes to shape {decoded.shape}, expected {int(np.prod(chunk_spec.shape))} "
                f"values for chunk shape {chunk_spec.shape}"
            )
        return chunk_spec.prototype.nd_buffer.from_numpy_array(decoded.reshape(chunk_spec.shape))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return self._encode_sync(chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return self._decode_sync(chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, _chunk_spec: ArraySpec) -> int:
        raise NotImplementedError(f"{self.label} output size is data dependent")


@dataclass(frozen=True)
class JpegCodec(_ImageCodec):
    """JPEG (libjpeg-turbo via imagecodecs) for uint8 image chunks.

    ``level``: quality 1–100 (95 ≈ 45 dB PSNR on NeRSemble frames, ~7× smaller than zstd).
    ``subsampling``: chroma subsampling ``"420"`` (libjpeg default) | ``"422"`` | ``"444"``.
    """

    label = "JPEG"

    level: int = 95
    subsampling: str = "420"

    def __init__(self, *, level: int = 95, subsampling: str = "420") -> None:
        level = int(level)
        if not 1 <= level <= 100:
            raise ValueError(f"JPEG level (quality) must be in 1..100, not {level}")
        if subsampling not in _SUBSAMPLING:
            raise ValueError(f"JPEG subsampling must be one of {', '.join(_SUBSAMPLING)}, not {subsampling!r}")
        object.__setattr__(self, "level", level)
        object.__setattr__(self, "subsampling", subsampling)

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        _, cfg = parse_named_configuration(data, JPEG_CODEC_NAME, require_configuration=False)
        cfg = dict(cfg or {})
        return cls(level=int(cfg.get("level", 95)), subsampling=str(cfg.get("subsampling", "420")))

    def to_dict(self) -> dict[str, JSON]:
        return {"name": JPEG_CODEC_NAME, "configuration": {"level": self.level, "subsampling": self.subsampling}}

    def _encode_image(self, image: np.ndarray) -> bytes:
        import imagecodecs

        kwargs: dict[str, Any] = {"level": self.level}
        if image.ndim == 3:
            kwargs["subsampling"] = self.subsampling
        return imagecodecs.jpeg8_encode(image, **kwargs)

    def _decode_image(self, data: bytes) -> np.ndarray:
        import imagecodecs

        return imagecodecs.jpeg8_decode(data)


register_codec(JPEG_CODEC_NAME, JpegCodec)


#: Environment variable: threads one JPEG-XL frame decodes with (default :func:`decode_threads`'s); read at each
#: decode, so dask workers and DataLoader workers started with it set follow it.
DECODE_THREADS_ENV = "NERSEMBLE_ZARR_DECODE_THREADS"


def decode_threads() -> int:
    """Threads a JPEG-XL frame decodes with: ``$NERSEMBLE_ZARR_DECODE_THREADS`` if set, else one per core, at
    most 4. zarr decodes the chunks of one read one after another, so the threads do not multiply. On the shared
    2-core machine of ``benchmarks/tiers.py`` the default (2) and 1 read a full-resolution frame in the same time
    (within 3%); set 1 when many DataLoader workers read at once."""
    value = os.environ.get(DECODE_THREADS_ENV, "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise ValueError(f"${DECODE_THREADS_ENV} must be a positive integer, not {value!r}") from None
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class JpegXlCodec(_ImageCodec):
    """JPEG-XL (libjxl via imagecodecs) for uint8 image chunks; lossless by default (the ``compact`` tier).

    ``effort``: encoder effort 1–9 (1: ~4 ms per full-resolution frame and the smallest output on H.264-decoded
    frames; 3: ~40x slower and larger; benchmarks/tiers.py). ``lossless``: bit-exact round trip (only lossless
    is offered). Decoding uses :func:`decode_threads` threads.
    """

    label = "JPEG-XL"

    effort: int = COMPACT_EFFORT
    lossless: bool = True

    def __init__(self, *, effort: int = COMPACT_EFFORT, lossless: bool = True) -> None:
        effort = int(effort)
        if not 1 <= effort <= 9:
            raise ValueError(f"JPEG-XL effort must be in 1..9, not {effort}")
        if lossless is not True:
            raise ValueError("the JPEG-XL codec of nersemble-zarr stores frames lossless only (lossless=True)")
        object.__setattr__(self, "effort", effort)
        object.__setattr__(self, "lossless", True)

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        _, cfg = parse_named_configuration(data, JPEGXL_CODEC_NAME, require_configuration=False)
        cfg = dict(cfg or {})
        return cls(effort=int(cfg.get("effort", COMPACT_EFFORT)), lossless=bool(cfg.get("lossless", True)))

    def to_dict(self) -> dict[str, JSON]:
        return {"name": JPEGXL_CODEC_NAME, "configuration": {"effort": self.effort, "lossless": self.lossless}}

    def _encode_image(self, image: np.ndarray) -> bytes:
        import imagecodecs

        return imagecodecs.jpegxl_encode(image, lossless=True, effort=self.effort)

    def _decode_image(self, data: bytes) -> np.ndarray:
        import imagecodecs

        return imagecodecs.jpegxl_decode(data, numthreads=decode_threads())


register_codec(JPEGXL_CODEC_NAME, JpegXlCodec)
