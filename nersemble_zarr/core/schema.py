"""The store layout: group paths, array names, dimension names, chunks/shards, codecs and attrs.

One Zarr v3 store holds both benchmarks (DESIGN §2)::

    <store>/                         attrs nersemble_zarr={format_version, created_by, source}
      <benchmark>/                   attrs metadata=<metadata.json as dict>
        <pid:03d>/                   no arrays of its own
          calibration/               world_2_cam (camera,4,4) f64, intrinsics (camera,3,3) f64,
                                     split (camera) str, camera (camera) str coord (all 16 cameras)
          <sequence>/                one xarray Dataset
            images (camera, timestep, height, width, rgb) uint8
            alpha  (camera, timestep, height, width)      uint8
            camera (camera) str coord, timestep (timestep) int64 coord
            pointclouds/             CSR: points (point, xyz) f32, colors (point, rgb) u8,
                                     normals (point, xyz) f32, offsets (cloud_offset) int64,
                                     cloud_timestep (cloud_timestep) int64 coord
            tracking_v1/, tracking_v2/   dim ``timestep`` (coord = the npz ``frames``, int64)
            flame_v1/, flame_v2/         vertices (timestep, vertex, xyz) f32, timestep coord int64

One name per concept: ``camera`` wherever cameras are indexed, ``timestep`` wherever time (video frame index)
is indexed, int64 for every timestep coordinate (format 2). Format-1 stores named them ``serial`` (calibration)
and ``frame`` (tracking, FLAME meshes; int32 tracking frames): :data:`FORMAT_1_NAMES`; readers map them in one
place (:func:`nersemble_zarr.read.resolver.current_names`).

Readers and writers use the names and helpers here and never spell a path or a dim themselves.
Every array carries ``dimension_names`` so xarray reads dims natively. Completion markers live in
attrs (``complete`` on groups/coordinate arrays, ``complete_cameras`` on images/alpha) and are
written last, by the writers' drivers only, through :mod:`nersemble_zarr.storage.markers`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .benchmark import participant_dir

#: Store format: 2 = one name per concept (``camera``, ``timestep``, int64 timesteps). Format-1 stores (the first
#: release) stay readable: see :data:`FORMAT_1_NAMES`.
FORMAT_VERSION = 2
#: Store formats this package reads.
READABLE_FORMAT_VERSIONS = (1, 2)
#: Root-group attribute holding ``{format_version, created_by, source}``.
ROOT_ATTR = "nersemble_zarr"
#: Benchmark-group attribute holding the benchmark's ``metadata.json`` as loaded.
METADATA_ATTR = "metadata"

# ---------------------------------------------------------------------------------------------
# Completion markers (resume). Written last, only after the unit's data is on the store.
# ---------------------------------------------------------------------------------------------

#: ``True`` on a group (calibration, pointclouds, tracking_vN) or the sequence's coordinate arrays
#: once everything in it is written.
COMPLETE_ATTR = "complete"
#: On ``images``/``alpha``: sorted list of camera serials whose frames are all written.
COMPLETE_CAMERAS_ATTR = "complete_cameras"

# ---------------------------------------------------------------------------------------------
# Group paths (``/``-separated, relative to the store root)
# ---------------------------------------------------------------------------------------------

CALIBRATION = "calibration"
POINTCLOUDS = "pointclouds"


def benchmark_group(benchmark: str) -> str:
    """``"nvs"`` / ``"mono_flame_avatar"``: the group of one benchmark."""
    return benchmark


def participant_group(benchmark: str, participant: int) -> str:
    """``"nvs/388"``: the group of one participant (holds only subgroups)."""
    return f"{benchmark}/{participant_dir(participant)}"


def calibration_group(benchmark: str, participant: int) -> str:
    """``"nvs/388/calibration"``: world_2_cam, intrinsics and split of all 16 cameras."""
    return f"{participant_group(benchmark, participant)}/{CALIBRATION}"


def sequence_group(benchmark: str, participant: int, sequence: str) -> str:
    """``"nvs/388/GLASSES"``: one sequence, readable as one xarray Dataset."""
    return f"{participant_group(benchmark, participant)}/{sequence}"


def pointclouds_group(benchmark: str, participant: int, sequence: str) -> str:
    """``"nvs/388/GLASSES/pointclouds"``: the sequence's point clouds in CSR layout."""
    return f"{sequence_group(benchmark, participant, sequence)}/{POINTCLOUDS}"


