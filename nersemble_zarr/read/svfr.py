"""Drop-in replacement of the official ``SVFRDataManager`` (single-view face reconstruction), backed by the store.

Code written for ``nersemble_benchmark.data.benchmark_data`` switches by changing one import::

    from nersemble_zarr import SVFRDataManager       # was: from nersemble_benchmark... import SVFRDataManager
    dm = SVFRDataManager("nersemble.zarr", 17)       # was: SVFRDataManager(benchmark_folder, 17)
    for key in dm.list_image_keys():                 # ImageKey(sequence_name, timestep, serial), sorted by folder
        image = dm.load_image(key)                   # (512, 512, 3) uint8, bit-exact to the official PIL decode

Same method names, arguments and return types as the official class: ``list_image_keys() -> list[ImageKey]``
(the keys of the images the store holds for the participant, in the official order: sorted by download folder
name), ``load_image(image_key) -> np.ndarray`` ``(512, 512, 3) uint8``, ``get_asset_folder(image_key) -> str``
(``<raw folder>/svfr/<pid:03d>/<sequence>_<timestep>_<serial>``, the folder converted from). ``load_image`` also takes
a :class:`~nersemble_zarr.core.benchmark.SVFRImageKey`, the official ``ImageKey`` or a folder name (either spelling).

Reads go through the integrity guard: a missing or damaged image object raises
:class:`~nersemble_zarr.core.errors.MissingObjectError` / :class:`~nersemble_zarr.core.errors.CorruptObjectError`
naming the store, the participant and the image key; a participant that is not completely converted, or a key the
store does not hold, raises :class:`SVFRDataManagerError` naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr

from ..core import benchmark as bm
from ..core import schema
from ..core.benchmark import SVFR, SVFR_IMAGE_FILE, SVFRImageKey, check_participant, participant_dir
from ..core.errors import StoreIntegrityError
from ..storage.integrity import GuardedArray, check_arrays, guarded, read
from ..storage.markers import is_complete
from .resolver import StoreLike, StoreReadError, describe_store, open_root

__all__ = ["ImageKey", "SVFRDataManager", "SVFRDataManagerError", "svfr_contact_sheet"]


class SVFRDataManagerError(StoreReadError, KeyError):
    """A participant or image key the store does not hold, or holds incompletely (message names it)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass
class ImageKey:
    """One SVFR input image of a participant, as the official ``ImageKey``: ``sequence_name``, ``timestep``,
    ``serial``; :meth:`to_key` is the submission spelling (timestep padded to 3 digits)."""

    sequence_name: str
    timestep: int
    serial: str

    def to_key(self) -> str:
        """``"{sequence_name}_{timestep:03d}_{serial}"``: the image's folder in a submission zip."""
        return f"{self.sequence_name}_{self.timestep:03d}_{self.serial}"


