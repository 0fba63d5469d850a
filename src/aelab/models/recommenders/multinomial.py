"""Mult-DAE and Mult-VAE (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aelab.models import objectives
from aelab.models.outputs import ModelOutput
from aelab.models.recommenders.common import (
    ACTIVATIONS,
    DenseStack,
    check_activation,
    check_dropout,
    check_items,
    check_positive_int,
    float32_scores,
    multinomial_log_likelihood,
    seeded_dropout,
)


class _Multinomial(nn.Module):
    """What Mult-DAE and Mult-VAE share: the sizes, the checks, the L2-normalised input with dropout and the decoder
    ``latent_dim → reversed(hidden_dims) → num_items`` (Liang et al. 2018, §2 and §4.3)."""

    #: the data this model takes (the data contract's sample kinds): users' item vectors
    sample_kinds = ("interactions",)

    def __init__(
        self, num_items: int, hidden_dims: Sequence[int], latent_dim: int, dropout: float, activation: str
    ) -> None:
        super().__init__()
        self.num_items = check_positive_int(num_items, "num_items", "leave it to ${data.shape.0}")
        self.latent_dim = check_positive_int(latent_dim, "latent_dim", "e.g. model.latent_dim=200")
        hidden = list(hidden_dims)
        if not hidden or any(isinstance(h, bool) or int(h) != h or int(h) < 1 for h in hidden):
            raise ValueError(
                f"model.hidden_dims={hidden!r} must be positive widths: e.g. model.hidden_dims=[600]"
            )
        self.hidden_dims = tuple(int(h) for h in hidden)
        self.dropout = check_dropout(dropout, "dropout", "Liang et al. 2018 use model.dropout=0.5")
        self.activation = check_activation(activation, "activation")
        self.decoder = DenseStack(
            [self.latent_dim, *reversed(self.hidden_dims), self.num_items], self.activation
        )

    def inputs(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The encoder's input ``(B, I)``: each user's vector over its L2 norm (a user with no item stays zero), then
        dropout at rate ``dropout`` while training (Liang et al.'s code)."""
        h = F.normalize(x.float(), dim=1)
        return seeded_dropout(h, self.dropout, generator) if self.training else h

    def decode(self, z: Tensor) -> Tensor:
        """Item probabilities ``(B, I)`` (a softmax over the items) from codes ``(B, latent_dim)``."""
        return torch.softmax(self.decoder(z).float(), dim=-1)

    def reconstruct(self, x: Tensor) -> Tensor:
        """The deterministic item probabilities ``(B, I)`` the rankings use: ``decode(encode(x))``."""
        return self.decode(self.encode(x))

    def encode(self, x: Tensor) -> Tensor:  # pragma: no cover - each model defines its own
        raise NotImplementedError


class MultDAE(_Multinomial):
    """Mult-DAE (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018, §2): a denoising
    autoencoder with a multinomial likelihood.

    ``x → L2-normalise → dropout (training) → I → hidden_dims → latent_dim → reversed(hidden_dims) → I`` logits, an
    activation after every layer but the last (the code too, as in the authors' code); the item probabilities are the
    logits' softmax. Loss: ``−mean_u Σ_i x_ui log softmax(logits_u)_i`` (eq. 2), nats per user.

    Args:
        num_items: I, the item count (``${data.shape.0}``).
        hidden_dims: widths between the items and the code (600: the paper's 600-200-600, §4.3).
        latent_dim: size of the code (200, §4.3).
        dropout: the input dropout rate (0.5, §4.3), training only.
        activation: ``tanh`` (the paper's), ``relu``, ``sigmoid`` or ``swish``.

    Terms: ``nll`` (the loss). ``z``: the code ``(B, latent_dim)``.

    Raises:
        ValueError: for a non-positive size, a dropout outside [0, 1), an unknown activation, or (forward) a batch
            whose item count differs from ``num_items``.
    """

    def __init__(
        self,
        num_items: int,
        hidden_dims: Sequence[int] = (600,),
        latent_dim: int = 200,
        dropout: float = 0.5,
        activation: str = "tanh",
    ) -> None:
        super().__init__(num_items, hidden_dims, latent_dim, dropout, activation)
        self.encoder = DenseStack([self.num_items, *self.hidden_dims, self.latent_dim], self.activation)

    def encode(self, x: Tensor) -> Tensor:
        """Codes ``(B, latent_dim)`` of item vectors ``(B, I)`` (normalised, no dropout)."""
        return ACTIVATIONS[self.activation](self.encoder(F.normalize(x.float(), dim=1)))

    @float32_scores
    def forward(
        self, x: Tensor, generator: torch.Generator | None = None, step: int | None = None
    ) -> ModelOutput:
        """The objective of a batch of item vectors ``x`` ``(B, I)`` (``generator`` feeds the dropout; ``step`` is
        unused)."""
        check_items(x, self.num_items, "MultDAE")
        z = ACTIVATIONS[self.activation](self.encoder(self.inputs(x, generator)))
        logits = self.decoder(z)
        nll = -multinomial_log_likelihood(logits, x).mean()
        return ModelOutput(
            nll,
            logits,
            z,
            {"nll": nll.detach()},
            reconstruction=torch.softmax(logits.float(), -1),
            output="identity",
        )