def tracking_group_name(version: int) -> str:
    """``"tracking_v1"`` / ``"tracking_v2"``."""
    if version not in (1, 2):
        raise ValueError(f"tracking version must be 1 or 2, not {version!r}")
    return f"tracking_v{version}"


def tracking_group(benchmark: str, participant: int, sequence: str, version: int) -> str:
    """``"mono_flame_avatar/393/EXP-1-head/tracking_v2"``: one FLAME tracking version."""
    return f"{sequence_group(benchmark, participant, sequence)}/{tracking_group_name(version)}"


#: The tracking version submissions must use.
CURRENT_TRACKING_VERSION = 2


# Downscaled levels (written by ``nersemble-zarr downscale``): child group ``level_<f>`` of a sequence
# with images (camera, timestep, height_<f>, width_<f>, rgb), alpha (camera, timestep, height_<f>,
# width_<f>) and intrinsics (camera, k_row, k_col); own height/width dim names because DataTree
# aligns a child's dims with its parent's. Group attrs: factor, scale, complete (written last).
def level_group_name(factor: int) -> str:
    """``"level_2"``: the group of the 1/``factor`` downscaled level of a sequence."""
    if int(factor) != factor or factor < 2:
        raise ValueError(f"a downscale factor is an integer >= 2, not {factor!r}")
    return f"level_{int(factor)}"


def level_dims(factor: int) -> tuple[str, str]:
    """``("height_2", "width_2")``: the frame dims of level ``factor``."""
    return f"height_{int(factor)}", f"width_{int(factor)}"


# FLAME meshes (written by ``nersemble-zarr flame``): child group ``flame_v<version>`` of a sequence with
# vertices (timestep, vertex, xyz) float32 with the tracking's timestep coordinate, and the model's triangles
# once per benchmark.
FLAME_FACES = "flame_faces"
FLAME_VERTICES = "vertices"


def flame_group_name(version: int) -> str:
    """``"flame_v2"``: the group of meshes evaluated from ``tracking_v<version>``."""
    tracking_group_name(version)  # validates the version
    return f"flame_v{version}"


def flame_group(benchmark: str, participant: int, sequence: str, version: int) -> str:
    """``"mono_flame_avatar/393/FREE/flame_v2"``: evaluated vertices of one sequence."""
    return f"{sequence_group(benchmark, participant, sequence)}/{flame_group_name(version)}"


def faces_array_path(benchmark: str) -> str:
    """``"mono_flame_avatar/flame_faces"``: the model's triangles, once per benchmark."""
    return f"{benchmark_group(benchmark)}/{FLAME_FACES}"


# ---------------------------------------------------------------------------------------------
# Array names and dimension names
# ---------------------------------------------------------------------------------------------

IMAGES = "images"
ALPHA = "alpha"
CAMERA = "camera"
TIMESTEP = "timestep"

IMAGES_DIMS = (CAMERA, TIMESTEP, "height", "width", "rgb")
ALPHA_DIMS = (CAMERA, TIMESTEP, "height", "width")

# calibration: all 16 cameras, dim and coordinate ``camera`` (the sequences' cameras are a subset of them)
WORLD_2_CAM = "world_2_cam"
INTRINSICS = "intrinsics"
SPLIT = "split"
WORLD_2_CAM_DIMS = (CAMERA, "w2c_row", "w2c_col")
INTRINSICS_DIMS = (CAMERA, "k_row", "k_col")

