"""The base of every aelab datamodule: a set of examples held as tensors, split once, batched on the device.

:class:`TensorDataModule` holds examples of any shape (uint8 images, float table rows); :class:`ImageDataModule`
is its image set (uint8 ``(N, C, H, W)``, pixels in [0, 1] once converted). A subclass only says how to read its
examples (:meth:`TensorDataModule.load_pool` and, when the set has an official test split,
:meth:`TensorDataModule.load_test`); splitting, the one-class filter, DDP sharding, the device-resident fast path
and the DataLoader path are the same for all of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchmetrics import Metric

from aelab.data.resident import ResidentLoader, as_float
from aelab.errors import ConfigError, DataError
from aelab.utils.reconstruction import ReconstructionMSE, ReconstructionPSNR

SPLITS = ("train", "val", "test")


def split_count(size: int | float, n: int, key: str) -> int:
    """Images in a split of ``size`` (a count, or a fraction in (0, 1) of ``n``) out of ``n`` images.

    Raises:
        ConfigError: when the split would be empty or take every image (names ``key`` and a fix).
    """
    count = round(size * n) if isinstance(size, float) and 0 < size < 1 else size
    if isinstance(size, float) and 0 < size < 1 and count in (0, n):
        raise ConfigError(
            f"{key}={size} of {n} images is {count} images: give a count instead, e.g. {key}=1, or add images"
        )
    if not isinstance(count, int) or isinstance(count, bool) or not 0 < count < n:
        raise ConfigError(
            f"{key}={size!r} must be a count in (0, {n}) or a fraction in (0, 1) of the {n} images: set e.g. "
            f"{key}={max(1, n // 10)}"
        )
    return count


def check_split(split: str) -> None:
    """Refuse, with a ValueError naming it, a split other than ``train``, ``val`` or ``test``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


