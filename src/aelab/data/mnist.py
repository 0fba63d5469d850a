"""MNIST and Fashion-MNIST LightningDataModules.

Splits: the official 10k test set is the ``test`` split and never enters training; ``val`` is a seeded
random subset of the official 60k training images (5k by default) and ``train`` is the rest. Images are
float32 in [0, 1] with shape ``(B, 1, 28, 28)`` — no ``Normalize``, because the same tensors are the
reconstruction targets.
"""

from __future__ import annotations

import gzip
import math
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
import torchvision
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from aelab.data.resident import ResidentLoader, ShardSampler, to_unit

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
        RuntimeError: naming the file and what is wrong (magic number, dimensions, item shape, size).
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4 + 4 * ndim)
    fix = "delete it and place a fresh copy (`make data` unpacks the shared one)"
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] != 0x08 or head[3] != ndim:
        magic = head[:4].hex() if len(head) >= 4 else head.hex() or "empty"
        raise RuntimeError(
            f"{path} is not an IDX file of unsigned bytes with {ndim} dimension(s): magic number 0x{magic}, "
            f"expected 0x0000080{ndim}; {fix}"
        )
    if len(head) < 4 + 4 * ndim:
        raise RuntimeError(f"{path} is truncated inside its header ({size} bytes); {fix}")
    dims = struct.unpack(f">{ndim}I", head[4:])
    if shape is not None and tuple(dims[1:]) != tuple(shape):
        raise RuntimeError(
            f"{path} holds items of shape {tuple(dims[1:])}, expected {tuple(shape)}; {fix} (or use a data "
            "config for that image size)"
        )
    expected = 4 + 4 * ndim + math.prod(dims)
    if size != expected:
        raise RuntimeError(
            f"{path} has {size} bytes, but its header ({dims[0]} items of {tuple(dims[1:]) or 'scalars'}) "
            f"needs {expected}: the file is {'truncated' if size < expected else 'too long'}; {fix}"
        )
    return dims[0]