class SVFRDataManager:
    """The SVFR images of one participant in a nersemble-zarr store (see the module docstring).

    ``store``: a path, an fsspec URL (with ``storage_options``) or a zarr store; ``participant_id``: one of the
    20 SVFR participants (:class:`~nersemble_zarr.core.benchmark.UnknownIdError` otherwise). The store is opened on
    first use (and reopened in a forked child process); instances pickle without their handles.
    """

    def __init__(self, store: StoreLike, participant_id: int, *, storage_options: dict[str, Any] | None = None):
        self._store_spec = store
        self._storage_options = storage_options
        self._participant_id = check_participant(SVFR, participant_id)
        self._state: tuple[int, zarr.Group, GuardedArray, list[SVFRImageKey]] | None = None

    def __repr__(self) -> str:
        store = os.fspath(self._store_spec) if isinstance(self._store_spec, (str, os.PathLike)) else self._store_spec
        return f"SVFRDataManager({store!r}, {self._participant_id})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_state": None}

    @property
    def _where(self) -> str:
        return f"{describe_store(self._store_spec)}: svfr participant {participant_dir(self._participant_id)}"

    def _open(self) -> tuple[zarr.Group, GuardedArray, list[SVFRImageKey]]:
        """(root, guarded images array, the stored keys in order), opened once per process."""
        if self._state is not None and self._state[0] == os.getpid():
            return self._state[1], self._state[2], self._state[3]
        root = open_root(self._store_spec, storage_options=self._storage_options)
        path = schema.svfr_participant_group(self._participant_id)
        try:
            group = root[path]
        except KeyError:
            held = sorted(root[SVFR].group_keys()) if SVFR in root.group_keys() else []
            raise SVFRDataManagerError(
                f"{self._where} is not in the store (convert it: nersemble-zarr convert RAW STORE -b svfr -p "
                f"{self._participant_id}); the store holds svfr participants: {', '.join(held) or 'none'}"
            ) from None
        if not is_complete(group):
            raise SVFRDataManagerError(
                f"{self._where} is not completely converted (a convert run failed or was interrupted): rerun "
                f"'nersemble-zarr convert RAW STORE -b svfr -p {self._participant_id}'"
            )
        names = [schema.SVFR_IMAGE, schema.SVFR_SEQUENCE, schema.SVFR_TIMESTEP, schema.SVFR_SERIAL, schema.IMAGES]
        check_arrays(group, names)
        folders = [str(v) for v in read(group[schema.SVFR_IMAGE])]
        sequences = [str(v) for v in read(group[schema.SVFR_SEQUENCE])]
        timesteps = [int(v) for v in read(group[schema.SVFR_TIMESTEP])]
        serials = [str(v) for v in read(group[schema.SVFR_SERIAL])]
        keys = [SVFRImageKey(self._participant_id, q, t, s) for q, t, s in zip(sequences, timesteps, serials, strict=True)]
        for folder, key in zip(folders, keys, strict=True):
            if key.download_folder() != folder:
                raise StoreIntegrityError(
                    f"{self._where}: image {folder!r} is labelled sequence {key.sequence!r}, timestep {key.timestep}, "
                    f"serial {key.serial} in the store; run 'nersemble-zarr check' and convert again"
                )
        images = guarded(group[schema.IMAGES], {schema.SVFR_IMAGE: folders})
        self._state = (os.getpid(), root, images, keys)
        return root, images, keys

    def _index(self, image_key: Any) -> tuple[int, SVFRImageKey]:
        key = _as_key(self._participant_id, image_key)
        _, _, keys = self._open()
        try:
            return keys.index(key), key
        except ValueError:
            official = key in bm.svfr_image_keys(self._participant_id)
            raise SVFRDataManagerError(
                f"{self._where} has no image {key.download_folder()!r} in the store"
                + (" (an official key that was not downloaded or converted)" if official else
                   " (not one of the participant's official SVFR image keys)")
                + f"; it holds {len(keys)} images, e.g. {', '.join(k.download_folder() for k in keys[:3]) or 'none'}"
            ) from None

    # ------------------------------------------------------------------------------------------
    # Official API
    # ------------------------------------------------------------------------------------------

    def list_image_keys(self) -> list[ImageKey]:
        """The participant's images in the store, as official ``ImageKey`` s, sorted by download folder name
        (the official order)."""
        _, _, keys = self._open()
        ordered = sorted(keys, key=lambda k: k.download_folder())
        return [ImageKey(sequence_name=k.sequence, timestep=k.timestep, serial=k.serial) for k in ordered]

    def load_image(self, image_key: Any) -> np.ndarray:
        """The image ``(512, 512, 3) uint8`` of ``image_key`` (an ``ImageKey``, official or ours, an
        :class:`~nersemble_zarr.core.benchmark.SVFRImageKey` or a folder name), exactly as the official loader
        decodes its ``rgb.png``."""
        index, key = self._index(image_key)
        _, images, _ = self._open()
        try:
            return images[index]
        except StoreIntegrityError as e:
            raise type(e)(f"svfr participant {participant_dir(self._participant_id)} image "
                          f"{key.download_folder()!r}: {e}") from None

    def get_asset_folder(self, image_key: Any, *, check: bool = True) -> str:
        """``<raw folder>/svfr/<pid:03d>/<sequence>_<timestep>_<serial>``: where the image's ``rgb.png`` was when the
        store was converted (the root attrs' ``source_path``). ``check``: for an image the store holds, its
        ``rgb.png`` must still be there (:class:`SVFRDataManagerError` otherwise; ``check=False``: the path alone)."""
        key = _as_key(self._participant_id, image_key)
        root, _, keys = self._open()
        info = root.attrs.get(schema.ROOT_ATTR) or {}
        raw = info.get("source_path") if isinstance(info, dict) else None
        if not raw:
            raise SVFRDataManagerError(
                f"{self._where}: the store records no raw folder (converted before 'source_path' was recorded), so "
                f"there is no asset folder for {key.download_folder()!r}; the image loads with load_image()"
            )
        folder = f"{raw}/{SVFR}/{participant_dir(self._participant_id)}/{key.download_folder()}"
        if check and key in keys and not os.path.isfile(f"{folder}/{SVFR_IMAGE_FILE}"):
            raise SVFRDataManagerError(
                f"{self._where} image {key.download_folder()!r}: the store was converted from {folder}/"
                f"{SVFR_IMAGE_FILE}, which no longer exists (raw folder moved or deleted); the store holds the "
                f"image: use load_image() (or check=False for the path alone)"
            )
        return folder


