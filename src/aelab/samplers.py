"""Samplers: where the codes of generated images come from, as classes apart from the models (as in pythae).

A sampler is fitted on a trained model (and the codes of its training images), then draws codes that the
model's decoder turns into images:

* :class:`PriorSampler` — the model's own prior ``N(0, I)`` (VAE, IWAE, WAE: models trained to match it);
* :class:`GaussianSampler` — one Gaussian (mean and full covariance) fitted to the training codes;
* :class:`GMMSampler` — a Gaussian mixture fitted to the training codes (scikit-learn's ``GaussianMixture``,
  10 components by default): the ex-post density estimation of Ghosh et al. 2020, "From Variational to
  Deterministic Autoencoders", Sec. 4;
* :class:`CategoricalSampler` — for vector-quantized codes: a categorical distribution over the codebook
  at each code position, fitted to the training codes' indices (the factorized baseline);
* :class:`AutoregressiveSampler` — for vector-quantized codes: a PixelCNN over the grid of indices, fitted to the
  training codes (van den Oord et al. 2017's prior).

``suite.sections.fid.samplers`` (conf/suite/*.yaml) chooses them by name; each gives a Fréchet distance
``test/generation/fid_<name>`` and a samples grid.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from aelab.checkpoint import atomic_torch_save
from aelab.models.capabilities import Generative, Quantized
from aelab.models.components.pixelcnn import PixelCNN


class Sampler(ABC):
    """Draws codes for ``model.decode``. Subclasses set :attr:`name` and implement :meth:`fit` and :meth:`sample`.

    Args:
        seed: seed of whatever the fit draws (the mixture's initialization).
    """

    name = "sampler"

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self.latent_dim: int | None = None

    def applies(self, model) -> bool:
        """Whether this sampler can draw codes for ``model``."""
        return not isinstance(model, Quantized)

    @abstractmethod
    def fit(self, model, train_codes: Tensor | None) -> Sampler:
        """Fit on ``model`` and the codes ``(N, latent_dim)`` of its training images; returns ``self``."""

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` codes ``(n, latent_dim)`` (float32, on the CPU unless the sampler says otherwise)."""


class PriorSampler(Sampler):
    """``z ~ N(0, I)``: the prior of a model that has one (:class:`~aelab.models.capabilities.Generative`).

    Draws on the generator's device, in the order a VAE's own ``sample`` draws them.
    """

    name = "prior"

    def applies(self, model) -> bool:
        return isinstance(model, Generative)

    def fit(self, model, train_codes: Tensor | None) -> PriorSampler:
        self.latent_dim = int(model.latent_dim)
        return self

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.randn((n, self.latent_dim), generator=generator, device=generator.device)


class GaussianSampler(Sampler):
    """One Gaussian ``N(μ, Σ)`` fitted to the training codes (mean and full covariance, ``1e-6 I`` added to Σ):
    the usual way to sample from a deterministic autoencoder."""

    name = "gaussian"

    def fit(self, model, train_codes: Tensor | None) -> GaussianSampler:
        if train_codes is None:
            raise ValueError("GaussianSampler needs the training codes")
        z = train_codes.double()
        self.latent_dim = z.shape[1]
        self.mean = z.mean(0)
        cov = torch.cov(z.T) + 1e-6 * torch.eye(z.shape[1], dtype=torch.float64)
        self.chol = torch.linalg.cholesky(cov)
        return self

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        eps = torch.randn(n, self.latent_dim, generator=generator, dtype=torch.float64)
        return (self.mean + eps @ self.chol.T).float()


class GMMSampler(Sampler):
    """A Gaussian mixture fitted to the training codes (scikit-learn ``GaussianMixture``, full covariances).

    Codes wider than ``max_dims`` are first projected on their ``max_dims`` principal components (scikit-learn's
    ``PCA``, fitted on the same codes): the mixture is fitted there with full covariances, and its draws are mapped
    back (``mean + draw @ components``) — a fit cubic in ``max_dims`` instead of the code size. :attr:`fit_dims`
    is the dimension the mixture lives in.

    Args:
        n_components: mixture components (Ghosh et al. 2020 use 10).
        max_codes: fit on at most this many training codes (a seeded subset; the fit is cubic in the code size).
        max_dims: the widest codes fitted directly (``None``: any width).
        seed: seed of the mixture's initialization, the subset and the draws.
    """

    name = "gmm"

    def __init__(
        self, n_components: int = 10, max_codes: int = 20000, max_dims: int | None = None, seed: int = 0
    ) -> None:
        super().__init__(seed)
        self.n_components = int(n_components)
        self.max_codes = int(max_codes)
        self.max_dims = None if max_dims is None else int(max_dims)
        self.projection: tuple[Tensor, Tensor] | None = None  # (mean (D,), components (d, D)) when projected

    def fit(self, model, train_codes: Tensor | None) -> GMMSampler:
        from sklearn.mixture import GaussianMixture

        if train_codes is None:
            raise ValueError("GMMSampler needs the training codes")
        z = train_codes.double()
        if len(z) > self.max_codes:
            idx = torch.randperm(len(z), generator=torch.Generator().manual_seed(self.seed))[: self.max_codes]
            z = z[idx]
        self.latent_dim = z.shape[1]
        if self.max_dims is not None and z.shape[1] > self.max_dims:
            from sklearn.decomposition import PCA

            pca = PCA(self.max_dims, random_state=self.seed).fit(z.numpy())
            self.projection = (torch.from_numpy(pca.mean_), torch.from_numpy(pca.components_))
            z = torch.from_numpy(pca.transform(z.numpy()))
        self.gmm = GaussianMixture(
            self.n_components, covariance_type="full", reg_covar=1e-6, random_state=self.seed
        ).fit(z.numpy())
        self.weights = torch.from_numpy(self.gmm.weights_)
        self.means = torch.from_numpy(self.gmm.means_)
        self.chols = torch.linalg.cholesky(torch.from_numpy(self.gmm.covariances_))
        return self

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        # component by the mixture weights, then a draw from that component's Gaussian (torch: seeded)
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.fit_dims, 1, generator=generator, dtype=torch.float64)
        draws = self.means[comp] + (self.chols[comp] @ eps).squeeze(-1)
        if self.projection is not None:
            mean, components = self.projection
            draws = mean + draws @ components
        return draws.float()

    @property
    def fit_dims(self) -> int:
        """The dimension of the mixture: the code size, or ``max_dims`` when the codes were projected."""
        return int(self.means.shape[1])