# point clouds (CSR: cloud i is points[offsets[i]:offsets[i+1]], at timestep cloud_timestep[i])
POINTS = "points"
COLORS = "colors"
NORMALS = "normals"
OFFSETS = "offsets"
CLOUD_TIMESTEP = "cloud_timestep"
POINT = "point"
CLOUD_OFFSET = "cloud_offset"
#: Points per chunk of the CSR arrays (``points``, ``normals``, ``colors``; 262144 points = 3 MiB of xyz) and per
#: shard (None: unsharded), chosen by measurement (benchmarks/pointclouds.py, clouds of 300k and 1M points): zarr
#: reads each inner chunk of a shard as its own byte range, so 64Ki/128Ki/256Ki-point chunks in 1Mi-point shards
#: read one timestep 1.3-2.5x slower than unsharded 256Ki-point chunks (objects of ~1-3 MB, ~4 per 1M-point cloud
#: and array). A cloud starts anywhere in a chunk: a read decodes at most one chunk more on each side.
POINT_CHUNK = 1 << 18
POINT_SHARD: int | None = None
#: Compressor per CSR array (``False``: none, the chunk still carries its crc32c), chosen by measurement
#: (benchmarks/pointclouds.py, 300k- and 1M-point clouds): byte-shuffle + lz4 stores them only 1.08x smaller than raw
#: (zstd-3 1.09x, bit-shuffle + zstd-1 1.15x, delta on the float bits larger) but reads a 300k-point timestep ~1.6x
#: slower than uncompressed chunks (zstd 3-4x): 2.4x the raw ``.pcd`` read against 1.4x uncompressed, over the 2x goal.
POINTCLOUD_COMPRESSORS: dict[str, Any] = {POINTS: False, NORMALS: False, COLORS: False}

# FLAME tracking: dim ``timestep``, coordinate ``timestep`` = the npz ``frames`` (int64; kept float only when the
# npz holds non-integer frames such as NaN)
#: name -> (dims, dtype); ``shape``/``scale`` are stored without the npz's leading 1-axes.
TRACKING_VARIABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "expression": ((TIMESTEP, "expression_coeff"), "float32"),
    "rotation": ((TIMESTEP, "axis"), "float32"),
    "rotation_matrices": ((TIMESTEP, "row", "col"), "float32"),
    "translation": ((TIMESTEP, "axis"), "float32"),
    "jaw": ((TIMESTEP, "axis"), "float32"),
    "neck": ((TIMESTEP, "axis"), "float32"),
    "eyes": ((TIMESTEP, "eye_param"), "float32"),
    "shape": (("shape_coeff",), "float32"),
    "scale": ((), "float32"),
}
#: FLAME meshes ``flame_v<N>/vertices``.
FLAME_VERTICES_DIMS = (TIMESTEP, "vertex", "xyz")
#: The dim xarray readers give tracking (and FLAME meshes) whose timesteps are not the video's: a Dataset (and a
#: DataTree child) holds one ``timestep`` index, so tracking of other frames keeps this dim of its own there.
TRACKED_FRAME = "frame"

#: Format-1 name -> current name, of dims and of the coordinate arrays named like them: calibration ``serial``
#: (now ``camera``), tracking / FLAME mesh ``frame`` (now ``timestep``). Mapped on read in one place
#: (:func:`nersemble_zarr.read.resolver.current_names`, :func:`~nersemble_zarr.read.resolver.stored_name`).
FORMAT_1_NAMES: dict[str, str] = {"serial": CAMERA, "frame": TIMESTEP}

# ---------------------------------------------------------------------------------------------
# Chunking and codecs
# ---------------------------------------------------------------------------------------------

#: Frames of one camera per shard. Measured (benchmarks/codecs.py, 1604×1100): write and single-frame
#: read times do not depend on it (S = 1/8/32/64: ~11–14 ms write, ~3 ms read per frame); 32 cuts the
#: object count 32× (3 objects per 100 frames) while a task's shard buffer stays at 170 MB.
DEFAULT_SHARD_TIMESTEPS = 32

#: Image storage tiers (``convert --tier``): ``lossless`` (blosc-lz4, fastest), ``compact`` (JPEG-XL lossless
#: effort 1, ~2-3x smaller, bit-exact too), ``jpeg`` (lossy). Measured in benchmarks/tiers.py.
ImageCodecKind = Literal["lossless", "compact", "jpeg"]
IMAGE_CODEC_KINDS: tuple[str, ...] = ("lossless", "compact", "jpeg")
#: Lossless compressor of image frames, chosen by measurement (benchmarks/codecs.py on 1604×1100
#: frames of an H.264 decode; benchmarks/convert.py): blosc-lz4 stores frames 1.9× smaller than raw
#: uint8 (zstd -1: 2.0×, zstd 1: 2.2×, zstd 3: 2.4×) but encodes in ~2 ms (zstd -1 ~6, zstd 1 ~11,
#: zstd 3 ~20 ms) and reads a frame in ~2 ms (zstd 1 ~5 ms): converting stays decode-bound (a
#: video unit ran 1.3–2× faster than with zstd -1 on 2 cores) and training reads are fastest.
LOSSLESS_COMPRESSOR: dict[str, Any] = {
    "name": "blosc",
    "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "noshuffle", "typesize": 1, "blocksize": 0},
}
#: Alpha maps are mostly 0/255 runs: zstd 1 makes them ~100× smaller than raw at ~1–3 ms per read.
ALPHA_COMPRESSOR: dict[str, Any] = {"name": "zstd", "configuration": {"level": 1, "checksum": False}}


