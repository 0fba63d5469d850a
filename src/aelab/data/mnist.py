"""MNIST and Fashion-MNIST LightningDataModules (the IDX files of LeCun et al. and Xiao et al.).

Splits: the official 10k test set is the ``test`` split and never enters training; ``val`` is a seeded
random subset of the official 60k training images (5k by default) and ``train`` is the rest. Images are
float32 in [0, 1] with shape ``(B, 1, 28, 28)`` — no ``Normalize``, because the same tensors are the
reconstruction targets. Everything but reading the files is :class:`aelab.data.ImageDataModule`'s.
"""

from __future__ import annotations

import gzip
import math
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path

import torch
import torchvision
from torch import Tensor

from aelab.data.base import ImageDataModule
from aelab.errors import DataError, MissingDataError

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def check_idx_file(path: Path, ndim: int, shape: Sequence[int] | None = None) -> int:
    """Check an uncompressed IDX file's header and size before it is parsed; returns its item count.

    IDX (LeCun et al.): two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions, then
    one big-endian uint32 per dimension and the data.

    Raises:
        DataError: naming the file and what is wrong (magic number, dimensions, item shape, size).
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4 + 4 * ndim)
    fix = "delete it and place a fresh copy (`make data` unpacks the shared one)"
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] != 0x08 or head[3] != ndim:
        magic = head[:4].hex() if len(head) >= 4 else head.hex() or "empty"
        raise DataError(
            f"{path} is not an IDX file of unsigned bytes with {ndim} dimension(s): magic number 0x{magic}, "
            f"expected 0x0000080{ndim}; {fix}"
        )
    if len(head) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated inside its header ({size} bytes); {fix}")
    dims = struct.unpack(f">{ndim}I", head[4:])
    if shape is not None and tuple(dims[1:]) != tuple(shape):
        raise DataError(
            f"{path} holds items of shape {tuple(dims[1:])}, expected {tuple(shape)}; {fix} (or use a data "
            "config for that image size)"
        )
    expected = 4 + 4 * ndim + math.prod(dims)
    if size != expected:
        raise DataError(
            f"{path} has {size} bytes, but its header ({dims[0]} items of {tuple(dims[1:]) or 'scalars'}) "
            f"needs {expected}: the file is {'truncated' if size < expected else 'too long'}; {fix}"
        )
    return dims[0]


class MNISTDataModule(ImageDataModule):
    """MNIST (LeCun et al. 1998) as a LightningDataModule: images ``(B, 1, 28, 28)`` in [0, 1], 10 classes.

    Args:
        data_dir: root folder; the four IDX files live in ``{data_dir}/MNIST/raw`` (torchvision's layout),
            uncompressed or as ``.gz``.
        download: let torchvision try to download missing files in ``prepare_data``.
        batch_size, val_size, split_seed, shuffle_seed, resident, num_workers, pin_memory, train_classes,
            shape, bounded: as for :class:`~aelab.data.ImageDataModule` (``val_size`` 5000 of the official 60k
            training images by default; the official 10k test images are the test split).

    Raises:
        MissingDataError: in ``prepare_data``/``setup`` when the files are missing and cannot be downloaded;
            the message names the folder and the four files.
        DataError: when a file is truncated or not an IDX file (names it).
        ConfigError: on a batch size that does not divide by the world size, or an impossible split.
    """

    dataset_cls: type = torchvision.datasets.MNIST
    name = "MNIST"
    shared_name = "mnist"  # the folder under ../shared/data that `make data` unpacks
    default_image_shape = (1, 28, 28)
    default_class_names = tuple(str(d) for d in range(10))

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 256,
        val_size: int = 5000,
        split_seed: int = 42,
        shuffle_seed: int = 0,
        resident: bool | str = True,
        num_workers: int = 0,
        pin_memory: bool = False,
        train_classes: Sequence[int] | None = None,
        download: bool = True,
        shape: Sequence[int] | None = None,
        binary: bool = False,
        bounded: bool = True,
    ) -> None:
        super().__init__(
            data_dir=data_dir,
            batch_size=batch_size,
            val_size=val_size,
            split_seed=split_seed,
            shuffle_seed=shuffle_seed,
            resident=resident,
            num_workers=num_workers,
            pin_memory=pin_memory,
            train_classes=train_classes,
            shape=shape,
            binary=binary,
            bounded=bounded,
        )
        self.download = download

    # ------------------------------------------------------------------ files
    @property
    def raw_dir(self) -> Path:
        return self.data_dir / self.name / "raw"

    def _missing(self) -> list[str]:
        return [f for f in RAW_FILES if not (self.raw_dir / f).is_file()]

    def _gunzip_present(self) -> None:
        for f in self._missing():
            gz = self.raw_dir / f"{f}.gz"
            if gz.is_file():
                try:
                    with gzip.open(gz, "rb") as src, open(self.raw_dir / f, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                except (OSError, EOFError) as err:
                    (self.raw_dir / f).unlink(missing_ok=True)
                    raise DataError(f"{gz} is not a valid gzip file ({err}); replace it.") from err

    def _missing_error(self, cause: str) -> MissingDataError:
        files = "\n".join(f"  {self.raw_dir / f}" for f in RAW_FILES)
        return MissingDataError(
            f"{self.name} files are missing in {self.raw_dir.resolve()} ({cause}).\n"
            f"Place these four IDX files there, uncompressed or as .gz:\n{files}\n"
            f"From the shared copy: `make data` (or: mkdir -p DIR && gunzip -c ../shared/data/{self.shared_name}/*.gz ...);"
            " or point aelab at another folder with `paths.data_dir=...` / the DATA_DIR environment variable."
        )

    def prepare_data(self) -> None:
        """Unpack ``.gz`` files found in the raw folder; download what is still missing (if allowed)."""
        self._gunzip_present()
        missing = self._missing()
        if not missing:
            return
        if not self.download:
            raise self._missing_error(
                f"missing {', '.join(missing)}; download disabled (data.download=false)"
            )
        try:
            self.dataset_cls(str(self.data_dir), train=True, download=True)
            self.dataset_cls(str(self.data_dir), train=False, download=True)
        except Exception as err:  # noqa: BLE001 - any download failure gets the same actionable message
            raise self._missing_error(f"download failed: {type(err).__name__}: {err}") from err

    def _load(self, train: bool) -> tuple[Tensor, Tensor]:
        self._gunzip_present()
        if self._missing():
            raise self._missing_error("run prepare_data() first, or place the files by hand")
        prefix = "train" if train else "t10k"
        images_file = self.raw_dir / f"{prefix}-images-idx3-ubyte"
        labels_file = self.raw_dir / f"{prefix}-labels-idx1-ubyte"
        n_images = check_idx_file(images_file, 3, self.default_image_shape[1:])
        n_labels = check_idx_file(labels_file, 1)
        if n_images != n_labels:
            raise DataError(
                f"{images_file} holds {n_images} images but {labels_file} {n_labels} labels: the two files "
                "come from different sets; place matching fresh copies"
            )
        try:
            ds = self.dataset_cls(str(self.data_dir), train=train, download=False)
            images, labels = ds.data, ds.targets
        except Exception as err:  # noqa: BLE001
            raise DataError(
                f"could not read the {self.name} IDX files in {self.raw_dir.resolve()} ({err}); "
                "they may be truncated or corrupt: delete them and place fresh copies (see README)."
            ) from err
        if images.dtype != torch.uint8 or images.ndim != 3 or len(images) != len(labels):
            raise DataError(f"unexpected {self.name} contents in {self.raw_dir}: {tuple(images.shape)}")
        return images.unsqueeze(1), labels.long()

    def load_pool(self) -> tuple[Tensor, Tensor]:
        """The official 60k training images ``(N, 1, 28, 28)`` and labels (train and val are drawn from them)."""
        return self._load(train=True)

    def load_test(self) -> tuple[Tensor, Tensor]:
        """The official 10k test images and labels."""
        return self._load(train=False)


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST (Xiao et al. 2017): same format, folder ``{data_dir}/FashionMNIST/raw``, 10 clothing classes.

    Offline, ``make data`` unpacks the files from ``../shared/data/fashion-mnist`` (or from Debian's
    ``dataset-fashion-mnist`` package).
    """

    dataset_cls = torchvision.datasets.FashionMNIST
    name = "FashionMNIST"
    shared_name = "fashion-mnist"
    default_class_names = (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )  # fmt: skip