class MultVAE(_Multinomial):
    """Mult-VAE (Liang et al., "Variational Autoencoders for Collaborative Filtering", WWW 2018, §2.2): a VAE with a
    multinomial likelihood and an annealed KL weight β.

    The encoder ``I → hidden_dims → 2·latent_dim`` (input L2-normalised, dropout while training) gives μ and log σ²
    of ``q(z|x)``; ``z = μ + σ ⊙ ε`` while training, ``z = μ`` in evaluation; the decoder
    ``latent_dim → reversed(hidden_dims) → I`` gives logits. Loss (the β-weighted ELBO per user, averaged over
    users, nats): ``−Σ_i x_i log softmax(logits)_i + β · KL(q(z|x) ‖ N(0, I))``, with
    ``β = min(anneal_cap, step / total_anneal_steps)`` while training (§2.2.2: linear annealing from 0, capped at
    0.2), and ``β = anneal_cap`` without a step (evaluation).

    Args:
        num_items, hidden_dims, latent_dim, dropout, activation: as for :class:`MultDAE` (600-200-600, dropout 0.5,
            tanh: §4.3).
        anneal_cap: the largest β (0.2, §2.2.2).
        total_anneal_steps: training steps over which β rises from 0 to 1 before the cap (the authors' notebook uses
            200000 updates; 20000 here, the cap being reached after 4000); 0 starts at the cap.

    Terms: ``nll`` (−E_q[log p(x|z)] per user), ``kl`` (nats per user), ``beta``. ``z``: μ ``(B, latent_dim)``.

    Raises:
        ValueError: as :class:`MultDAE`, and for ``anneal_cap`` outside [0, 1] or a negative ``total_anneal_steps``.
    """

    def __init__(
        self,
        num_items: int,
        hidden_dims: Sequence[int] = (600,),
        latent_dim: int = 200,
        dropout: float = 0.5,
        activation: str = "tanh",
        anneal_cap: float = 0.2,
        total_anneal_steps: int = 20000,
    ) -> None:
        super().__init__(num_items, hidden_dims, latent_dim, dropout, activation)
        if not 0.0 <= float(anneal_cap) <= 1.0:
            raise ValueError(f"model.anneal_cap={anneal_cap!r} must be in [0, 1]: Liang et al. 2018 use 0.2")
        if isinstance(total_anneal_steps, bool) or int(total_anneal_steps) < 0:
            raise ValueError(
                f"model.total_anneal_steps={total_anneal_steps!r} must be >= 0 (0: β at the cap from the start)"
            )
        self.anneal_cap, self.total_anneal_steps = float(anneal_cap), int(total_anneal_steps)
        self.encoder = DenseStack([self.num_items, *self.hidden_dims, 2 * self.latent_dim], self.activation)

    def beta(self, step: int | None) -> float:
        """β at training step ``step``: ``min(anneal_cap, step / total_anneal_steps)`` (Liang et al. 2018, §2.2.2);
        ``anneal_cap`` without a step or without annealing."""
        if step is None or self.total_anneal_steps == 0:
            return self.anneal_cap
        return min(self.anneal_cap, step / self.total_anneal_steps)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(μ, log σ²)``, each ``(B, latent_dim)``, of q(z|x) for item vectors ``(B, I)`` (no dropout)."""
        mu, logvar = self.encoder(F.normalize(x.float(), dim=1)).chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: Tensor) -> Tensor:
        """The posterior mean μ ``(B, latent_dim)``."""
        return self.posterior(x)[0]

    @float32_scores
    def forward(
        self, x: Tensor, generator: torch.Generator | None = None, step: int | None = None
    ) -> ModelOutput:
        """The objective of a batch of item vectors ``x`` ``(B, I)``; ``generator`` feeds the dropout and the
        posterior sample, ``step`` (the training step) the β schedule."""
        check_items(x, self.num_items, "MultVAE")
        mu, logvar = self.encoder(self.inputs(x, generator)).chunk(2, dim=1)
        z = objectives.reparameterize(mu, logvar, generator) if self.training else mu
        logits = self.decoder(z)
        nll = -multinomial_log_likelihood(logits, x).mean()
        kl = objectives.gaussian_kl(mu.float(), logvar.float()).mean()
        beta = self.beta(step if self.training else None)
        terms = {"nll": nll.detach(), "kl": kl.detach(), "beta": torch.tensor(beta, device=kl.device)}
        return ModelOutput(
            nll + beta * kl,
            logits,
            mu,
            terms,
            reconstruction=torch.softmax(logits.float(), -1),
            output="identity",
        )
