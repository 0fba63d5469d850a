"""Autoencoders for top-N recommendation from implicit feedback: plain ``torch.nn.Module`` s with no Lightning in them.

One example is a user's item vector ``x`` ``(I,)`` of 0/1 entries (batches ``(B, I)`` float32). Training batches are
``(x, users)``, ``users`` the int64 rows ``(B,)`` of the training users; validation and test batches are
``(fold-in items (B, I), held-out items (B, I))`` of users never seen in training (strong generalization, Liang et
al., "Variational Autoencoders for Collaborative Filtering", WWW 2018, §4.2). Every model's ``ModelOutput`` holds the
scores it ranks items by: ``reconstruction`` in the data's units (item probabilities: a softmax for the multinomial
models, a sigmoid for CDAE, EASE's scores themselves), ``logits`` the raw scores, ``output="identity"``.

* :class:`MultDAE`, :class:`MultVAE`: the multinomial denoising and variational autoencoders (Liang et al. 2018);
* :class:`RecVAE`: the composite prior, a KL weight per user and alternating encoder/decoder epochs (Shenbin et al.,
  "RecVAE: a New Variational Autoencoder for Top-N Recommendations with Implicit Feedback", WSDM 2020);
* :class:`CDAE`: a denoising autoencoder with a vector per training user (Wu et al., "Collaborative Denoising
  Auto-Encoders for Top-N Recommender Systems", WSDM 2016);
* :class:`EASE`: the closed-form item-item model (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data",
  WWW 2019), fitted once at the start of a run; :func:`ease_weights` is its formula.

Losses are means over users of per-user sums over items, in nats (EASE: a squared error in item units).
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aelab.models import objectives
from aelab.models.outputs import ModelOutput
from aelab.utils.ranking import mask_seen, ndcg_at_k

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "swish": F.silu}
CDAE_LOSSES = ("bce", "mse")
#: log σ² of the composite prior's broad component N(0, e^10 I) (Shenbin et al. 2020, the authors' code)
BROAD_LOGVAR = 10.0


# ---------------------------------------------------------------------------------------------- shared pieces


def float32_scores(forward):
    """Run a recommender's ``forward`` in float32 under any autocast (bf16-mixed training): item scores rounded to
    bf16 tie and reorder the ranking, so Recall@k and NDCG@k would depend on the trainer's precision."""

    @functools.wraps(forward)
    def wrapper(self, x: Tensor, *args, **kwargs):
        with torch.autocast(x.device.type, enabled=False):
            return forward(self, x.float(), *args, **kwargs)

    return wrapper


def multinomial_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x|z) of a multinomial likelihood per user, in nats: ``Σ_i x_i log softmax(logits)_i`` (Liang et al. 2018,
    eq. 2; the multinomial coefficient, constant in the model, is left out). ``(B, I), (B, I) → (B,)``; the softmax
    is taken in float32 under any autocast."""
    return (F.log_softmax(logits.float(), dim=-1) * x.float()).sum(-1)


def _check_positive_int(value, field: str, fix: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"model.{field}={value!r} must be a positive integer: {fix}")
    return int(value)


def _check_dropout(value, field: str, fix: str) -> float:
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"model.{field}={value!r} must be in [0, 1): {fix}")
    return float(value)


def _check_activation(value: str, field: str) -> str:
    if value not in ACTIVATIONS:
        raise ValueError(
            f"model.{field}={value!r} must be one of {tuple(ACTIVATIONS)}: e.g. model.{field}=tanh"
        )
    return value


def _dropout(x: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    """Inverted dropout: each value kept with probability ``1 − p`` and scaled by ``1 / (1 − p)``; ``generator`` feeds
    the draw."""
    if p <= 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p
    return x * keep / (1.0 - p)


def _check_items(x: Tensor, num_items: int, model: str) -> None:
    if x.ndim != 2 or x.shape[1] != num_items:
        raise ValueError(
            f"{model} was built for {num_items} items (model.num_items) but got a batch of shape {tuple(x.shape)}: "
            "leave model.num_items to ${data.shape.0}"
        )


class _MLP(nn.Module):
    """Linear layers of widths ``dims`` with ``activation`` between them (none after the last); Xavier-uniform weights
    and N(0, 0.001²) biases, the initialization of Liang et al.'s code."""

    def __init__(self, dims: Sequence[int], activation: str) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.activation = activation
        for layer in self.layers:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.normal_(layer.bias, std=0.001)

    def forward(self, h: Tensor) -> Tensor:
        act = ACTIVATIONS[self.activation]
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = act(h)
        return h


