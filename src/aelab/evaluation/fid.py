"""Generation quality: a Fréchet distance on the features of a classifier trained inside aelab on the data.

The Fréchet Inception Distance (Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a
Local Nash Equilibrium", NeurIPS 2017, eq. 6) compares two sets of images through the mean and covariance of
a network's features: ``‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½)``. Inception features mean little on 28×28
digits or 8×8 images, so aelab uses the 128-d penultimate layer of a small CNN classifier of the data's own
classes (:class:`FeatureClassifier`: input shape and class count from the data), trained deterministically on
the training split and cached by a fingerprint of that split; its test accuracy is reported beside the
distance. torchmetrics' ``FrechetInceptionDistance`` computes the distance with it as the feature extractor.
The distance between the training and the test images is the floor a generator can hope for. Data without
labels has no such classifier: the section says so and is skipped.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aelab.checkpoint import atomic_torch_save
from aelab.evaluation.metrics import batches, to_float

log = logging.getLogger("aelab")


class FeatureClassifier(nn.Module):
    """A CNN classifier of images ``(B, C, H, W)`` in [0, 1]; ``forward`` returns its 128-d penultimate features
    (what the distance uses), :meth:`logits` the ``(B, num_classes)`` class scores.

    Two stride-2 convolutions take ``H × W`` to ``ceil(ceil(H/2)/2) × ...`` (7×7 for MNIST), then a linear layer to
    the features.

    Args:
        image_shape: ``(C, H, W)`` of the data.
        num_classes: classes of the data.
    """

    num_features = 128

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10) -> None:
        super().__init__()
        c, h, w = (int(s) for s in image_shape)
        gh, gw = math.ceil(math.ceil(h / 2) / 2), math.ceil(math.ceil(w / 2) / 2)
        self.body = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),  # H/2 (14×14 for MNIST)
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1),  # H/4 (7×7)
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * gh * gw, self.num_features),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.num_features, int(num_classes)))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x.float())

    def logits(self, x: Tensor) -> Tensor:
        return self.head(self(x))


def split_fingerprint(images: Tensor, labels: Tensor) -> str:
    """SHA-256 (hex) of a split's uint8 images and labels: what a cached classifier was trained on."""
    h = hashlib.sha256(f"{tuple(images.shape)}|".encode())
    h.update(images.contiguous().numpy().tobytes())
    h.update(labels.long().contiguous().numpy().tobytes())
    return h.hexdigest()


#: the feature classifiers of the bundled sets' default splits, shipped in the package (trained by
#: ``scripts/train_feature_classifiers.py``, their accuracies in ``classifiers.json`` beside them)
SHIPPED_DIR = Path(__file__).parent / "weights"


def classifier_file(images: Tensor, labels: Tensor, num_classes: int, steps: int, seed: int) -> str:
    """The file name of the classifier of a training split: its fingerprint (:func:`split_fingerprint`), the class
    count, the steps and the seed."""
    return f"features_{split_fingerprint(images, labels)[:20]}_k{num_classes}_t{steps}_s{seed}.pt"


def classifier(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    cache_dir: str | Path,
    device: torch.device | str = "cpu",
    steps: int = 3000,
    seed: int = 0,
    num_classes: int | None = None,
    shipped_dir: str | Path | None = None,
) -> tuple[FeatureClassifier, float, str]:
    """The feature network, loaded from the weights shipped in the package (``shipped_dir``, default
    :data:`SHIPPED_DIR`: the bundled sets' default splits), else from ``cache_dir``, else trained on ``train``
    (uint8 images ``(N, C, H, W)``, labels) and cached; returns ``(network in eval mode, test accuracy in [0, 1],
    where it came from: "shipped", "cached" or "trained")``.

    Training is seeded: AdamW (weight decay 0.01), batch 256, ``steps`` steps whatever the size of the set (a small set
    such as the 8×8 digits gets as many updates as MNIST, which a fixed number of epochs did not give it: 53% test
    accuracy after 2 epochs, 98.1% after 3,000 steps), the learning rate cosine-decayed from 1e-3, dropout 0.3 before
    the class layer; the cache file is keyed by the training split's fingerprint (:func:`split_fingerprint`), the
    steps and the seed, and read with ``weights_only=True``.
    """

    images, labels = train
    shape = tuple(images.shape[1:])
    k = int(num_classes if num_classes is not None else int(labels.max()) + 1)
    name = classifier_file(images, labels, k, steps, seed)
    path = Path(cache_dir) / name
    for source, found in (("shipped", Path(shipped_dir or SHIPPED_DIR) / name), ("cached", path)):
        if (
            found.is_file()
        ):  # the name holds the training split's fingerprint: a file for another split never matches
            net = FeatureClassifier(shape, k).to(device)
            state = torch.load(found, map_location="cpu", weights_only=True)
            net.load_state_dict(state["state_dict"])
            return net.eval(), float(state["test_acc"]), source
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = FeatureClassifier(shape, k).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, int(steps)))
    net.train()
    batch = min(256, len(images))
    for _ in range(int(steps)):
        idx = torch.randint(len(images), (batch,), generator=gen)
        loss = F.cross_entropy(net.logits(to_float(images[idx]).to(device)), labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net.logits(b).argmax(1).cpu() for b in batches(test[0], 1000, device)])
    acc = (pred == test[1]).float().mean().item()
    atomic_torch_save({"state_dict": net.state_dict(), "test_acc": acc}, path)
    log.info("feature classifier trained here (%d steps; no shipped weights for this split): test accuracy %.4f, "
             "cached in %s", steps, acc, path)  # fmt: skip
    return net, acc, "trained"


@torch.no_grad()
def frechet_distance(net: FeatureClassifier, real: Tensor, fake: Tensor, batch_size: int, device) -> float:
    """Fréchet distance between two image sets (uint8 or float ``(N, C, H, W)`` in [0, 1])
    on ``net``'s features (torchmetrics' ``FrechetInceptionDistance`` with a custom feature extractor)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=net, normalize=True).to(device)
    for is_real, images in ((True, real), (False, fake)):
        for b in batches(images, batch_size, device):
            fid.update(b, real=is_real)
    return float(fid.compute())
