"""Two real image sets that ship inside installed packages, so they need no download and nobody here made them.

* ``data=digits`` — scikit-learn's copy of the UCI optical handwritten digits (Alpaydin & Kaynak 1998): 1,797
  grey 8×8 images of 16 grey levels, 10 classes (:class:`DigitsDataModule`).
* ``data=photo_patches`` — RGB patches cut from the photographs that scikit-image, scikit-learn and matplotlib
  ship; the test patches come from photographs held out whole, never seen in training
  (:class:`PhotoPatchesDataModule`). The whole test photographs are available too (``test_photos``), for
  codecs that code any image size.
* ``data=photo_crops`` — the same photographs as fresh random crops of 128–256 px with flips every epoch, the
  way learned codecs train (Ballé et al. 2018, Sec. 4; CompressAI's examples) (:class:`PhotoCropsDataModule`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from aelab.data.base import ImageDataModule
from aelab.errors import ConfigError, MissingDataError


class DigitsDataModule(ImageDataModule):
    """scikit-learn's 8×8 handwritten digits (``sklearn.datasets.load_digits``): images ``(B, 1, 8, 8)`` in [0, 1].

    The 16 grey levels (0..16) are mapped to uint8 as ``round(v · 255 / 16)``. The set has no official test
    split: ``test`` is a seeded ``test_size`` subset (360 of 1,797 by default) and ``val`` a seeded subset of the
    rest.

    Args:
        data_dir, batch_size, val_size, test_size, split_seed, shuffle_seed, resident, num_workers, pin_memory,
            train_classes, shape, bounded: as for :class:`~aelab.data.ImageDataModule`.
    """

    name = "digits"
    default_image_shape = (1, 8, 8)
    default_class_names = tuple(str(d) for d in range(10))

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 64,
        val_size: int | float = 180,
        test_size: int | float = 360,
        **kwargs,
    ) -> None:
        super().__init__(
            data_dir=data_dir, batch_size=batch_size, val_size=val_size, test_size=test_size, **kwargs
        )

    def load_pool(self) -> tuple[Tensor, Tensor]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
        return torch.from_numpy(images), torch.from_numpy(digits.target.astype(np.int64))


#: (package, file) of each photograph: the first group trains (and validates), the second is held out whole
TRAIN_PHOTOS = (
    ("skimage", "astronaut.png"),
    ("skimage", "chelsea.png"),
    ("skimage", "coffee.png"),
    ("skimage", "rocket.jpg"),
    ("skimage", "motorcycle_left.png"),
    ("skimage", "hubble_deep_field.jpg"),
    ("sklearn", "china.jpg"),
)
TEST_PHOTOS = (
    ("sklearn", "flower.jpg"),
    ("matplotlib", "grace_hopper.jpg"),
    ("skimage", "ihc.png"),
)


def photo_path(package: str, name: str):
    """The file of a photograph bundled with ``package`` (scikit-image, scikit-learn or matplotlib)."""
    from pathlib import Path

    if package == "skimage":
        import skimage

        return Path(skimage.__file__).parent / "data" / name
    if package == "sklearn":
        import sklearn

        return Path(sklearn.__file__).parent / "datasets" / "images" / name
    if package == "matplotlib":
        import matplotlib

        return Path(matplotlib.get_data_path()) / "sample_data" / name
    raise ValueError(f"unknown photo package {package!r}")


def read_photo(package: str, name: str) -> Tensor:
    """A bundled photograph as uint8 RGB ``(3, H, W)``.

    Raises:
        MissingDataError: when the package or its file is missing (names the install command).
    """
    import PIL.Image

    try:
        path = photo_path(package, name)
    except ImportError:
        raise MissingDataError(
            f"data=photo_patches needs {package} (its bundled photographs): pip install scikit-image "
            "scikit-learn matplotlib"
        ) from None
    if not path.is_file():
        raise MissingDataError(f"{path} is missing from the installed {package}: reinstall {package}")
    with PIL.Image.open(path) as img:
        arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


def cut_patches(photo: Tensor, size: int, stride: int) -> Tensor:
    """Every ``size``×``size`` patch of a ``(C, H, W)`` photo on a grid of step ``stride``: ``(N, C, size, size)``."""
    patches = photo.unfold(1, size, stride).unfold(2, size, stride)  # (C, nh, nw, size, size)
    return patches.permute(1, 2, 0, 3, 4).reshape(-1, photo.shape[0], size, size).contiguous()


class PhotoPatchesDataModule(ImageDataModule):
    """RGB patches of bundled photographs: images ``(B, 3, P, P)`` in [0, 1], no labels (``data=photo_patches``).

    ``train`` and ``val`` are patches of the photographs in :data:`TRAIN_PHOTOS` (cut every ``stride`` pixels,
    ``val`` a seeded subset); ``test`` holds the non-overlapping patches of the photographs in
    :data:`TEST_PHOTOS`, held out whole. :meth:`test_photos` gives those photographs uncut.

    With ``augment``, training batches are fresh random ``P``×``P`` crops of the training photographs every epoch
    (as many per epoch as there are training patches), flipped and rotated by multiples of 90° at random, the way
    image models train (:class:`RandomCropLoader`); ``val`` and ``test`` stay the fixed patches.

    Args:
        patch_size: P, the side of a patch in pixels.
        stride: the step between training patches (P: no overlap).
        augment: random crops with flips and 90° rotations for training.
        data_dir, batch_size, val_size, split_seed, shuffle_seed, resident, num_workers, pin_memory,
            shape, bounded: as for :class:`~aelab.data.ImageDataModule`.
    """

    name = "photo_patches"

    def __init__(
        self,
        data_dir: str = "data",
        patch_size: int = 32,
        stride: int = 16,
        batch_size: int = 128,
        val_size: int | float = 0.1,
        train_classes: Sequence[int] | None = None,
        augment: bool = False,
        **kwargs,
    ) -> None:
        if train_classes is not None:
            raise ConfigError("data=photo_patches has no labels: remove data.train_classes")
        if int(patch_size) < 1 or int(stride) < 1:
            raise ConfigError(f"data.patch_size={patch_size} and data.stride={stride} must be positive")
        super().__init__(data_dir=data_dir, batch_size=batch_size, val_size=val_size, **kwargs)
        self.patch_size, self.stride, self.augment = int(patch_size), int(stride), bool(augment)
        self.default_image_shape = (3, self.patch_size, self.patch_size)

    def train_dataloader(self):
        if not self.augment:
            return super().train_dataloader()
        rank, world = self._rank_world()
        photos = [read_photo(*p) for p in TRAIN_PHOTOS]
        return RandomCropLoader(photos, self.patch_size, self.batch_size // world, len(self.split_tensors("train")[0]),
                                self.shuffle_seed, rank, world, self._device(), flips=True, rotations=True)  # fmt: skip

    def load_pool(self) -> tuple[Tensor, None]:
        return torch.cat(
            [cut_patches(read_photo(*p), self.patch_size, self.stride) for p in TRAIN_PHOTOS]
        ), None

    def load_test(self) -> tuple[Tensor, None]:
        return torch.cat([cut_patches(p, self.patch_size, self.patch_size) for p in self.test_photos()]), None

    def test_photos(self) -> list[Tensor]:
        """The held-out photographs, whole: uint8 ``(3, H, W)`` each (their sizes differ)."""
        return [read_photo(*p) for p in TEST_PHOTOS]


def random_crops(
    photos: Sequence[Tensor],
    n: int,
    size: int,
    generator: torch.Generator,
    flips: bool = True,
    rotations: bool = False,
) -> Tensor:
    """``n`` random ``size``×``size`` crops of uint8 photos ``(C, H, W)``: a photo drawn by its number of crop
    positions, a position uniformly, a horizontal flip with probability ½ (``flips``) and a rotation by a uniform
    multiple of 90° (``rotations``): ``(n, C, size, size)``."""
    positions = torch.tensor(
        [(p.shape[1] - size + 1) * (p.shape[2] - size + 1) for p in photos], dtype=torch.float64
    )
    which = torch.multinomial(positions, n, replacement=True, generator=generator)
    out = torch.empty(n, photos[0].shape[0], size, size, dtype=torch.uint8)
    for i, k in enumerate(which.tolist()):
        photo = photos[k]
        top = int(torch.randint(photo.shape[1] - size + 1, (1,), generator=generator))
        left = int(torch.randint(photo.shape[2] - size + 1, (1,), generator=generator))
        crop = photo[:, top : top + size, left : left + size]
        flip = flips and bool(torch.rand((), generator=generator) < 0.5)
        crop = crop.flip(-1) if flip else crop
        out[i] = (
            torch.rot90(crop, int(torch.randint(4, (1,), generator=generator)), (1, 2)) if rotations else crop
        )
    return out


class _EpochSeed:
    """The sampler Lightning sets the epoch on (``set_epoch``): the random crops' seed of the epoch."""

    def __init__(self, n: int) -> None:
        self.n, self.epoch = int(n), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n


