"""Your own images: a folder of PNG/JPEG/WebP/BMP files, grey or RGB, any size (``data=image_folder``).

Layouts (torchvision's ``ImageFolder``):

* ``root/<class>/*.png`` — one sub-folder per class (labels are the sorted folder names);
* ``root/*.png`` — images without labels (the probe, the one-class protocol and the Fréchet distance then
  say they are skipped and why).

Every image is converted to grey (``channels: 1``) or RGB (``channels: 3``), scaled (down only) so that it
covers ``image_size`` and center-cropped to it (torchvision's ``resize`` with antialiasing, ``center_crop``).
The decoded uint8 images are cached in ``<data_dir>/aelab-cache/image_folder-<fingerprint>.npz``; the
fingerprint covers the list of files, their sizes and modification times, the image size and the channels, so
a changed folder is decoded again and an unchanged one starts in seconds. The cache is written atomically
(temporary file, then rename) and checked when read: a half-written or foreign cache is never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from aelab.data.base import ImageDataModule
from aelab.errors import ConfigError, DataError, MissingDataError
from aelab.utils.shapes import shape_of

log = logging.getLogger("aelab")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
CACHE_VERSION = 1


def load_image(
    path: Path, channels: int, size: tuple[int, int], upscale: bool = True
) -> tuple[np.ndarray, bool]:
    """One image file as uint8 ``(C, H, W)``: converted to grey or RGB, scaled (down, or up when it is smaller and
    ``upscale``; bilinear, antialiased: torchvision's ``resize``) to cover ``size``, center-cropped. Returns the
    image and whether it was enlarged.

    Raises:
        DataError: the file is not a readable image, or is smaller than ``size`` with ``upscale=False`` (names the
            file and the fix).
    """
    import PIL.Image
    import torchvision.transforms.functional as TF

    try:
        with PIL.Image.open(path) as img:
            img.load()
            img = img.convert("L" if channels == 1 else "RGB")
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as err:
        raise DataError(
            f"{path} cannot be decoded as an image ({type(err).__name__}: {err}); replace it or remove it from "
            "the folder"
        ) from None
    w, h = img.size
    H, W = size
    enlarged = h < H or w < W
    if enlarged and not upscale:
        raise DataError(
            f"{path} is {h}×{w} pixels, smaller than data.image_size={H if H == W else [H, W]} and "
            f"data.upscale=false; set data.upscale=true (enlarge it), data.image_size="
            f"{min(h, H) if H == W else [min(h, H), min(w, W)]} or smaller, or remove the image"
        )
    scale = max(H / h, W / w)
    if (h, w) != (H, W):
        new = [max(H, round(h * scale)), max(W, round(w * scale))]
        img = TF.center_crop(
            TF.resize(img, new, interpolation=TF.InterpolationMode.BILINEAR, antialias=True), [H, W]
        )
    arr = np.asarray(img, dtype=np.uint8)
    return (arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))), enlarged


def scan_folder(root: Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
    """The image files under ``root`` with their class indices and the class names (``None``, ``None`` for a flat
    folder of unlabelled images). Hidden files (``.name``) are skipped.

    Raises:
        MissingDataError: when ``root`` does not exist.
        DataError: for an empty folder or class folder, a file that is not an image, or images beside class
            folders (names the file or folder and the fix).
    """
    if not root.is_dir():
        raise MissingDataError(f"data.root={root} is not a folder: point data.root at a folder of images")

    def entries(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))

    def images_in(folder: Path) -> list[Path]:
        files = []
        for p in entries(folder):
            if p.is_dir():
                raise DataError(
                    f"{p} is a folder inside the class folder {folder}: aelab reads root/<class>/<image> "
                    "(one level of class folders)"
                )
            if p.suffix.lower() not in IMAGE_EXTENSIONS:
                raise DataError(
                    f"{p} is not an image file (extension {p.suffix or 'none'}; aelab reads "
                    f"{', '.join(IMAGE_EXTENSIONS)}): move it out of {folder}"
                )
            files.append(p)
        return files

    top = entries(root)
    dirs = [p for p in top if p.is_dir()]
    if not top:
        raise DataError(f"data.root={root} holds no images: put images (or one folder per class) in it")
    if not dirs:
        return images_in(root), None, None
    loose = [p for p in top if not p.is_dir()]
    if loose:
        raise DataError(
            f"{loose[0]} lies beside the class folders of {root}: put every image in a class folder "
            "(root/<class>/<image>), or use a folder of images alone (no labels)"
        )
    files, labels = [], []
    for k, d in enumerate(dirs):
        found = images_in(d)
        if not found:
            raise DataError(f"the class folder {d} holds no images: add some, or remove the folder")
        files += found
        labels += [k] * len(found)
    return files, labels, [d.name for d in dirs]


def folder_fingerprint(
    files: Sequence[Path], channels: int, size: tuple[int, int], upscale: bool = True
) -> str:
    """SHA-256 over the file list (paths, sizes, modification times), the image size, the channels and whether
    small images are enlarged."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, channels, list(size), bool(upscale)]).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def read_cache(path: Path, fingerprint: str, n: int) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file when it is complete and matches ``fingerprint`` (``n`` images), else ``None``."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError):
        log.warning("ignoring the unreadable cache %s (decoding the images again)", path)
        return None
    images = arrays.get("images")
    fp = arrays.get("fingerprint")
    if images is None or images.dtype != np.uint8 or images.ndim != 4 or len(images) != n or fp is None:
        return None
    if str(fp) != fingerprint:
        return None
    return arrays


