"""Two real image sets that ship inside installed packages, so they need no download and nobody here made them.

* ``data=digits`` — scikit-learn's copy of the UCI optical handwritten digits (Alpaydin & Kaynak 1998): 1,797
  grey 8×8 images of 16 grey levels, 10 classes (:class:`DigitsDataModule`).
* ``data=photo_patches`` — RGB patches cut from the photographs that scikit-image, scikit-learn and matplotlib
  ship; the test patches come from photographs held out whole, never seen in training
  (:class:`PhotoPatchesDataModule`). The whole test photographs are available too (``test_photos``), for
  codecs that code any image size.
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
            train_classes, image_shape: as for :class:`~aelab.data.ImageDataModule`.
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

    Args:
        patch_size: P, the side of a patch in pixels.
        stride: the step between training patches (P: no overlap).
        data_dir, batch_size, val_size, split_seed, shuffle_seed, resident, num_workers, pin_memory,
            image_shape: as for :class:`~aelab.data.ImageDataModule`.
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
        **kwargs,
    ) -> None:
        if train_classes is not None:
            raise ConfigError("data=photo_patches has no labels: remove data.train_classes")
        if int(patch_size) < 1 or int(stride) < 1:
            raise ConfigError(f"data.patch_size={patch_size} and data.stride={stride} must be positive")
        super().__init__(data_dir=data_dir, batch_size=batch_size, val_size=val_size, **kwargs)
        self.patch_size, self.stride = int(patch_size), int(stride)
        self.default_image_shape = (3, self.patch_size, self.patch_size)

    def load_pool(self) -> tuple[Tensor, None]:
        return torch.cat(
            [cut_patches(read_photo(*p), self.patch_size, self.stride) for p in TRAIN_PHOTOS]
        ), None

    def load_test(self) -> tuple[Tensor, None]:
        return torch.cat([cut_patches(p, self.patch_size, self.patch_size) for p in self.test_photos()]), None

    def test_photos(self) -> list[Tensor]:
        """The held-out photographs, whole: uint8 ``(3, H, W)`` each (their sizes differ)."""
        return [read_photo(*p) for p in TEST_PHOTOS]