#: On-disk name of the JPEG array→bytes codec (:class:`nersemble_zarr.storage.codecs.JpegCodec`); the same as
#: imagecodecs' numcodecs codec so other imagecodecs-aware readers can decode it.
JPEG_CODEC_NAME = "imagecodecs_jpeg"
#: On-disk name of the JPEG-XL array→bytes codec (:class:`nersemble_zarr.storage.codecs.JpegXlCodec`) of the
#: ``compact`` tier; the same name and configuration keys as imagecodecs' numcodecs codec.
JPEGXL_CODEC_NAME = "imagecodecs_jpegxl"
#: JPEG-XL lossless effort of the ``compact`` tier: effort 1 encodes ~40x faster than effort 3 and stores
#: frames smaller (H.264-decoded frames; benchmarks/tiers.py).
COMPACT_EFFORT = 1


@dataclass(frozen=True)
class ImageCodec:
    """How the ``images`` array's frames are encoded.

    ``kind="lossless"``: bytes + :data:`LOSSLESS_COMPRESSOR` — bit-exact to the official decode.
    ``kind="compact"``: JPEG-XL lossless at effort :data:`COMPACT_EFFORT` (the array→bytes codec
    :class:`nersemble_zarr.storage.codecs.JpegXlCodec`) — bit-exact too, smaller, slower to read.
    ``kind="jpeg"``: the JPEG array→bytes codec of :mod:`nersemble_zarr.storage.codecs` at ``quality`` (1–100).
    """

    kind: ImageCodecKind = "lossless"
    quality: int = 95

    def __post_init__(self) -> None:
        if self.kind not in IMAGE_CODEC_KINDS:
            raise ValueError(f"image codec (tier) must be one of {', '.join(IMAGE_CODEC_KINDS)}, not {self.kind!r}")
        if not (1 <= int(self.quality) <= 100):
            raise ValueError(f"JPEG quality must be in 1..100, not {self.quality!r}")

    @property
    def lossless(self) -> bool:
        """Whether frames read back bit-exact to the official decode (``lossless`` and ``compact``)."""
        return self.kind != "jpeg"

    @property
    def label(self) -> str:
        """``"lossless"``, ``"compact"``, ``"jpeg q95"``: the tier as plans and errors name it."""
        return f"jpeg q{int(self.quality)}" if self.kind == "jpeg" else self.kind

    def array_kwargs(self) -> dict[str, Any]:
        """``serializer``/``compressors`` arguments for :func:`zarr.create_array` (inner chunks)."""
        if self.kind == "jpeg":  # by name: zarr resolves it to nersemble_zarr.storage.codecs.JpegCodec
            return {"serializer": {"name": JPEG_CODEC_NAME, "configuration": {"level": int(self.quality)}}, **chunk_codecs(False)}
        if self.kind == "compact":  # by name: nersemble_zarr.storage.codecs.JpegXlCodec
            return {
                "serializer": {"name": JPEGXL_CODEC_NAME, "configuration": {"effort": COMPACT_EFFORT, "lossless": True}},
                **chunk_codecs(False),
            }
        return {"serializer": "auto", **chunk_codecs(_lossless_compressor())}

    def to_attrs(self) -> dict[str, Any]:
        """JSON description stored in the array's ``codec`` attribute and shown by ``info``."""
        if self.kind == "jpeg":
            return {"kind": "jpeg", "quality": int(self.quality), "lossless": False}
        if self.kind == "compact":
            return {"kind": "compact", "codec": "JPEG-XL lossless", "effort": COMPACT_EFFORT, "lossless": True}
        return {"kind": "lossless", "compressor": LOSSLESS_COMPRESSOR, "lossless": True}

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> "ImageCodec":
        """Inverse of :meth:`to_attrs`."""
        if attrs.get("kind") == "jpeg":
            return cls("jpeg", int(attrs.get("quality", 95)))
        if attrs.get("kind") == "compact":
            return cls("compact")
        return cls("lossless")