class _TensorDataset(Dataset):
    """The per-item host path (the DataLoader baseline): an example as float32 (uint8 pixels → [0, 1])."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return as_float(self.images[i]), self.labels[i]


class TensorDataModule(pl.LightningDataModule):
    """Any set of examples as tensors ``(N, *shape)`` (uint8 images, float rows), with the data contract of
    :class:`aelab.data.Data`.

    Splits: when the set has an official test split (:meth:`load_test`) it is the ``test`` split and never
    enters training; otherwise ``test`` is a seeded random subset of the examples (``test_size``). ``val`` is a
    seeded random subset of the rest (``val_size``) and ``train`` is what remains. The split depends only on
    ``split_seed``, so every run and model sees the same one. Batches are float32 (images in [0, 1], ``(B, C, H,
    W)``) — no ``Normalize``, because the same tensors are the reconstruction targets.

    Args:
        data_dir: the data root; aelab's caches for this data live in ``<data_dir>/aelab-cache``.
        batch_size: the *global* batch size; each of ``W`` DDP ranks gets ``batch_size / W``.
        val_size: images held out of the training images for validation (a count, or a fraction in (0, 1)).
        test_size: images held out for testing when the set has no official test split (count or fraction).
        binary: whether the pixels are (nearly) black or white, like MNIST's strokes: the models' configs
            then default to a Bernoulli loss (BCE), else to MSE / a Gaussian likelihood (``data.binary``).
        split_seed: seed of the train/val (and test) split.
        shuffle_seed: seed of the per-epoch shuffle (epoch ``e`` uses ``shuffle_seed + e``).
        resident: ``True`` keeps the uint8 images on the training device and batches there
            (:class:`~aelab.data.ResidentLoader`); ``False`` uses a torch DataLoader (workers, per-item
            conversion on the host); ``"auto"`` is resident when the images take at most half of the device's
            free memory (always on the CPU, where they are in memory already).
        num_workers: DataLoader workers (DataLoader path only).
        pin_memory: pin host memory (DataLoader path only).
        train_classes: keep only these class indices in ``train`` and ``val`` (the one-class anomaly protocol);
            ``test`` always keeps every class.
        shape: the shape of one example the config says the data have (``(C, H, W)`` of an image; the models
            read ``data.shape``); checked against the data. ``None``: not checked.
        bounded: the values are in [0, 1] (pixels: the models end in a sigmoid), else unbounded (identity).
        code_size: the code size the model configs default to on this data (``model.latent_dim``; ``None``: theirs).
        pca_start: whether the autoencoders start at this data's PCA by default (``model.init=pca``): natural images
            and small folders, where PCA has a head start gradient descent is slow to make up.
        mlp_hidden_dims, mlp_dropout: the MLP parts' hidden widths (encoder side first) and dropout on this data
            (``model.encoder.hidden_dims``, ``dropout``; ``None``: theirs): small tables want a small, regularised MLP.
        monitor, monitor_mode: the validation metric that picks the best checkpoint and whether lower (``min``) or
            higher (``max``) is better (``None``: the data's own, ``val/loss`` and ``min`` unless it names another).

    Raises:
        ConfigError: on a batch size that does not divide by the world size, an impossible split, an
            ``image_shape`` that differs from the data's, or ``train_classes`` on data without labels.
    """

    name: str = "images"
    #: the kind of one example (:data:`aelab.data.contract.SAMPLE_KINDS`): ``table`` here, ``image`` for images
    sample_kind: str = "table"
    #: the validation metric that picks the best checkpoint, and whether lower (``min``) or higher is better
    monitor: str = "val/loss"
    monitor_mode: str = "min"
    #: evaluation sections a training run reports right after its test (their baselines beside the model)
    train_sections: tuple[str, ...] = ()
    #: the class names when a subclass knows them before loading (MNIST's digits); else read from the data
    default_class_names: Sequence[str] | None = None

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 128,
        val_size: int | float = 0.1,
        test_size: int | float = 0.1,
        split_seed: int = 42,
        shuffle_seed: int = 0,
        resident: bool | str = True,
        num_workers: int = 0,
        pin_memory: bool = False,
        train_classes: Sequence[int] | None = None,
        shape: Sequence[int] | None = None,
        binary: bool = False,
        bounded: bool = True,
        code_size: int | None = None,
        pca_start: bool = False,
        mlp_hidden_dims: Sequence[int] | None = None,
        mlp_dropout: float | None = None,
        monitor: str | None = None,
        monitor_mode: str | None = None,
    ) -> None:
        super().__init__()
        # the validation metric that picks the best checkpoint (the callbacks' configs read data.monitor)
        self.monitor = str(monitor or type(self).monitor)
        self.monitor_mode = str(monitor_mode or type(self).monitor_mode)
        if self.monitor_mode not in ("min", "max"):
            raise ConfigError(f"data.monitor_mode={monitor_mode!r} must be min or max")
        self.binary = bool(binary)
        # what the model configs read from the data (model.latent_dim, model.init); nothing here uses them
        self.code_size, self.pca_start = (None if code_size is None else int(code_size)), bool(pca_start)
        self.mlp_hidden_dims = None if mlp_hidden_dims is None else [int(h) for h in mlp_hidden_dims]
        self.mlp_dropout = None if mlp_dropout is None else float(mlp_dropout)
        self.bounded = bool(bounded)
        if resident not in (True, False, "auto"):
            raise ConfigError(f"data.resident={resident!r} must be true, false or auto")
        self.data_dir = Path(data_dir)
        self.batch_size = int(batch_size)
        self.val_size = val_size
        self.test_size = test_size
        self.split_seed = int(split_seed)
        self.shuffle_seed = int(shuffle_seed)
        self.resident_setting = resident
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        # plain Python values only (not OmegaConf lists)
        self.train_classes = None if train_classes is None else [int(c) for c in train_classes]
        self.configured_shape = None if shape is None else tuple(int(s) for s in shape)
        self._splits: dict[str, tuple[Tensor, Tensor | None]] = {}
        self._device_splits: dict[str, tuple[Tensor, Tensor]] = {}
        self._class_names: list[str] | None = (
            list(self.default_class_names) if self.default_class_names is not None else None
        )

    # ------------------------------------------------------------------ what a subclass provides
    def load_pool(self) -> tuple[Tensor, Tensor | None]:
        """The images ``train`` and ``val`` (and ``test``, without an official test split) are drawn from: uint8
        ``(N, C, H, W)`` and int64 labels ``(N,)`` or ``None``."""
        raise NotImplementedError

    def load_test(self) -> tuple[Tensor, Tensor | None] | None:
        """The official test split, or ``None`` when the set has none (then ``test`` is carved from the pool)."""
        return None

    # ------------------------------------------------------------------ the contract
    @property
    def cache_dir(self) -> Path:
        """``<data_dir>/aelab-cache``: decoded images, feature networks trained on this data."""
        return self.data_dir / "aelab-cache"

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one example (``(C, H, W)`` of an image, ``(F,)`` of a table row)."""
        if self.configured_shape is not None:
            return self.configured_shape
        return tuple(self.split_tensors("train")[0].shape[1:])

    #: ``(C, H, W)`` when the examples are images, else ``None`` (sections and dashboards about images skip them)
    image_shape: tuple[int, int, int] | None = None

    @property
    def class_names(self) -> list[str] | None:
        """One name per class, ``None`` for images without labels."""
        if self._class_names is None and not self._splits:
            self.setup()
        return self._class_names

    @property
    def num_classes(self) -> int | None:
        names = self.class_names
        return None if names is None else len(names)

    def split_tensors(self, split: str) -> tuple[Tensor, Tensor | None]:
        """The uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)`` (``None`` without labels) of ``train``,
        ``val`` or ``test``; the official test split alone loads only its own files."""
        check_split(split)
        if split not in self._splits:
            test = self.load_test() if split == "test" else None
            if test is not None:
                self._splits["test"] = self._checked(test, "the test images")
            else:
                self.setup()
        return self._splits[split]

    def eval_metrics(self) -> dict[str, Metric]:
        """The validation/test metrics of this data's protocol, each a torchmetrics ``Metric`` updated with
        ``(x_hat, batch)``: here the squared error of the reconstruction against the clean examples (``mse``)."""
        return {"mse": ReconstructionMSE()}

    def sample_images(self, n: int, split: str = "val") -> tuple[Tensor, Tensor | None]:
        """The first ``n`` examples of a split as float ``(n, *shape)`` (images in [0, 1]) and their labels (or
        ``None``)."""
        x, y = self.split_tensors(split)
        return as_float(x[:n]), None if y is None else y[:n]

    # ------------------------------------------------------------------ splits
    def _checked(self, data: tuple[Tensor, Tensor | None], what: str) -> tuple[Tensor, Tensor | None]:
        x, y = data
        if x.dtype not in (torch.uint8, torch.float32, torch.int64) or x.ndim < 2:
            raise DataError(
                f"{self.name}: {what} must be uint8, float32 or int64 token ids (N, ...), got {x.dtype} "
                f"{tuple(x.shape)}"
            )
        if y is not None and len(y) != len(x):
            raise DataError(f"{self.name}: {what}: {len(x)} examples but {len(y)} labels")
        want = self.configured_shape
        if want is not None and tuple(x.shape[1:]) != want:
            raise ConfigError(
                f"data.shape={list(want)} but the {self.name} examples are {list(x.shape[1:])}: "
                "leave data.shape to its default (the models read the shape from the data)"
            )
        return x.contiguous(), (None if y is None else y.long())

    def check_global_batch(self) -> None:
        """Refuse, with a ConfigError naming ``data.batch_size``, a global batch that does not divide by the
        trainer's world size (every datamodule's ``setup`` calls it first)."""
        world = self.trainer.world_size if self.trainer is not None else 1
        if self.batch_size % world:
            raise ConfigError(
                f"data.batch_size={self.batch_size} is the global batch and must divide by the world size "
                f"{world}; set data.batch_size to a multiple of {world}."
            )

    def setup(self, stage: str | None = None) -> None:
        self.check_global_batch()
        if "train" in self._splits:
            return
        images, labels = self._checked(self.load_pool(), "the images")
        if self.train_classes is not None and labels is None:
            raise ConfigError(
                f"data.train_classes={self.train_classes} needs labelled images, but {self.name} has none: "
                "remove data.train_classes"
            )
        perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.split_seed))
        if "test" not in self._splits:
            test = self.load_test()
            if test is None:  # no official test split: a seeded subset of the images, never trained on
                n_test = split_count(self.test_size, len(images), "data.test_size")
                test_idx, perm = perm[:n_test], perm[n_test:]
                test = (images[test_idx], None if labels is None else labels[test_idx])
            self._splits["test"] = self._checked(test, "the test images")
        n_val = split_count(self.val_size, len(perm), "data.val_size")
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        for name, idx in (("train", train_idx), ("val", val_idx)):
            x, y = images[idx], None if labels is None else labels[idx]
            if self.train_classes is not None:
                keep = torch.isin(y, torch.tensor(self.train_classes))
                x, y = x[keep], y[keep]
            self._splits[name] = (x, y)

    # ------------------------------------------------------------------ loaders
    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _device(self) -> torch.device:
        if self.trainer is None:
            return torch.device("cpu")
        return self.trainer.strategy.root_device

    @property
    def resident(self) -> bool:
        """Whether batches are drawn from device-resident tensors (``resident: auto`` decided here)."""
        if self.resident_setting != "auto":
            return bool(self.resident_setting)
        device = self._device()
        if device.type != "cuda":
            return True
        need = sum(x.numel() for x, _ in self._splits.values()) or math.inf
        free, _ = torch.cuda.mem_get_info(device)
        return need <= free / 2

    def _loader(self, split: str, shuffle: bool):
        x, y = self.split_tensors(split)
        if y is None:  # unlabelled: batches keep their (images, labels) form with label -1
            y = torch.full((len(x),), -1, dtype=torch.long)
        rank, world = self._rank_world()
        per_rank = self.batch_size // world
        if shuffle:
            sampler = DistributedSampler(
                range(len(x)), num_replicas=world, rank=rank, shuffle=True, seed=self.shuffle_seed
            )
        else:  # evaluation: every image exactly once across ranks, no padding
            sampler = UnrepeatedDistributedSampler(
                range(len(x)), num_replicas=world, rank=rank, shuffle=False
            )
        if self.resident:
            if split not in self._device_splits or self._device_splits[split][0].device != self._device():
                self._device_splits[split] = (x.to(self._device()), y.to(self._device()))
            dx, dy = self._device_splits[split]
            return ResidentLoader(dx, dy, per_rank, sampler)
        return DataLoader(
            _TensorDataset(x, y),
            batch_size=per_rank,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        # Resident batches are already on the device: skip Lightning's generic walk over the batch.
        if all(isinstance(t, Tensor) and t.device == device for t in batch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def train_dataloader(self):
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False)


class ImageDataModule(TensorDataModule):
    """Any image set as uint8 tensors ``(N, C, H, W)``, with the data contract of :class:`aelab.data.ImageData`:
    a :class:`TensorDataModule` whose examples are images (pixels 0..255, float in [0, 1] in every batch).

    Args:
        as for :class:`TensorDataModule`; ``bounded`` must stay true (pixels are in [0, 1]).

    Raises:
        ConfigError: for ``bounded=false``; DataError: for examples that are not uint8 ``(N, C, H, W)``.
    """

    sample_kind = "image"
    #: the image shape when a subclass knows it before loading (MNIST); else derived or read from the data
    default_image_shape: tuple[int, int, int] | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not self.bounded:
            raise ConfigError("data.bounded=false: images are pixels in [0, 1]; leave data.bounded=true")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        if self.default_image_shape is not None:
            return tuple(self.default_image_shape)
        return tuple(super().shape)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of one example: ``(C, H, W)`` of every image."""
        return self.image_shape

    def eval_metrics(self) -> dict[str, Metric]:
        """The squared error (``mse``) and the PSNR (``psnr``: dB, the mean of the per-image PSNR, pixels in [0, 1])
        of the reconstruction against the clean images."""
        return {"mse": ReconstructionMSE(), "psnr": ReconstructionPSNR(example_ndim=3)}

    def _checked(self, data: tuple[Tensor, Tensor | None], what: str) -> tuple[Tensor, Tensor | None]:
        x, _ = data
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise DataError(f"{self.name}: {what} must be uint8 (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
        return super()._checked(data, what)
