"""RecVAE (Shenbin et al., "RecVAE: a New Variational Autoencoder for Top-N Recommendations with Implicit Feedback",
WSDM 2020)."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aelab.models import objectives
from aelab.models.outputs import ModelOutput
from aelab.models.recommenders.common import (
    check_dropout,
    check_items,
    check_positive_int,
    float32_scores,
    multinomial_log_likelihood,
    seeded_dropout,
)

#: log σ² of the composite prior's broad component N(0, e^10 I) (Shenbin et al. 2020, the authors' code)
BROAD_LOGVAR = 10.0


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
    #: why this model runs in one process only (DDP's gradient reduction expects the same trainable parameters each step)
    single_process = (
        "RecVAE freezes its encoder and decoder in turn, which DDP's gradient reduction does not allow"
    )

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
        self.num_items = check_positive_int(num_items, "num_items", "leave it to ${data.shape.0}")
        self.hidden_dim = check_positive_int(hidden_dim, "hidden_dim", "e.g. model.hidden_dim=600")
        self.latent_dim = check_positive_int(latent_dim, "latent_dim", "e.g. model.latent_dim=200")
        self.dropout = check_dropout(dropout, "dropout", "Shenbin et al. 2020 use model.dropout=0.5")
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
        self.enc_epochs = check_positive_int(enc_epochs, "enc_epochs", "Shenbin et al. 2020 use 3")
        self.dec_epochs = check_positive_int(dec_epochs, "dec_epochs", "Shenbin et al. 2020 use 1")
        self.encoder = RecVAEEncoder(self.num_items, self.hidden_dim, self.latent_dim)
        self.decoder = nn.Linear(self.latent_dim, self.num_items)
        self.prior_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        # the epoch whose start last copied the encoder into the prior (-1: none yet); saved in checkpoints
        self.register_buffer("prior_epoch", torch.tensor(-1, dtype=torch.long))
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
        if position == 0 and int(self.prior_epoch) != int(
            epoch
        ):  # once per phase, even across a mid-epoch resume
            self.update_prior()
            self.prior_epoch.fill_(int(epoch))
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
        check_items(x, self.num_items, "RecVAE")
        decoder_phase = self.training and self.phase == "decoder"
        h = F.normalize(x.float(), dim=1)
        if self.training and not decoder_phase:
            h = seeded_dropout(h, self.dropout, generator)
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