class _ImageDataset(Dataset):
    """Per-item host path (the DataLoader baseline): uint8 ``(N, 28, 28)`` → float ``(1, 28, 28)`` in [0, 1]."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return to_unit(self.images[i].unsqueeze(0)), self.labels[i]


class MNISTDataModule(pl.LightningDataModule):
    """MNIST (LeCun et al. 1998) as a LightningDataModule.

    Args:
        data_dir: root folder; the four IDX files live in ``{data_dir}/MNIST/raw`` (torchvision's layout),
            uncompressed or as ``.gz``.
        batch_size: the *global* batch size; each of ``W`` DDP ranks gets ``batch_size / W``. Must divide
            by the world size.
        val_size: images held out of the 60k official training set for validation.
        split_seed: seed of the train/val split (fixed, so every run and model sees the same split).
        shuffle_seed: seed of the per-epoch shuffle (epoch ``e`` uses ``shuffle_seed + e``).
        resident: ``True`` keeps the uint8 images on the training device and batches there
            (:class:`~aelab.data.ResidentLoader`); ``False`` uses a torch DataLoader (workers, per-item
            conversion on the host).
        num_workers: DataLoader workers (DataLoader path only).
        pin_memory: pin host memory (DataLoader path only).
        train_classes: keep only these labels in ``train`` and ``val`` (e.g. ``[0]`` for the one-class
            anomaly protocol); ``test`` always keeps every class.
        download: let torchvision try to download missing files in ``prepare_data``.

    Raises:
        FileNotFoundError: in ``prepare_data``/``setup`` when the files are missing and cannot be
            downloaded; the message names the folder and the four files.
        ValueError: on a batch size that does not divide by the world size, or an impossible split.
    """

    dataset_cls: type = torchvision.datasets.MNIST
    name = "MNIST"
    shared_name = "mnist"  # the folder under ../shared/data that `make data` unpacks
    num_classes = 10
    image_shape = (1, 28, 28)

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 256,
        val_size: int = 5000,
        split_seed: int = 42,
        shuffle_seed: int = 0,
        resident: bool = True,
        num_workers: int = 0,
        pin_memory: bool = False,
        train_classes: Sequence[int] | None = None,
        download: bool = True,
    ) -> None:
        super().__init__()
        # plain Python values only (not OmegaConf lists): checkpoints load with weights_only=True
        train_classes = None if train_classes is None else [int(c) for c in train_classes]
        self.save_hyperparameters(logger=False)
        self.data_dir = Path(data_dir)
        self.batch_size = int(batch_size)
        self.val_size = int(val_size)
        self.split_seed = split_seed
        self.shuffle_seed = shuffle_seed
        self.resident = bool(resident)
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.train_classes = train_classes
        self.download = download
        self._splits: dict[str, tuple[Tensor, Tensor]] = {}
        self._device_splits: dict[str, tuple[Tensor, Tensor]] = {}

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
                    raise RuntimeError(f"{gz} is not a valid gzip file ({err}); replace it.") from err

    def _missing_error(self, cause: str) -> FileNotFoundError:
        files = "\n".join(f"  {self.raw_dir / f}" for f in RAW_FILES)
        return FileNotFoundError(
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
        if self._missing():
            raise self._missing_error("run prepare_data() first, or place the files by hand")
        prefix = "train" if train else "t10k"
        images_file = self.raw_dir / f"{prefix}-images-idx3-ubyte"
        labels_file = self.raw_dir / f"{prefix}-labels-idx1-ubyte"
        n_images = check_idx_file(images_file, 3, self.image_shape[1:])
        n_labels = check_idx_file(labels_file, 1)
        if n_images != n_labels:
            raise RuntimeError(
                f"{images_file} holds {n_images} images but {labels_file} {n_labels} labels: the two files "
                "come from different sets; place matching fresh copies"
            )
        try:
            ds = self.dataset_cls(str(self.data_dir), train=train, download=False)
            images, labels = ds.data, ds.targets
        except Exception as err:  # noqa: BLE001
            raise RuntimeError(
                f"could not read the {self.name} IDX files in {self.raw_dir.resolve()} ({err}); "
                "they may be truncated or corrupt: delete them and place fresh copies (see README)."
            ) from err
        if images.dtype != torch.uint8 or images.ndim != 3 or len(images) != len(labels):
            raise RuntimeError(f"unexpected {self.name} contents in {self.raw_dir}: {tuple(images.shape)}")
        return images, labels.long()

    # ------------------------------------------------------------------ splits
    def setup(self, stage: str | None = None) -> None:
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.batch_size % world:
            raise ValueError(
                f"data.batch_size={self.batch_size} is the global batch and must divide by the world size "
                f"{world}; set data.batch_size to a multiple of {world}."
            )
        if "train" in self._splits:
            return
        images, labels = self._load(train=True)
        if not 0 < self.val_size < len(images):
            raise ValueError(f"data.val_size={self.val_size} must be in (0, {len(images)})")
        perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = perm[: self.val_size], perm[self.val_size :]
        for name, idx in (("train", train_idx), ("val", val_idx)):
            x, y = images[idx], labels[idx]
            if self.train_classes is not None:
                keep = torch.isin(y, torch.tensor(self.train_classes))
                x, y = x[keep], y[keep]
            self._splits[name] = (x, y)
        if "test" not in self._splits:
            self._splits["test"] = self._load(train=False)

    def split_tensors(self, split: str) -> tuple[Tensor, Tensor]:
        """The uint8 images ``(N, 28, 28)`` and int64 labels ``(N,)`` of ``train``/``val``/``test`` (the test
        split alone loads only the official test files)."""
        if split not in self._splits:
            if split == "test":
                self._splits["test"] = self._load(train=False)
            else:
                self.setup()
        return self._splits[split]

    def sample_images(self, n: int, split: str = "val") -> tuple[Tensor, Tensor]:
        """The first ``n`` images of a split as float ``(n, 1, 28, 28)`` in [0, 1] and their labels."""
        x, y = self.split_tensors(split)
        return to_unit(x[:n].unsqueeze(1)), y[:n]

    # ------------------------------------------------------------------ loaders
    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _device(self) -> torch.device:
        if self.trainer is None:
            return torch.device("cpu")
        return self.trainer.strategy.root_device

    def _loader(self, split: str, shuffle: bool):
        x, y = self.split_tensors(split)
        rank, world = self._rank_world()
        per_rank = self.batch_size // world
        if shuffle:
            sampler = DistributedSampler(
                range(len(x)), num_replicas=world, rank=rank, shuffle=True, seed=self.shuffle_seed
            )
        else:  # evaluation: every image exactly once across ranks, no padding
            sampler = ShardSampler(len(x), num_replicas=world, rank=rank)
        if self.resident:
            if split not in self._device_splits or self._device_splits[split][0].device != self._device():
                self._device_splits[split] = (x.to(self._device()), y.to(self._device()))
            dx, dy = self._device_splits[split]
            return ResidentLoader(dx, dy, per_rank, sampler)
        return DataLoader(
            _ImageDataset(x, y),
            batch_size=per_rank,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        # Resident batches are already on the device: skip Lightning's generic walk over the batch.
        if self.resident and all(isinstance(t, Tensor) and t.device == device for t in batch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False)


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST (Xiao et al. 2017): same format, folder ``{data_dir}/FashionMNIST/raw``.

    Offline, ``make data`` unpacks the files from ``../shared/data/fashion-mnist`` (or from Debian's
    ``dataset-fashion-mnist`` package).
    """

    dataset_cls = torchvision.datasets.FashionMNIST
    name = "FashionMNIST"
    shared_name = "fashion-mnist"