class RandomCropLoader:
    """Training batches of fresh random crops every epoch (:func:`random_crops`), seeded by ``(seed, epoch,
    rank)``: ``(x (B, C, S, S) float32 in [0, 1], labels −1)`` on ``device``; ``crops_per_epoch // world`` crops per
    rank per epoch, whole batches only."""

    def __init__(self, photos, size: int, batch_size: int, crops_per_epoch: int, seed: int, rank: int, world: int,
                 device, flips: bool = True, rotations: bool = False) -> None:  # fmt: skip
        self.photos, self.size, self.flips, self.rotations = (
            list(photos),
            int(size),
            bool(flips),
            bool(rotations),
        )
        self.batch_size, self.seed, self.rank, self.device = int(batch_size), int(seed), int(rank), device
        self.sampler = _EpochSeed(int(crops_per_epoch) // int(world))
        self.batch_sampler = None

    def __len__(self) -> int:
        return max(1, len(self.sampler) // self.batch_size)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.sampler.epoch * 1009 + self.rank)
        for _ in range(len(self)):
            x = random_crops(self.photos, self.batch_size, self.size, g, self.flips, self.rotations)
            yield (
                x.to(self.device).float().div_(255.0),
                torch.full((len(x),), -1, dtype=torch.long, device=self.device),
            )


class PhotoCropsDataModule(PhotoPatchesDataModule):
    """Random crops of the bundled training photographs, fresh every epoch, with flips: images ``(B, 3, S, S)`` in
    [0, 1], no labels (``data=photo_crops``; for learned codecs, whose latent map should be at least 8×8 per crop).

    ``train`` draws ``crops_per_epoch`` new crops per epoch (seeded by ``shuffle_seed`` and the epoch); ``val`` is
    ``val_crops`` fixed crops (seeded by ``split_seed``) of the same photographs; ``test`` the non-overlapping
    ``S``×``S`` patches of the held-out photographs, and :meth:`test_photos` those photographs whole.

    Args:
        crop_size: S, the side of a crop in pixels (at most the smallest training photograph's side, 300).
        crops_per_epoch: crops per training epoch.
        val_crops: validation crops.
        flips: random horizontal flips.
        data_dir, batch_size, split_seed, shuffle_seed, resident, shape, bounded: as for
            :class:`~aelab.data.ImageDataModule`.

    Raises:
        ConfigError: a crop larger than a training photograph.
    """

    name = "photo_crops"

    def __init__(
        self,
        data_dir: str = "data",
        crop_size: int = 128,
        crops_per_epoch: int = 1024,
        val_crops: int = 64,
        flips: bool = True,
        batch_size: int = 8,
        **kwargs,
    ) -> None:
        super().__init__(data_dir=data_dir, patch_size=crop_size, stride=crop_size, batch_size=batch_size,
                         val_size=int(val_crops), **kwargs)  # fmt: skip
        self.crops_per_epoch, self.val_crops, self.flips = int(crops_per_epoch), int(val_crops), bool(flips)
        if self.crops_per_epoch < self.batch_size:
            raise ConfigError(
                f"data.crops_per_epoch={crops_per_epoch} is less than one batch (data.batch_size={batch_size})"
            )

    def _train_photos(self) -> list[Tensor]:
        photos = [read_photo(*p) for p in TRAIN_PHOTOS]
        smallest = min(min(p.shape[1:]) for p in photos)
        if self.patch_size > smallest:
            raise ConfigError(
                f"data.crop_size={self.patch_size} is larger than the smallest training photograph's side "
                f"({smallest} px): set data.crop_size to at most {smallest}"
            )
        return photos

    def load_pool(self) -> tuple[Tensor, None]:
        g = torch.Generator().manual_seed(self.split_seed)
        n = self.val_crops + min(
            self.crops_per_epoch, 256
        )  # val + a fixed sample of training crops (PCA, probes)
        return random_crops(self._train_photos(), n, self.patch_size, g, self.flips), None

    def train_dataloader(self):
        rank, world = self._rank_world()
        return RandomCropLoader(self._train_photos(), self.patch_size, self.batch_size // world,
                                self.crops_per_epoch, self.shuffle_seed, rank, world, self._device(), self.flips)  # fmt: skip