# ---------------------------------------------------------------------------------------------- Mult-DAE, Mult-VAE
class _Multinomial(nn.Module):
    """What Mult-DAE and Mult-VAE share: the sizes, the checks, the L2-normalised input with dropout and the decoder
    ``latent_dim → reversed(hidden_dims) → num_items`` (Liang et al. 2018, §2 and §4.3)."""

    #: the data this model takes (the data contract's sample kinds): users' item vectors
    sample_kinds = ("interactions",)

    def __init__(
        self, num_items: int, hidden_dims: Sequence[int], latent_dim: int, dropout: float, activation: str
    ) -> None:
        super().__init__()
        self.num_items = _check_positive_int(num_items, "num_items", "leave it to ${data.shape.0}")
        self.latent_dim = _check_positive_int(latent_dim, "latent_dim", "e.g. model.latent_dim=200")
        hidden = list(hidden_dims)
        if not hidden or any(isinstance(h, bool) or int(h) != h or int(h) < 1 for h in hidden):
            raise ValueError(
                f"model.hidden_dims={hidden!r} must be positive widths: e.g. model.hidden_dims=[600]"
            )
        self.hidden_dims = tuple(int(h) for h in hidden)
        self.dropout = _check_dropout(dropout, "dropout", "Liang et al. 2018 use model.dropout=0.5")
        self.activation = _check_activation(activation, "activation")
        self.decoder = _MLP([self.latent_dim, *reversed(self.hidden_dims), self.num_items], self.activation)

    def inputs(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The encoder's input ``(B, I)``: each user's vector over its L2 norm (a user with no item stays zero), then
        dropout at rate ``dropout`` while training (Liang et al.'s code)."""
        h = F.normalize(x.float(), dim=1)
        return _dropout(h, self.dropout, generator) if self.training else h

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
        self.encoder = _MLP([self.num_items, *self.hidden_dims, self.latent_dim], self.activation)

    def encode(self, x: Tensor) -> Tensor:
        """Codes ``(B, latent_dim)`` of item vectors ``(B, I)`` (normalised, no dropout)."""
        return ACTIVATIONS[self.activation](self.encoder(F.normalize(x.float(), dim=1)))

    @float32_scores
    def forward(
        self, x: Tensor, generator: torch.Generator | None = None, step: int | None = None
    ) -> ModelOutput:
        """The objective of a batch of item vectors ``x`` ``(B, I)`` (``generator`` feeds the dropout; ``step`` is
        unused)."""
        _check_items(x, self.num_items, "MultDAE")
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
        self.encoder = _MLP([self.num_items, *self.hidden_dims, 2 * self.latent_dim], self.activation)

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
        _check_items(x, self.num_items, "MultVAE")
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


# ---------------------------------------------------------------------------------------------- RecVAE
class RecVAEEncoder(nn.Module):
    """RecVAE's encoder (Shenbin et al. 2020, §3.1 and the authors' code): ``layers`` densely connected linear layers,
    ``h_k = LayerNorm(swish(W_k h_{k−1} + Σ_{j<k} h_j))``, then two linear heads for μ and log σ². Its input is the
    prepared item vector ``(B, I)`` (normalised, dropped out); it returns ``(μ, log σ²)``, each ``(B, latent_dim)``.
    LayerNorm's ε is 0.1, the authors'."""

    def __init__(
        self, num_items: int, hidden_dim: int, latent_dim: int, layers: int = 5, eps: float = 0.1
    ) -> None:
        super().__init__()
        self.linears = nn.ModuleList(
            nn.Linear(num_items if k == 0 else hidden_dim, hidden_dim) for k in range(layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(hidden_dim, eps=eps) for _ in range(layers))
        self.mu = nn.Linear(hidden_dim, latent_dim)
        self.logvar = nn.Linear(hidden_dim, latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        hs: list[Tensor] = []
        h = x
        for linear, norm in zip(self.linears, self.norms, strict=True):
            pre = linear(h)
            for earlier in hs:
                pre = pre + earlier
            h = norm(F.silu(pre))
            hs.append(h)
        return self.mu(h), self.logvar(h)


class RecVAE(nn.Module):
    """RecVAE (Shenbin et al., "RecVAE: a New Variational Autoencoder for Top-N Recommendations with Implicit
    Feedback", WSDM 2020): Mult-VAE with a denser encoder, a composite prior, a KL weight per user and alternating
    encoder and decoder epochs.

    * Encoder (§3.1): :class:`RecVAEEncoder` on the L2-normalised input, dropout while training in the encoder phase;
      ``q(z|x) = N(μ, σ²)``; ``z = μ + σ ⊙ ε`` while training, ``z = μ`` in evaluation. Decoder: one linear layer
      ``latent_dim → I``, multinomial likelihood (Liang et al. 2018, eq. 2).
    * Composite prior (§3.2): ``p(z|φ_old, x) = w₁ N(z|0, I) + w₂ q_φold(z|x) + w₃ N(z|0, e^10 I)``, ``q_φold`` the
      posterior of :attr:`prior_encoder`, a frozen copy of the encoder at its last update (:meth:`update_prior`).
      As in the authors' code (whose numbers the paper reports), the mixture is taken per latent coordinate and the
      log-densities summed over coordinates (:meth:`log_prior`).
    * KL weight (§3.3): ``β(x) = γ·|x|``, |x| the user's interaction count. The KL is the one-sample estimate
      ``log q(z|x) − log p(z|φ_old, x)`` at the ``z`` the decoder sees.
    * Alternating training (§3.4): :meth:`train_epoch_start` runs ``enc_epochs`` encoder epochs (decoder frozen,
      input dropout, loss ``nll + β(x)·kl``) then ``dec_epochs`` decoder epochs (encoder frozen, no dropout, loss
      ``nll`` alone: the KL has no gradient in the decoder, the authors' code steps the decoder on the same ELBO), and
      copies the encoder into the prior at the start of every encoder phase (epoch 0 included). Frozen parts have
      ``requires_grad=False``: their gradients stay ``None`` and Adam skips them. Until it is first called (a plain
      loop that never calls it) the model trains both parts at once, the encoder phase's loss.

    Args:
        num_items: I, the item count (``${data.shape.0}``).
        hidden_dim: width of the encoder's layers (600, §4).
        latent_dim: size of z (200, §4).
        dropout: the encoder phase's input dropout rate (0.5, §4).
        gamma: γ of ``β(x) = γ|x|`` (0.005, §4).
        prior_weights: ``(w₁, w₂, w₃)`` of N(0, I), q_φold and N(0, e^10 I) (3/20, 3/4, 1/10: the authors' code).
        enc_epochs, dec_epochs: epochs of each phase per cycle (3 and 1, §4).

    Terms: ``nll`` (per user), ``kl`` (the one-sample KL estimate per user, unweighted), ``beta`` (the batch's mean
    γ|x|). ``z``: μ ``(B, latent_dim)``. The loss is ``mean_u[nll_u + γ|x_u| kl_u]`` (encoder phase, joint training
    and evaluation) or ``mean_u nll_u`` (decoder phase), nats.

    Raises:
        ValueError: for a non-positive size or phase length, a dropout outside [0, 1), a negative γ, prior weights
            that are not three positive numbers summing to 1, or (forward) a batch whose item count differs from
            ``num_items``.
    """

    #: the data this model takes (the data contract's sample kinds): users' item vectors
    sample_kinds = ("interactions",)

    def __init__(
        self,
        num_items: int,
        hidden_dim: int = 600,
        latent_dim: int = 200,
        dropout: float = 0.5,
        gamma: float = 0.005,
        prior_weights: Sequence[float] = (3 / 20, 3 / 4, 1 / 10),
        enc_epochs: int = 3,
        dec_epochs: int = 1,
    ) -> None:
        super().__init__()
        self.num_items = _check_positive_int(num_items, "num_items", "leave it to ${data.shape.0}")
        self.hidden_dim = _check_positive_int(hidden_dim, "hidden_dim", "e.g. model.hidden_dim=600")
        self.latent_dim = _check_positive_int(latent_dim, "latent_dim", "e.g. model.latent_dim=200")
        self.dropout = _check_dropout(dropout, "dropout", "Shenbin et al. 2020 use model.dropout=0.5")
        if not float(gamma) >= 0.0:
            raise ValueError(f"model.gamma={gamma!r} must be >= 0: Shenbin et al. 2020 use model.gamma=0.005")
        self.gamma = float(gamma)
        weights = [float(w) for w in prior_weights]
        if len(weights) != 3 or min(weights) <= 0 or abs(sum(weights) - 1.0) > 1e-6:
            raise ValueError(
                f"model.prior_weights={list(prior_weights)!r} must be three positive weights summing to 1 "
                "(N(0, I), the old posterior, N(0, e^10 I)): e.g. model.prior_weights=[0.15,0.75,0.1]"
            )
        self.prior_weights = tuple(weights)
        self.enc_epochs = _check_positive_int(enc_epochs, "enc_epochs", "Shenbin et al. 2020 use 3")
        self.dec_epochs = _check_positive_int(dec_epochs, "dec_epochs", "Shenbin et al. 2020 use 1")
        self.encoder = RecVAEEncoder(self.num_items, self.hidden_dim, self.latent_dim)
        self.decoder = nn.Linear(self.latent_dim, self.num_items)
        self.prior_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.phase = "joint"

    # ------------------------------------------------------------------ alternating training
    def update_prior(self) -> None:
        """Copy the encoder's weights into the frozen :attr:`prior_encoder` (``q_φold`` of the composite prior)."""
        self.prior_encoder.load_state_dict(self.encoder.state_dict())

    def set_phase(self, phase: str) -> None:
        """``encoder``: the decoder frozen; ``decoder``: the encoder frozen; ``joint``: both train. A frozen part's
        parameters get ``requires_grad=False`` and their gradients are dropped."""
        if phase not in ("encoder", "decoder", "joint"):
            raise ValueError(f"phase must be encoder, decoder or joint, got {phase!r}")
        self.phase = phase
        for part, frozen in ((self.encoder, phase == "decoder"), (self.decoder, phase == "encoder")):
            for p in part.parameters():
                p.requires_grad_(not frozen)
                if frozen:
                    p.grad = None

    def train_epoch_start(self, epoch: int) -> None:
        """The phase of training epoch ``epoch`` (from 0): in each cycle of ``enc_epochs + dec_epochs`` epochs, the
        encoder phase first, then the decoder phase; the prior copies the encoder when an encoder phase begins
        (Shenbin et al. 2020, §3.4)."""
        position = int(epoch) % (self.enc_epochs + self.dec_epochs)
        if position == 0:
            self.update_prior()
        self.set_phase("encoder" if position < self.enc_epochs else "decoder")

    def param_groups(self) -> list[dict]:
        """The trainable parameters (the encoder and decoder; never the prior's frozen copy) as one optimizer group."""
        return [{"params": [*self.encoder.parameters(), *self.decoder.parameters()]}]

    # ------------------------------------------------------------------ probabilistic parts
    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(μ, log σ²)``, each ``(B, latent_dim)``, of q(z|x) for item vectors ``(B, I)`` (normalised, no
        dropout)."""
        return self.encoder(F.normalize(x.float(), dim=1))

    def log_prior(self, z: Tensor, x: Tensor) -> Tensor:
        """log p(z|φ_old, x) of the composite prior per user, nats: ``z (B, D), x (B, I) → (B,)``. Per coordinate d,
        ``log Σ_k w_k N(z_d; m_kd, s²_kd)`` over N(0, 1), the old posterior ``q_φold(z_d|x)`` and N(0, e^10), summed
        over d (Shenbin et al. 2020, §3.2, as the authors' code computes it)."""
        with torch.no_grad():
            mu_old, logvar_old = self.prior_encoder(F.normalize(x.float(), dim=1))
        z1 = z.float().unsqueeze(-1)  # (B, D, 1): objectives.log_normal sums over the last dimension
        zero = torch.zeros_like(z1)
        components = torch.stack(
            [
                objectives.log_normal(z1, zero, zero),
                objectives.log_normal(z1, mu_old.float().unsqueeze(-1), logvar_old.float().unsqueeze(-1)),
                objectives.log_normal(z1, zero, torch.full_like(z1, BROAD_LOGVAR)),
            ],
            dim=-1,
        )  # (B, D, 3)
        log_w = torch.tensor([math.log(w) for w in self.prior_weights], device=z.device)
        return torch.logsumexp(components + log_w, dim=-1).sum(-1)

    def encode(self, x: Tensor) -> Tensor:
        """The posterior mean μ ``(B, latent_dim)``."""
        return self.posterior(x)[0]

    def decode(self, z: Tensor) -> Tensor:
        """Item probabilities ``(B, I)`` (a softmax over the items) from codes ``(B, latent_dim)``."""
        return torch.softmax(self.decoder(z).float(), dim=-1)

    def reconstruct(self, x: Tensor) -> Tensor:
        """The deterministic item probabilities ``(B, I)`` the rankings use: ``decode(encode(x))``."""
        return self.decode(self.encode(x))

    # ------------------------------------------------------------------ the objective
    @float32_scores
    def forward(
        self, x: Tensor, generator: torch.Generator | None = None, step: int | None = None
    ) -> ModelOutput:
        """The objective of a batch of item vectors ``x`` ``(B, I)`` in the current phase; ``generator`` feeds the
        dropout and the posterior sample (``step`` is unused)."""
        _check_items(x, self.num_items, "RecVAE")
        decoder_phase = self.training and self.phase == "decoder"
        h = F.normalize(x.float(), dim=1)
        if self.training and not decoder_phase:
            h = _dropout(h, self.dropout, generator)
        mu, logvar = self.encoder(h)
        z = objectives.reparameterize(mu, logvar, generator) if self.training else mu
        logits = self.decoder(z)
        nll = -multinomial_log_likelihood(logits, x)
        beta = self.gamma * x.float().sum(1)  # β(x) = γ|x| (§3.3)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not decoder_phase):
            kl = objectives.log_normal(z.float(), mu.float(), logvar.float()) - self.log_prior(z, x)
        loss = nll.mean() if decoder_phase else (nll + beta * kl).mean()
        terms = {"nll": nll.mean().detach(), "kl": kl.mean().detach(), "beta": beta.mean().detach()}
        return ModelOutput(
            loss, logits, mu, terms, reconstruction=torch.softmax(logits.float(), -1), output="identity"
        )


# ---------------------------------------------------------------------------------------------- CDAE
class CDAE(nn.Module):
    """CDAE (Wu et al., "Collaborative Denoising Auto-Encoders for Top-N Recommender Systems", WSDM 2016): a
    one-hidden-layer denoising autoencoder with a learned vector per training user.

    ``x̃ = dropout(x)`` (rate ``corruption``, kept values scaled by ``1 / (1 − corruption)``, training only),
    ``h = act(W x̃ + V_u + b)``, ``logits = W' h + b'``, ``x̂ = sigmoid(logits)``. A held-out user,
    never seen in training, has no vector: ``users=None`` uses ``V_u = 0``. Loss (the paper's without its L2 term, which is
    the optimizer's weight decay): ``bce`` the binary cross-entropy summed over items (nats), or ``mse`` the squared
    error of x̂ summed over items; a mean over users. All items enter the loss (the paper samples negatives).

    Args:
        num_items: I, the item count (``${data.shape.0}``).
        num_users: rows of the user embedding V: the training split's user count (``${data.num_users}``).
        hidden_dim: K, the hidden width (the paper varies it).
        corruption: the input dropout rate q (the paper varies it; 0.5 is RecBole's default).
        hidden_activation: ``relu``, ``sigmoid`` (the paper's), ``tanh`` or ``swish``.
        loss: ``bce`` (the logistic loss) or ``mse`` (the square loss).

    Terms: ``recon`` (the loss). ``z``: the hidden layer ``(B, hidden_dim)``.

    Raises:
        ValueError: for a non-positive size, a corruption outside [0, 1), an unknown activation or loss, or
            (forward) a user index outside ``[0, num_users)`` or a batch whose item count differs from ``num_items``.
    """

    #: the data this model takes (the data contract's sample kinds): users' item vectors
    sample_kinds = ("interactions",)

    def __init__(
        self,
        num_items: int,
        num_users: int,
        hidden_dim: int = 200,
        corruption: float = 0.5,
        hidden_activation: str = "relu",
        loss: str = "bce",
    ) -> None:
        super().__init__()
        self.num_items = _check_positive_int(num_items, "num_items", "leave it to ${data.shape.0}")
        self.num_users = _check_positive_int(num_users, "num_users", "leave it to ${data.num_users}")
        self.latent_dim = _check_positive_int(hidden_dim, "hidden_dim", "e.g. model.hidden_dim=200")
        self.corruption = _check_dropout(
            corruption, "corruption", "e.g. model.corruption=0.5 (Wu et al. 2016)"
        )
        self.hidden_activation = _check_activation(hidden_activation, "hidden_activation")
        if loss not in CDAE_LOSSES:
            raise ValueError(f"model.loss={loss!r} must be one of {CDAE_LOSSES}: e.g. model.loss=bce")
        self.loss = loss
        self.encoder = nn.Linear(self.num_items, self.latent_dim)  # W, b
        self.user_embedding = nn.Embedding(self.num_users, self.latent_dim)  # V
        self.decoder = nn.Linear(self.latent_dim, self.num_items)  # W', b'
        for weight in (self.encoder.weight, self.user_embedding.weight, self.decoder.weight):
            nn.init.xavier_normal_(weight)
        nn.init.zeros_(self.encoder.bias)
        nn.init.zeros_(self.decoder.bias)

    @staticmethod
    def batch_kwargs(batch) -> dict[str, Tensor]:
        """``{"users": batch[1]}`` for a training batch ``(x, users)`` (``users`` int64 ``(B,)``, the training users'
        rows); ``{}`` for a held-out batch ``(fold-in, held-out)``, whose users have no vector."""
        if isinstance(batch, list | tuple) and len(batch) > 1:
            users = batch[1]
            if isinstance(users, Tensor) and users.ndim == 1 and users.dtype == torch.int64:
                return {"users": users}
        return {}

    def user_vectors(self, users: Tensor | None, like: Tensor) -> Tensor:
        """``V_u`` ``(B, hidden_dim)`` of user rows ``users`` ``(B,)``, zeros for ``None`` (users unseen in training).

        Raises:
            ValueError: for an index outside ``[0, num_users)``.
        """
        if users is None:
            return torch.zeros_like(like)
        if users.numel() and (int(users.min()) < 0 or int(users.max()) >= self.num_users):
            raise ValueError(
                f"CDAE has {self.num_users} user vectors (model.num_users) but got user indices in "
                f"[{int(users.min())}, {int(users.max())}]: set data.num_users to the training split's user count"
            )
        return self.user_embedding(users)

    def hidden(self, x_in: Tensor, users: Tensor | None = None) -> Tensor:
        """``h = act(W x_in + V_u + b)`` ``(B, hidden_dim)`` of prepared inputs ``(B, I)``."""
        pre = self.encoder(x_in)
        return ACTIVATIONS[self.hidden_activation](pre + self.user_vectors(users, pre))

    def encode(self, x: Tensor, users: Tensor | None = None) -> Tensor:
        """The hidden layer ``(B, hidden_dim)`` of item vectors ``(B, I)``, uncorrupted (zero user vectors without
        ``users``)."""
        return self.hidden(x.float(), users)

    def decode(self, z: Tensor) -> Tensor:
        """Item probabilities ``(B, I)`` (sigmoids) from hidden layers ``(B, hidden_dim)``."""
        return torch.sigmoid(self.decoder(z).float())

    def reconstruct(self, x: Tensor) -> Tensor:
        """The deterministic item probabilities ``(B, I)`` of users unseen in training: ``decode(encode(x))``."""
        return self.decode(self.encode(x))

    @float32_scores
    def forward(
        self,
        x: Tensor,
        generator: torch.Generator | None = None,
        step: int | None = None,
        users: Tensor | None = None,
    ) -> ModelOutput:
        """The objective of item vectors ``x`` ``(B, I)`` of the user rows ``users`` ``(B,)`` (``None``: users
        unseen in training, zero user vectors); ``generator`` feeds the corruption, ``step`` is unused."""
        _check_items(x, self.num_items, "CDAE")
        x = x.float()
        x_in = _dropout(x, self.corruption, generator) if self.training else x
        h = self.hidden(x_in, users)
        logits = self.decoder(h)
        if self.loss == "bce":
            per_user = F.binary_cross_entropy_with_logits(logits.float(), x, reduction="none").sum(1)
        else:
            per_user = (torch.sigmoid(logits.float()) - x).pow(2).sum(1)
        loss = per_user.mean()
        return ModelOutput(
            loss,
            logits,
            h,
            {"recon": loss.detach()},
            reconstruction=torch.sigmoid(logits.float()),
            output="identity",
        )


# ---------------------------------------------------------------------------------------------- EASE
def _gram(x: Tensor, device: torch.device | None = None, chunk: int = 4096) -> Tensor:
    """``XᵀX`` ``(I, I)`` in float64 on ``device`` (``x``'s by default), summed over chunks of users so no float64
    copy of the whole ``x`` ``(N, I)`` is made."""
    device = x.device if device is None else device
    n_items = x.shape[1]
    gram = torch.zeros(n_items, n_items, dtype=torch.float64, device=device)
    for rows in x.split(chunk):
        r = rows.to(device=device, dtype=torch.float64)
        gram += r.T @ r
    return gram


def _ease_from_gram(gram: Tensor, lam: float) -> Tensor:
    """Steck (2019), eq. 8, from the Gram matrix ``XᵀX`` ``(I, I)`` (float64): ``P = (XᵀX + λI)⁻¹``,
    ``B = I − P diagMat(1 ⊘ diag(P))``, ``diag(B) = 0``; float64."""
    g = gram.clone()
    g.diagonal().add_(float(lam))
    p = torch.cholesky_inverse(torch.linalg.cholesky(g))  # G is symmetric positive definite for λ > 0
    b = -p / p.diagonal()[None, :]
    b.diagonal().zero_()
    return b


def ease_weights(x: Tensor, lam: float) -> Tensor:
    """EASE's item-item weights ``B`` ``(I, I)`` (float32, on ``x``'s device) for users' 0/1 item vectors ``x``
    ``(N, I)`` and the L2 penalty ``λ > 0``: the closed form of Steck, "Embarrassingly Shallow Autoencoders for Sparse
    Data" (WWW 2019), eq. 8: ``G = XᵀX + λI``, ``P = G⁻¹``, ``B = I − P·diagMat(1 ⊘ diag(P))``, so ``diag(B) = 0``
    (the constraint of eq. 1). Computed in float64. A user's scores are ``x_u B``.

    Raises:
        ValueError: for ``λ <= 0`` or an ``x`` that is not 2-D.
    """
    if not float(lam) > 0:
        raise ValueError(f"EASE's λ={lam!r} must be > 0 (Steck 2019 tunes it, e.g. 500)")
    if x.ndim != 2:
        raise ValueError(f"EASE needs item vectors (N, I), got shape {tuple(x.shape)}")
    return _ease_from_gram(_gram(x), float(lam)).float()


class EASE(nn.Module):
    """EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019): scores ``x B`` with the
    item-item weights ``B`` ``(I, I)`` of :func:`ease_weights` (eq. 8), fitted once on the training users'
    vectors by :meth:`fit_start` (aelab's LightningModule calls it when a run starts). No parameter is trained: the
    module runs the epochs with no optimizer.

    ``λ``: ``lam`` when given, else the value of ``lambdas`` with the best mean NDCG@100 of the validation users'
    held-out items given their fold-in items (Steck tunes λ on held-out users). ``B`` and the chosen λ are buffers in
    the state dict (``lam_chosen`` NaN before the fit).

    Args:
        num_items: I, the item count (``${data.shape.0}``).
        lambdas: the grid λ is chosen from (positive).
        lam: a fixed λ (> 0); ``None`` chooses from ``lambdas``.

    The loss is ``mean_u Σ_i (x_ui − (x_u B)_i)²``, the training objective of eq. 1 per user (no gradient); no terms.
    ``reconstruction`` and ``logits`` are the scores ``x B`` ``(B, I)``; ``z`` is ``None`` (EASE has no code).

    Raises:
        ValueError: for a non-positive ``num_items``, an empty grid or a non-positive λ; in :meth:`fit_start`, training
            data whose item count differs from ``num_items`` or (choosing λ) no validation users with held-out items.
    """

    #: the data this model takes (the data contract's sample kinds): users' item vectors
    sample_kinds = ("interactions",)

    NDCG_K = 100

    def __init__(
        self,
        num_items: int,
        lambdas: Sequence[float] = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0),
        lam: float | None = None,
    ) -> None:
        super().__init__()
        self.num_items = _check_positive_int(num_items, "num_items", "leave it to ${data.shape.0}")
        grid = [float(v) for v in lambdas]
        if not grid or min(grid) <= 0:
            raise ValueError(
                f"model.lambdas={list(lambdas)!r} must be positive values: e.g. model.lambdas=[100,500]"
            )
        if lam is not None and not float(lam) > 0:
            raise ValueError(f"model.lam={lam!r} must be > 0, or null to choose it from model.lambdas")
        self.lambdas, self.lam = tuple(grid), None if lam is None else float(lam)
        self.register_buffer("B", torch.zeros(self.num_items, self.num_items))
        self.register_buffer("lam_chosen", torch.tensor(float("nan")))

    def scores(self, x: Tensor) -> Tensor:
        """Item scores ``x B`` ``(B, I)`` of item vectors ``(B, I)`` (higher ranks first)."""
        return x.to(self.B.dtype) @ self.B

    def reconstruct(self, x: Tensor) -> Tensor:
        """The scores the rankings use, ``x B`` ``(B, I)``."""
        return self.scores(x)

    @float32_scores
    def forward(
        self, x: Tensor, generator: torch.Generator | None = None, step: int | None = None
    ) -> ModelOutput:
        """Scores and squared error of item vectors ``x`` ``(B, I)`` (``generator`` and ``step`` are unused)."""
        _check_items(x, self.num_items, "EASE")
        scores = self.scores(x)
        loss = (x.float() - scores.float()).pow(2).sum(1).mean()
        return ModelOutput(loss, scores, None, {}, reconstruction=scores, output="identity")

    @torch.no_grad()
    def validation_ndcg(self, b: Tensor, fold_in: Tensor, heldout: Tensor, chunk: int = 4096) -> float:
        """Mean NDCG@100 over the users ``(N, I)`` with a held-out item, of the scores ``fold_in B`` with the fold-in
        items masked (:func:`aelab.utils.ranking.ndcg_at_k`); NaN without such a user."""
        total, count = 0.0, 0
        for rows, held in zip(fold_in.split(chunk), heldout.split(chunk), strict=True):
            rows, held = rows.to(b.device), held.to(b.device)
            values = ndcg_at_k(mask_seen(rows.to(b.dtype) @ b, rows), held, self.NDCG_K)
            ok = ~torch.isnan(values)
            total += float(values[ok].double().sum())
            count += int(ok.sum())
        return total / count if count else float("nan")

    @torch.no_grad()
    def fit_start(self, datamodule) -> str:
        """Fit ``B`` on the training users (``datamodule.split_tensors("train")[0]``), choosing λ on the validation
        users (``split_tensors("val")``: fold-in and held-out items) unless ``lam`` is fixed; returns a line for the
        log."""
        start = time.perf_counter()
        x = datamodule.split_tensors("train")[0]
        if x.ndim != 2 or x.shape[1] != self.num_items:
            raise ValueError(
                f"EASE was built for {self.num_items} items (model.num_items) but the training split holds "
                f"{tuple(x.shape)}: leave model.num_items to ${{data.shape.0}}"
            )
        device = self.B.device
        gram = _gram(x, device)
        if self.lam is not None:
            lam, chose = self.lam, f"λ={self.lam:g} (model.lam)"
        else:
            fold_in, heldout = datamodule.split_tensors("val")
            if heldout is None or fold_in.shape[0] == 0:
                raise ValueError(
                    "EASE chooses λ on the validation users' held-out items but the validation split has none: "
                    "fix λ with model.lam=500"
                )
            ndcg = {
                lam: self.validation_ndcg(_ease_from_gram(gram, lam).float(), fold_in, heldout)
                for lam in self.lambdas
            }
            if all(math.isnan(v) for v in ndcg.values()):
                raise ValueError(
                    "EASE chooses λ on the validation users' held-out items but none has a held-out item: "
                    "fix λ with model.lam=500"
                )
            lam = max(
                self.lambdas, key=lambda v: -math.inf if math.isnan(ndcg[v]) else ndcg[v]
            )  # ties: the first
            chose = f"λ={lam:g} chosen on {fold_in.shape[0]} validation users (NDCG@{self.NDCG_K} {ndcg[lam]:.3f})"
        self.B.copy_(_ease_from_gram(gram, lam).to(self.B.dtype))
        self.lam_chosen.fill_(lam)
        seconds = time.perf_counter() - start
        return f"EASE: {chose}; fitted on {x.shape[0]} users × {x.shape[1]} items in {seconds:.1f} s"

    def fit_start_tensors(self) -> list[Tensor]:
        """What :meth:`fit_start` sets, which every DDP rank receives from rank 0: ``[B, lam_chosen]``."""
        return [self.B, self.lam_chosen]


__all__ = [
    "CDAE",
    "EASE",
    "MultDAE",
    "MultVAE",
    "RecVAE",
    "RecVAEEncoder",
    "ease_weights",
    "multinomial_log_likelihood",
]
