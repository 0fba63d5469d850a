"""Generation quality: a Fréchet distance on the features of an MNIST classifier trained inside aelab.

The Fréchet Inception Distance (Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a
Local Nash Equilibrium", NeurIPS 2017, eq. 6) compares two sets of images through the mean and covariance of
a network's features: ``‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½)``. Inception features mean little on 28×28
digits, so aelab uses the 128-d penultimate layer of a small CNN digit classifier (:class:`MNISTFeatures`),
trained deterministically on the training split and cached; its test accuracy is reported beside the
distance. torchmetrics' ``FrechetInceptionDistance`` computes the distance with it as the feature extractor.
The distance between the training and the test images is the floor a generator can hope for.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aelab.evaluation.metrics import batches, to_float
from aelab.models.capabilities import Generative

log = logging.getLogger("aelab")


class MNISTFeatures(nn.Module):
    """A CNN digit classifier; ``forward`` returns its 128-d penultimate features (what the distance uses).

    Input ``(B, 1, 28, 28)`` float in [0, 1]; :meth:`logits` gives ``(B, 10)``.
    """

    num_features = 128

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),  # 14×14
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1),  # 7×7
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, self.num_features),
            nn.ReLU(),
        )
        self.head = nn.Linear(self.num_features, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x.float())

    def logits(self, x: Tensor) -> Tensor:
        return self.head(self(x))


def classifier(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    cache_dir: str | Path,
    device: torch.device | str = "cpu",
    epochs: int = 2,
    seed: int = 0,
) -> tuple[MNISTFeatures, float]:
    """The feature network, trained on ``train`` (uint8 images ``(N, 28, 28)``, labels) or loaded from
    ``cache_dir``; returns ``(network in eval mode, test accuracy in [0, 1])``.

    Training is seeded (Adam 1e-3, batch 256, ``epochs`` epochs); the cache file is keyed by the seed, epochs
    and the training set's size, and read with ``weights_only=True``.
    """
    from aelab.utils.checkpoint_io import atomic_torch_save

    images, labels = train
    path = Path(cache_dir) / f"mnist_features_n{len(images)}_e{epochs}_s{seed}.pt"
    net = MNISTFeatures().to(device)
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state["state_dict"])
        return net.eval(), float(state["test_acc"])
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = MNISTFeatures().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(images), generator=gen)
        for i in range(0, len(images), 256):
            idx = perm[i : i + 256]
            x, y = to_float(images[idx]).to(device), labels[idx].to(device)
            loss = F.cross_entropy(net.logits(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net.logits(b).argmax(1).cpu() for b in batches(test[0], 1000, device)])
    acc = (pred == test[1]).float().mean().item()
    atomic_torch_save({"state_dict": net.state_dict(), "test_acc": acc}, path)
    log.info(
        "MNIST feature classifier trained (%d epochs): test accuracy %.4f, cached in %s", epochs, acc, path
    )
    return net, acc


@torch.no_grad()
def frechet_distance(net: MNISTFeatures, real: Tensor, fake: Tensor, batch_size: int, device) -> float:
    """Fréchet distance between two image sets (uint8 ``(N, 28, 28)`` or float ``(N, 1, 28, 28)`` in [0, 1])
    on ``net``'s features (torchmetrics' ``FrechetInceptionDistance`` with a custom feature extractor)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=net, normalize=True).to(device)
    for is_real, images in ((True, real), (False, fake)):
        for b in batches(images, batch_size, device):
            fid.update(b, real=is_real)
    return float(fid.compute())


@torch.no_grad()
def generate(model, n: int, train_codes: Tensor | None, seed: int, batch_size: int, device) -> Tensor:
    """``n`` generated images ``(n, 1, 28, 28)`` in [0, 1]: prior samples for a model with ``sample`` (VAE);
    otherwise decodes of codes drawn from a Gaussian fitted to the training codes ``(N, d)`` (mean and full
    covariance), the usual way to sample from a deterministic autoencoder."""
    gen = torch.Generator(device=device).manual_seed(seed)
    out = []
    if isinstance(model, Generative):
        for i in range(0, n, batch_size):
            out.append(model.sample(min(batch_size, n - i), generator=gen).cpu())
        return torch.cat(out)
    if train_codes is None:
        raise ValueError("a model without sample() needs its training codes to be sampled from")
    z = train_codes.double()
    mu, cov = z.mean(0), torch.cov(z.T) + 1e-6 * torch.eye(z.shape[1], dtype=torch.float64)
    chol = torch.linalg.cholesky(cov)
    cpu_gen = torch.Generator().manual_seed(seed)
    for i in range(0, n, batch_size):
        eps = torch.randn(min(batch_size, n - i), z.shape[1], generator=cpu_gen, dtype=torch.float64)
        codes = (mu + eps @ chol.T).float().to(device)
        out.append(model.decode(codes).cpu())
    return torch.cat(out)