def _lossless_compressor(spec: dict[str, Any] | None = None) -> Any:
    from zarr.codecs import BloscCodec, ZstdCodec

    spec = spec or LOSSLESS_COMPRESSOR
    cls = {"blosc": BloscCodec, "zstd": ZstdCodec}[spec["name"]]
    return cls(**spec["configuration"])


#: Compressor of every array that names none (tracking, calibration, coordinates, meshes): zarr 3.1's own
#: default for numeric and string data, spelled out so the chain does not change with zarr's defaults.
DEFAULT_COMPRESSOR: dict[str, Any] = {"name": "zstd", "configuration": {"level": 0, "checksum": False}}


def compressor_chain(compressor: Any = None) -> tuple[Any, ...]:
    """The bytes→bytes codecs of every array of the store: ``compressor`` then zarr v3's ``crc32c``.

    ``compressor``: a zarr ``BytesBytesCodec``, a spec dict like :data:`LOSSLESS_COMPRESSOR`, ``None`` for
    :data:`DEFAULT_COMPRESSOR`, or ``False`` for none (an image serializer such as JPEG already compresses).
    The checksum comes last, over the compressed bytes, so a flipped bit or a truncated chunk fails the
    checksum at read (:class:`~nersemble_zarr.core.errors.CorruptObjectError`) instead of decoding to wrong values.
    In a sharded array these are the inner-chunk codecs; the shard index has its own crc32c.
    """
    from zarr.codecs import Crc32cCodec

    if compressor is False:
        return (Crc32cCodec(),)
    if compressor is None or isinstance(compressor, dict):
        compressor = _lossless_compressor(compressor or DEFAULT_COMPRESSOR)
    return (compressor, Crc32cCodec())


#: Runtime config of every array a writer creates: store every chunk, even one equal to the fill value, so a
#: chunk absent from the store always means a lost object (the integrity guard raises on it, never fills).
WRITE_CONFIG: dict[str, Any] = {"write_empty_chunks": True}


def chunk_codecs(compressor: Any = None) -> dict[str, Any]:
    """``compressors=`` (:func:`compressor_chain`) and ``config=`` (:data:`WRITE_CONFIG`) for
    :func:`zarr.create_array`: every ``create_array`` of this package passes ``**chunk_codecs(...)``."""
    return {"compressors": compressor_chain(compressor), "config": dict(WRITE_CONFIG)}


def images_array_kwargs(
    n_cameras: int, n_timesteps: int, height: int, width: int, codec: ImageCodec,
    shard_timesteps: int = DEFAULT_SHARD_TIMESTEPS,
) -> dict[str, Any]:
    """:func:`zarr.create_array` kwargs of ``images`` ``(camera, timestep, H, W, 3) uint8``.

    Inner chunk = one frame ``(1, 1, H, W, 3)``; shard = one camera × ``shard_timesteps`` frames.
    """
    s = max(1, min(shard_timesteps, n_timesteps))
    return {
        "shape": (n_cameras, n_timesteps, height, width, 3),
        "dtype": "uint8",
        "chunks": (1, 1, height, width, 3),
        "shards": (1, s, height, width, 3),
        "fill_value": 0,
        "dimension_names": IMAGES_DIMS,
        **codec.array_kwargs(),
    }


def alpha_array_kwargs(
    n_cameras: int, n_timesteps: int, height: int, width: int, shard_timesteps: int = DEFAULT_SHARD_TIMESTEPS,
) -> dict[str, Any]:
    """:func:`zarr.create_array` kwargs of ``alpha`` ``(camera, timestep, H, W) uint8``, always lossless."""
    s = max(1, min(shard_timesteps, n_timesteps))
    return {
        "shape": (n_cameras, n_timesteps, height, width),
        "dtype": "uint8",
        "chunks": (1, 1, height, width),
        "shards": (1, s, height, width),
        "fill_value": 0,
        "dimension_names": ALPHA_DIMS,
        **chunk_codecs(ALPHA_COMPRESSOR),
    }


