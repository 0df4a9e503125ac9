"""Convert the SVFR benchmark (single-view face reconstruction): ``rgb.png`` images → one group per participant.

Raw (official layout, as downloaded): ``<raw>/svfr/<pid:03d>/<sequence>_<timestep>_<serial>/rgb.png`` (timestep
unpadded), 512 x 512 RGB. Store (:mod:`nersemble_zarr.core.schema`)::

    svfr/<pid:03d>/   attrs participant, n_images, n_official_images, source, source_bytes, complete
      images    (image, height, width, rgb) uint8   chunk = one image (one object), the store's tier, crc32c
      image     (image) str     coordinate: the download folder name, e.g. "EXP-4-lips_6_221501007"
      sequence  (image) str, timestep (image) int64, camera (image) str (the serial): the image keys

One unit per participant (all of its images, a few MB): the group is written whole by one task and marked
``complete`` by the driver afterwards (:func:`nersemble_zarr.pipelines.convert.execute_plan`), so a rerun skips a
complete participant and rewrites an incomplete one. Images are decoded as the official ``SVFRDataManager``
decodes them (``np.asarray(PIL.Image.open(path))``): the store holds exactly those bytes.

The plan is :func:`plan_svfr` (called by :func:`nersemble_zarr.pipelines.convert.plan_conversion` for ``svfr``);
the unit is :func:`convert_svfr_unit` (run by :func:`nersemble_zarr.pipelines.convert.run_task`). ``convert`` imports
this module lazily (this module builds on its ``Task``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..core import benchmark as bm
from ..core import schema
from ..core.benchmark import SVFR, SVFR_IMAGE_FILE, SVFR_IMAGE_SIZE, SVFRImageKey
from ..storage.markers import INCOMPLETE
from .convert import Task

__all__ = ["SVFRRawError", "SVFRTask", "convert_svfr_unit", "plan_svfr", "read_svfr_png", "svfr_keys_on_disk"]


def read_svfr_png(path: str | os.PathLike) -> np.ndarray:
    """One SVFR image as the official loader returns it: ``(512, 512, 3) uint8`` (``np.asarray(PIL.Image.open)``).

    Raises :class:`~nersemble_zarr.raw.RawFormatError` naming the file when it does not decode, or decodes to
    another shape or dtype than ``(512, 512, 3) uint8`` (an RGBA or grey PNG, another size).
    """
    from PIL import Image, UnidentifiedImageError

    from ..raw import RawFormatError

    try:
        with Image.open(path) as im:
            image = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise RawFormatError(str(path), f"not a readable PNG image ({type(e).__name__}: {e})") from None
    expected = (*SVFR_IMAGE_SIZE, 3)
    if image.shape != expected or image.dtype != np.uint8:
        raise RawFormatError(
            str(path), f"expected a {expected[1]}x{expected[0]} RGB image (shape {expected} uint8), "
                       f"found shape {image.shape} {image.dtype}"
        )
    return image


class SVFRRawError(ValueError):
    """A folder in ``svfr/<pid>/`` that is not one of the participant's official image keys, or lacks ``rgb.png``."""


