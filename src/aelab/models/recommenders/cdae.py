"""CDAE (Wu et al., "Collaborative Denoising Auto-Encoders for Top-N Recommender Systems", WSDM 2016)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aelab.errors import ConfigError
from aelab.models.outputs import ModelOutput
from aelab.models.recommenders.common import (
    ACTIVATIONS,
    CDAE_LOSSES,
    check_activation,
    check_dropout,
    check_items,
    check_positive_int,
    float32_scores,
    seeded_dropout,
)


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
        self.num_items = check_positive_int(num_items, "num_items", "leave it to ${data.shape.0}")
        self.num_users = check_positive_int(num_users, "num_users", "leave it to ${data.num_users}")
        self.latent_dim = check_positive_int(hidden_dim, "hidden_dim", "e.g. model.hidden_dim=200")
        # the input dropout rate (not named `corruption`: that attribute marks a model with a corruption module,
        # the Denoising protocol of aelab.models.capabilities)
        self.corruption_rate = check_dropout(
            corruption, "corruption", "e.g. model.corruption=0.5 (Wu et al. 2016)"
        )
        self.hidden_activation = check_activation(hidden_activation, "hidden_activation")
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
            raise ConfigError(
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
        check_items(x, self.num_items, "CDAE")
        x = x.float()
        x_in = seeded_dropout(x, self.corruption_rate, generator) if self.training else x
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