class CategoricalSampler(Sampler):
    """Per code position, a categorical distribution over the codebook fitted to the training codes' indices
    (add-one smoothing), for vector-quantized models (:class:`~aelab.models.capabilities.Quantized`)."""

    name = "categorical"

    def applies(self, model) -> bool:
        return isinstance(model, Quantized)

    def fit(self, model, train_codes: Tensor | None) -> CategoricalSampler:
        if train_codes is None:
            raise ValueError("CategoricalSampler needs the training codes")
        self.model = model
        idx = model.code_indices(train_codes)  # (N, positions)
        k = int(model.codebook_size)
        counts = torch.stack([torch.bincount(idx[:, p], minlength=k) for p in range(idx.shape[1])]).double()
        self.probs = (counts + 1) / (counts + 1).sum(1, keepdim=True)  # (positions, K)
        self.latent_dim = int(model.latent_dim)
        return self

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        idx = torch.multinomial(self.probs, n, replacement=True, generator=generator).T  # (n, positions)
        return self.model.codes_from_indices(idx).float().cpu()


class AutoregressiveSampler(Sampler):
    """For vector-quantized codes: a small PixelCNN (:class:`~aelab.models.components.pixelcnn.PixelCNN`) fitted
    to the training codes' index grids, sampled position by position — the autoregressive prior of van den Oord
    et al. 2017, Sec. 3.3 (the categorical sampler is its factorized baseline).

    Args:
        epochs: passes over the training codes (Adam, cross-entropy of each index given the ones before it).
        max_codes: fit on at most this many training codes (a seeded subset; ``None``: all).
        batch_size: grids per step.
        lr: Adam's learning rate.
        channels, layers: the PixelCNN's size.
        seed: seed of the fit (initialization, order) and nothing else; the draws use the caller's generator.

    After :meth:`fit`, :meth:`save` writes the fitted network to its own file.
    """

    name = "autoregressive"

    def __init__(
        self, epochs: int = 10, batch_size: int = 256, lr: float = 3e-3, channels: int = 64, layers: int = 5,
        max_codes: int | None = None, seed: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(seed)
        self.max_codes = None if max_codes is None else int(max_codes)
        self.epochs, self.batch_size, self.lr = int(epochs), int(batch_size), float(lr)
        self.channels, self.layers = int(channels), int(layers)
        if self.epochs < 1:
            raise ValueError(f"AutoregressiveSampler(epochs={epochs}) must train for at least one epoch")

    def applies(self, model) -> bool:
        return isinstance(model, Quantized)

    def fit(self, model, train_codes: Tensor | None) -> AutoregressiveSampler:
        if train_codes is None:
            raise ValueError("AutoregressiveSampler needs the training codes")
        self.model = model
        idx = model.code_indices(train_codes)  # (N, positions)
        self.grid = tuple(getattr(model, "grid", None) or (1, idx.shape[1]))
        grids = idx.view(len(idx), *self.grid)
        gen = torch.Generator().manual_seed(self.seed)
        if self.max_codes is not None and len(grids) > self.max_codes:
            grids = grids[torch.randperm(len(grids), generator=gen)[: self.max_codes]]
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            self.net = PixelCNN(int(model.codebook_size), self.channels, self.layers)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        self.net.train()
        for _ in range(self.epochs):
            for b in torch.randperm(len(grids), generator=gen).split(self.batch_size):
                loss = torch.nn.functional.cross_entropy(self.net(grids[b]), grids[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.net.eval()
        self.final_loss = float(loss)
        self.latent_dim = int(model.latent_dim)
        return self

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        idx = self.net.sample(n, self.grid, generator).flatten(1)  # (n, positions)
        return self.model.codes_from_indices(idx).float().cpu()

    def save(self, path) -> None:
        """The fitted network (state dict, grid, codebook size) to ``path``, atomically."""
        atomic_torch_save({"state_dict": self.net.state_dict(), "grid": list(self.grid),
                           "num_codes": self.net.num_codes}, path)  # fmt: skip


#: samplers by the name ``suite.sections.fid.samplers`` uses
SAMPLERS: dict[str, type[Sampler]] = {
    cls.name: cls
    for cls in (PriorSampler, GaussianSampler, GMMSampler, CategoricalSampler, AutoregressiveSampler)
}


def make_sampler(spec, **params) -> Sampler:
    """A sampler by name (one of :data:`SAMPLERS`), or from a config with ``_target_`` (a sampler class of your
    own package: ``suite.sections.fid.samplers=[gmm,{_target_: mypkg.MySampler, name: mine}]``; no edit inside
    aelab), built with ``params`` (the seed) and the config's own fields.

    Raises:
        ValueError: for an unknown name (lists the known ones), or a target that is not a :class:`Sampler`.
    """
    if isinstance(spec, str):
        if spec not in SAMPLERS:
            raise ValueError(f"unknown sampler {spec!r}; choose from {sorted(SAMPLERS)} or give a _target_")
        return SAMPLERS[spec](**params)
    from hydra.utils import instantiate

    spec = dict(spec)
    name = spec.pop("name", None)
    sampler = instantiate(spec, **params)
    if not isinstance(sampler, Sampler):
        raise ValueError(f"{spec.get('_target_')} is not an aelab.samplers.Sampler")
    if name:
        sampler.name = str(name)
    return sampler


@torch.no_grad()
def generate(model, sampler: Sampler, n: int, *, seed: int, batch_size: int, device) -> Tensor:
    """``n`` images ``(n, C, H, W)`` in [0, 1]: ``model.decode`` of the sampler's codes, drawn in batches of
    ``batch_size`` from a generator seeded with ``seed`` (on ``device`` for the prior, on the CPU otherwise)."""
    on_device = isinstance(sampler, PriorSampler)
    gen = torch.Generator(device=device if on_device else "cpu").manual_seed(int(seed))
    out = []
    for i in range(0, n, batch_size):
        codes = sampler.sample(min(batch_size, n - i), gen)
        out.append(model.decode(codes.to(device)).float().cpu())
    return torch.cat(out)
