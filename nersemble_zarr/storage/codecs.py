"""A JPEG array→bytes codec for Zarr v3 around imagecodecs.

Zarr 3 image codecs are serializers (``serializer=``), not ``compressors=``. The codec is
registered through zarr's ``zarr.codecs`` entry-point group (``pyproject.toml``): any process in
an environment where nersemble-zarr is installed — dask workers, plain ``zarr`` or
``xr.open_datatree`` without ``import nersemble_zarr`` — finds ``imagecodecs_jpeg`` when it first
meets it in a store's metadata. Importing this module also registers it (``register_codec``), for
a source checkout used without installing. The on-disk name and configuration match imagecodecs'
numcodecs codec (``imagecodecs_jpeg`` with ``level``) so other imagecodecs-aware readers can
decode it too.

A chunk is one image: its shape must squeeze to ``(H, W)`` or ``(H, W, C)`` with C in {1, 3}
(the store's inner chunk is ``(1, 1, H, W, 3)``); dtype uint8.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.core.common import JSON, parse_named_configuration
from zarr.registry import register_codec

from ..core.schema import JPEG_CODEC_NAME

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec

_SUBSAMPLING = ("420", "422", "444")


def _image_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The ``(H, W)`` / ``(H, W, C)`` image inside a chunk shape with leading singleton axes."""
    dims = list(shape)
    while len(dims) > 3 and dims[0] == 1:
        dims.pop(0)
    if len(dims) == 3 and dims[-1] not in (1, 3) and dims[0] == 1:
        dims.pop(0)
    if len(dims) == 2 or (len(dims) == 3 and dims[-1] in (1, 3)):
        return tuple(dims)
    raise ValueError(
        f"JPEG chunks must hold one (H, W) or (H, W, 1|3) image after leading 1-axes, found chunk shape {shape}"
    )


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """JPEG (libjpeg-turbo via imagecodecs) for uint8 image chunks.

    ``level``: quality 1–100 (95 ≈ 45 dB PSNR on NeRSemble frames, ~7× smaller than zstd).
    ``subsampling``: chroma subsampling ``"420"`` (libjpeg default) | ``"422"`` | ``"444"``.
    """

    is_fixed_size = False

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

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        native = dtype.to_native_dtype() if hasattr(dtype, "to_native_dtype") else np.dtype(dtype)
        if np.dtype(native) != np.uint8:
            raise ValueError(f"the JPEG codec stores uint8 images, found dtype {native}")

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        import imagecodecs

        image = np.asarray(chunk_array.as_numpy_array())
        image = np.ascontiguousarray(image.reshape(_image_shape(image.shape)))
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[:, :, 0]
        kwargs: dict[str, Any] = {"level": self.level}
        if image.ndim == 3:
            kwargs["subsampling"] = self.subsampling
        encoded = imagecodecs.jpeg8_encode(image, **kwargs)
        return chunk_spec.prototype.buffer.from_bytes(encoded)

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        import imagecodecs

        decoded = imagecodecs.jpeg8_decode(chunk_bytes.to_bytes())
        if decoded.size != int(np.prod(chunk_spec.shape)):
            raise ValueError(
                f"JPEG chunk decodes to shape {decoded.shape}, expected {int(np.prod(chunk_spec.shape))} values "
                f"for chunk shape {chunk_spec.shape}"
            )
        return chunk_spec.prototype.nd_buffer.from_numpy_array(decoded.reshape(chunk_spec.shape))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return self._encode_sync(chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return self._decode_sync(chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, _chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("JPEG output size is data dependent")


register_codec(JPEG_CODEC_NAME, JpegCodec)