def svfr_keys_on_disk(participant_dir: Path, participant: int) -> list[SVFRImageKey]:
    """The official image keys of ``participant`` whose ``rgb.png`` is in ``participant_dir``, in official order.

    Raises :class:`SVFRRawError` naming the first folder that is no official key of the participant (a
    misspelled or padded timestep, another participant's image) or has no ``rgb.png`` (an interrupted
    download leaves ``rgb.png.part``): converting around it would silently drop or mislabel an image.
    """
    official = {k.download_folder(): k for k in bm.svfr_image_keys(participant)}
    found: set[SVFRImageKey] = set()
    for entry in sorted(participant_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        key = official.get(entry.name)
        if key is None:
            raise SVFRRawError(
                f"{entry}: not an SVFR image folder of participant {participant:03d} (expected one of its "
                f"{len(official)} official keys, spelled <sequence>_<timestep>_<serial> with the timestep unpadded, "
                f"e.g. {next(iter(official))})"
            )
        if not (entry / SVFR_IMAGE_FILE).is_file():
            raise SVFRRawError(f"{entry}: has no {SVFR_IMAGE_FILE} (download it again)")
        found.add(key)
    return [k for k in bm.svfr_image_keys(participant) if k in found]


@dataclass(frozen=True)
class SVFRTask(Task):
    """A convert :class:`~nersemble_zarr.pipelines.convert.Task` for one SVFR participant, with the images' ``codec``
    (the store's tier). ``n_timesteps`` holds the number of images."""

    codec: schema.ImageCodec = schema.ImageCodec()


def convert_svfr_unit(task: Any, on_frames: Callable[[int], None]) -> int:
    """Write one participant's SVFR group (``task.target``) from its raw folder (``task.source``); returns the
    number of images. Every image is decoded and checked before anything is written."""
    participant = task.unit.participant
    folder = Path(task.source)
    try:
        keys = svfr_keys_on_disk(folder, participant)
    except SVFRRawError as e:
        from ..raw import RawFormatError

        raise RawFormatError(str(folder), str(e).split(": ", 1)[-1]) from None
    if not keys:
        from ..raw import RawFormatError

        raise RawFormatError(str(folder), "holds no SVFR image folder")
    paths = [folder / k.download_folder() / SVFR_IMAGE_FILE for k in keys]
    images = [read_svfr_png(p) for p in paths]
    height, width = SVFR_IMAGE_SIZE
    group = zarr.open_group(task.store.zarr_store(), path=task.target, mode="w", attributes=dict(INCOMPLETE))
    codecs = schema.chunk_codecs()
    group.create_array(
        schema.SVFR_IMAGE, data=schema.string_array([k.download_folder() for k in keys]),
        dimension_names=(schema.SVFR_IMAGE,), **codecs,
        attributes={"description": "image key as its download folder: <sequence>_<timestep>_<serial> (timestep unpadded)"},
    )
    group.create_array(
        schema.SVFR_SEQUENCE, data=schema.string_array([k.sequence for k in keys]),
        dimension_names=(schema.SVFR_IMAGE,), **codecs, attributes={"description": "sequence the image was taken from"},
    )
    group.create_array(
        schema.SVFR_TIMESTEP, data=np.array([k.timestep for k in keys], dtype=np.int64),
        dimension_names=(schema.SVFR_IMAGE,), **codecs, attributes={"description": "video frame index of the image"},
    )
    group.create_array(
        schema.SVFR_SERIAL, data=schema.string_array([k.serial for k in keys]),
        dimension_names=(schema.SVFR_IMAGE,), **codecs, attributes={"description": "camera serial of the image"},
    )
    codec: schema.ImageCodec = getattr(task, "codec", schema.ImageCodec())
    attrs = schema.image_attrs(codec, f"{SVFR}/{bm.participant_dir(participant)}/<key>/{SVFR_IMAGE_FILE}")
    attrs.pop(schema.COMPLETE_CAMERAS_ATTR, None)  # the group's `complete` marks the whole participant
    attrs["description"] = "SVFR input images exactly as the official loader decodes them (PIL, uint8 RGB)"
    array = group.create_array(
        schema.IMAGES, attributes=attrs, **schema.svfr_images_array_kwargs(len(keys), height, width, codec),
    )
    for i, image in enumerate(images):  # not counted as video frames on the progress display (a unit is)
        array[i] = image
    group.update_attributes({
        "participant": participant, "benchmark": SVFR, "n_images": len(keys),
        "n_official_images": len(bm.svfr_image_keys(participant)),
        "source": task.source_rel, "source_bytes": int(sum(p.stat().st_size for p in paths)),
    })
    return len(keys)


def plan_svfr(plan: Any, root: zarr.Group | None, codec: schema.ImageCodec) -> None:
    """Add the SVFR units of ``plan`` (a :class:`~nersemble_zarr.pipelines.convert.ConvertPlan`): one per
    selected participant whose folder is in the raw folder; a complete participant is skipped (unless
    ``overwrite``), one to (re)write is marked incomplete first."""
    from . import convert as cv
    from ..storage.markers import is_complete

    raw_root, opts = plan.raw, plan.options
    bench_dir = raw_root / SVFR
    cv._plan_group(plan, root, schema.benchmark_group(SVFR), {
        "description": "NeRSemble svfr benchmark: single-view face reconstruction input images",
    })
    present = cv.select_participants(raw_root, SVFR, opts.participants)
    height, width = SVFR_IMAGE_SIZE
    for p in present:
        unit = cv.Unit("svfr", SVFR, p)
        target = schema.svfr_participant_group(p)
        node = cv._node(root, target)
        complete = is_complete(node)
        if complete and not opts.overwrite:
            plan.results.append(cv.UnitResult(unit, "skipped"))
            continue
        folder = bench_dir / bm.participant_dir(p)
        try:
            n = len(svfr_keys_on_disk(folder, p))
        except SVFRRawError as e:
            plan.results.append(cv.UnitResult(unit, "failed", str(e)))
            continue
        plan.prepare.append(cv.MarkIncomplete(target, "rewritten (--overwrite)" if complete else "written by this run"))
        task = SVFRTask(
            unit=unit, store=plan.store, source=str(folder), target=target,
            source_rel=f"{SVFR}/{bm.participant_dir(p)}/", n_timesteps=n, height=height, width=width, codec=codec,
        )
        estimate = int(n * height * width * cv.BYTES_PER_PIXEL[codec.kind])
        plan.units.append(cv.PlannedUnit(task, 0, estimate))