def _as_key(participant: int, image_key: Any) -> SVFRImageKey:
    """An :class:`SVFRImageKey` of ``participant`` from an ImageKey (official or ours), an SVFRImageKey or a
    folder name."""
    if isinstance(image_key, SVFRImageKey):
        if image_key.participant != participant:
            raise SVFRDataManagerError(
                f"image key {image_key.download_folder()!r} is of svfr participant "
                f"{participant_dir(image_key.participant)}, not {participant_dir(participant)}"
            )
        return image_key
    if isinstance(image_key, str):
        try:
            return SVFRImageKey.from_folder(participant, image_key)
        except ValueError as e:
            raise SVFRDataManagerError(str(e)) from None
    try:
        return SVFRImageKey(participant, str(image_key.sequence_name), int(image_key.timestep), str(image_key.serial))
    except (AttributeError, TypeError, ValueError):
        raise SVFRDataManagerError(
            f"expected an ImageKey (sequence_name, timestep, serial), an SVFRImageKey or a folder name such as "
            f"'EXP-4-lips_6_221501007', not {image_key!r}"
        ) from None


def svfr_contact_sheet(
    store: StoreLike,
    participant: int,
    out: str | os.PathLike,
    *,
    tile_width: int = 160,
    columns: int | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Any:
    """Write a PNG contact sheet of a participant's SVFR images in the store (``show -b svfr -p PID --out``).

    Tiles of ``tile_width`` pixels, labelled with the image key (submission spelling), ``columns`` per row
    (default: a near-square grid). Returns a :class:`~nersemble_zarr.read.show.SheetInfo` (``sequence`` ``"svfr"``,
    ``timestep`` -1, ``cameras`` the keys drawn). Reads through the integrity guard, as :class:`SVFRDataManager`.
    """
    import math

    from matplotlib.figure import Figure

    from .show import DPI, SheetInfo, _inches, _save

    dm = SVFRDataManager(store, participant, storage_options=storage_options)
    keys = dm.list_image_keys()
    if not keys:
        raise SVFRDataManagerError(f"{dm._where} holds no images")
    n = len(keys)
    tile = int(tile_width)
    cols = min(n, int(columns) if columns else max(1, math.ceil(math.sqrt(n))))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=_inches(rows * tile, cols * tile), dpi=DPI, facecolor="black")
    for i, key in enumerate(keys):
        r, c = divmod(i, cols)
        ax = fig.add_axes((c / cols, 1 - (r + 1) / rows, 1 / cols, 1 / rows))
        ax.imshow(dm.load_image(key), interpolation="antialiased")
        ax.text(0.02, 0.98, key.to_key(), transform=ax.transAxes, va="top", ha="left", fontsize=6, color="white",
                bbox={"facecolor": "black", "alpha": 0.6, "pad": 1.2, "linewidth": 0})
        ax.set_axis_off()
    path = _save(fig, out)
    return SheetInfo(path, (rows * tile, cols * tile), SVFR, -1, tuple(k.to_key() for k in keys))