def write_cache(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` to a temporary file beside ``path``, then ``os.replace``: never a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class ImageFolderDataModule(ImageDataModule):
    """A folder of images as a LightningDataModule (``data=image_folder``): images ``(B, C, H, W)`` in [0, 1].

    Args:
        root: the folder: ``root/<class>/<image>`` (labelled) or ``root/<image>`` (no labels).
        test_root: a folder of test images in the same layout (and the same classes); ``None``: the test split is
            a seeded ``test_size`` subset of ``root``.
        image_size: ``H`` (square) or ``[H, W]``; images are scaled to cover it and center-cropped.
        channels: 1 (grey) or 3 (RGB); every image is converted.
        upscale: enlarge an image smaller than ``image_size`` (the count is logged); ``False`` refuses it.
        pca_start: the autoencoders start at the folder's PCA by default (``model.init=pca``; on by default: a
            small folder or photographs give PCA a head start gradient descent is slow to make up).
        data_dir, batch_size, val_size, test_size, split_seed, shuffle_seed, resident, num_workers, pin_memory,
            train_classes, shape, bounded: as for :class:`~aelab.data.ImageDataModule`.

    Raises:
        MissingDataError: when ``root`` or ``test_root`` is not a folder.
        DataError: an unreadable, truncated or too-small image, a non-image file, an empty folder or class
            folder, or test classes the training folder lacks; the file or folder is named, before training.
    """

    def __init__(
        self,
        root: str,
        data_dir: str = "data",
        test_root: str | None = None,
        image_size: int | Sequence[int] = 32,
        channels: int = 3,
        batch_size: int = 128,
        val_size: int | float = 0.1,
        test_size: int | float = 0.1,
        split_seed: int = 42,
        shuffle_seed: int = 0,
        resident: bool | str = "auto",
        num_workers: int = 0,
        pin_memory: bool = False,
        train_classes: Sequence[int] | None = None,
        shape: Sequence[int] | None = None,
        binary: bool = False,
        bounded: bool = True,
        upscale: bool = True,
        pca_start: bool = True,
    ) -> None:
        if root in (None, "", "???"):
            raise ConfigError("data=image_folder needs data.root=/path/to/images")
        shape = tuple(shape_of(int(channels), image_size))
        super().__init__(
            data_dir=data_dir,
            batch_size=batch_size,
            val_size=val_size,
            test_size=test_size,
            split_seed=split_seed,
            shuffle_seed=shuffle_seed,
            resident=resident,
            num_workers=num_workers,
            pin_memory=pin_memory,
            train_classes=train_classes,
            shape=shape,
            binary=binary,
            bounded=bounded,
            pca_start=pca_start,
        )
        self.root = Path(root).expanduser()
        self.test_root = None if test_root in (None, "") else Path(test_root).expanduser()
        self.channels = int(channels)
        self.upscale = bool(upscale)
        self.size = tuple(shape[1:])
        self.default_image_shape = shape
        self.name = self.root.name or "images"

    def _decode(
        self, root: Path, classes: list[str] | None = None
    ) -> tuple[Tensor, Tensor | None, list[str] | None]:
        files, labels, names = scan_folder(root)
        if classes is not None and names is not None:  # a test folder: the training folder's class indices
            unknown = sorted(set(names) - set(classes))
            if unknown:
                raise DataError(
                    f"data.test_root={root} has class folder(s) {unknown} that data.root lacks ({classes}): "
                    "use the same class folders in both"
                )
            labels = [classes.index(names[k]) for k in labels]
            names = classes
        elif classes is not None and names is None:
            raise DataError(
                f"data.test_root={root} holds unlabelled images but data.root has class folders: use class "
                "folders in both, or images alone in both"
            )
        fp = folder_fingerprint(files, self.channels, self.size, self.upscale)
        cache = self.cache_dir / f"image_folder-{fp[:20]}.npz"
        arrays = read_cache(cache, fp, len(files))
        if arrays is None:
            log.info("decoding %d images from %s (cached afterwards in %s)", len(files), root, cache)
            decoded = [load_image(f, self.channels, self.size, self.upscale) for f in files]
            images = np.stack([img for img, _ in decoded])
            enlarged = sum(e for _, e in decoded)
            if enlarged:
                log.info(
                    "%d of %d images in %s were smaller than %s and enlarged (data.upscale=false refuses them)",
                    enlarged, len(files), root, list(self.size),
                )  # fmt: skip
            arrays = {"images": images, "fingerprint": np.array(fp)}
            if labels is not None:
                arrays["labels"] = np.asarray(labels, dtype=np.int64)
            write_cache(cache, **arrays)
        y = torch.from_numpy(arrays["labels"]) if "labels" in arrays else None
        return torch.from_numpy(arrays["images"]), y, names

    def load_pool(self) -> tuple[Tensor, Tensor | None]:
        images, labels, names = self._decode(self.root)
        self._class_names = names
        return images, labels

    def load_test(self) -> tuple[Tensor, Tensor | None] | None:
        if self.test_root is None:
            return None
        if self._class_names is None and "train" not in self._splits:
            scan = scan_folder(self.root)
            self._class_names = scan[2]
        images, labels, _ = self._decode(self.test_root, self._class_names)
        return images, labels