def shard_runs(n_timesteps: int, shard_timesteps: int) -> list[tuple[int, int]]:
    """``[(t0, t1), ...]`` timestep ranges of the shards along ``timestep`` (last one may be short)."""
    s = max(1, min(shard_timesteps, n_timesteps))
    return [(t0, min(t0 + s, n_timesteps)) for t0 in range(0, n_timesteps, s)]


def image_attrs(codec: ImageCodec, source: str) -> dict[str, Any]:
    """Attrs of ``images``: value range, colour order, codec, where frames came from."""
    return {
        "description": "RGB frames exactly as the official loader decodes them (ffmpeg rgb24)",
        "units": "0-255",
        "channel_order": "RGB",
        "codec": codec.to_attrs(),
        "source": source,
        COMPLETE_CAMERAS_ATTR: [],
    }


def alpha_attrs(source: str) -> dict[str, Any]:
    """Attrs of ``alpha``: first channel of the decoded alpha-map video, 0 = background."""
    return {
        "description": "alpha maps: first channel of the decoded alpha video, as the official loader takes it",
        "units": "0-255",
        "codec": {"kind": "lossless", "compressor": ALPHA_COMPRESSOR, "lossless": True},
        "source": source,
        COMPLETE_CAMERAS_ATTR: [],
    }


CALIBRATION_ATTRS: dict[str, dict[str, Any]] = {
    WORLD_2_CAM: {"description": "world to camera transform", "convention": "OpenCV", "units": "metres"},
    INTRINSICS: {"description": "camera matrix K for the full-resolution published frames", "units": "pixels"},
    SPLIT: {"description": "'train' (published video) or 'hold_out' (evaluated, no video)"},
    CAMERA: {"description": "camera serial number"},
}

POINTCLOUD_ATTRS: dict[str, dict[str, Any]] = {
    POINTS: {"description": "xyz of all clouds, concatenated (CSR)", "units": "metres"},
    COLORS: {"description": "RGB of each point", "units": "0-255"},
    NORMALS: {"description": "unit normal of each point"},
    OFFSETS: {"description": "cloud i is rows offsets[i]:offsets[i+1] of points/colors/normals"},
    CLOUD_TIMESTEP: {"description": "timestep (video frame index) of each cloud"},
}


def string_array(values: list[str] | tuple[str, ...]) -> np.ndarray:
    """Values for a variable-length UTF-8 string array (Zarr v3 ``string`` dtype, no unstable-spec warning)."""
    return np.array([str(v) for v in values], dtype=np.dtypes.StringDType())


# ---------------------------------------------------------------------------------------------
# SVFR (single-view face reconstruction): still images, one group per participant (one xarray Dataset)
#   svfr/<pid:03d>/  images (image, height, width, rgb) uint8: chunk = one image, one object per image (391 in
#                    all: no sharding needed, and a damaged object loses one image);
#                    image (image) str coord = the download folder name "<sequence>_<timestep>_<serial>";
#                    sequence, camera (image) str (the serial) and timestep (image) int64: the image keys
#                    (`camera` as everywhere in format 2; readers map a format-1 `serial` to it).
# ---------------------------------------------------------------------------------------------

SVFR_IMAGE = "image"
SVFR_SEQUENCE = "sequence"
SVFR_TIMESTEP = TIMESTEP
SVFR_SERIAL = CAMERA
SVFR_IMAGES_DIMS = (SVFR_IMAGE, "height", "width", "rgb")


def svfr_participant_group(participant: int) -> str:
    """``"svfr/017"``: one participant's SVFR images and their keys."""
    return participant_group("svfr", participant)


def svfr_images_array_kwargs(n_images: int, height: int, width: int, codec: ImageCodec) -> dict[str, Any]:
    """:func:`zarr.create_array` kwargs of SVFR ``images`` ``(image, H, W, 3) uint8``: chunk = one image (one
    object; not sharded), ``codec`` as for video frames (crc32c last)."""
    return {
        "shape": (int(n_images), height, width, 3),
        "dtype": "uint8",
        "chunks": (1, height, width, 3),
        "fill_value": 0,
        "dimension_names": SVFR_IMAGES_DIMS,
        **codec.array_kwargs(),
    }
