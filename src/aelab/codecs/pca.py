"""PCA as a codec: the linear baseline of the same code size (scikit-learn's ``PCA``, fitted on the training
images)."""

from __future__ import annotations

import torch
from torch import Tensor


def fit_pca(train_images: Tensor, n_components: int, seed: int = 0):
    """scikit-learn PCA fitted on flattened float training images ``(N, C·H·W)`` in [0, 1]; at most as many
    components as the images have pixels (or images)."""
    from sklearn.decomposition import PCA

    x = train_images.float().flatten(1).numpy()
    k = min(int(n_components), x.shape[1], x.shape[0])
    return PCA(n_components=k, svd_solver="randomized", random_state=seed).fit(x)


def pca_decode(pca, codes: Tensor, shape: tuple[int, ...]) -> Tensor:
    """PCA codes ``(N, k)`` back to images ``(N, *shape)`` (``shape`` = ``(C, H, W)``), clamped to [0, 1]."""
    rec = pca.inverse_transform(codes.float().cpu().numpy())
    return torch.from_numpy(rec).float().clamp(0, 1).view(-1, *shape)


def pca_roundtrip(pca, images: Tensor) -> Tensor:
    """Project float images ``(N, C, H, W)`` onto the PCA subspace and back, clamped to [0, 1]."""
    codes = torch.from_numpy(pca.transform(images.float().flatten(1).numpy()))
    return pca_decode(pca, codes, tuple(images.shape[1:]))
