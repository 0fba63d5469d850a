"""What the recommenders share: the float32 scoring, the multinomial likelihood, the checks of their arguments
and the MLP of their encoders and decoders."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "swish": F.silu}
CDAE_LOSSES = ("bce", "mse")


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


def check_positive_int(value, field: str, fix: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"model.{field}={value!r} must be a positive integer: {fix}")
    return int(value)


def check_dropout(value, field: str, fix: str) -> float:
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"model.{field}={value!r} must be in [0, 1): {fix}")
    return float(value)


def check_activation(value: str, field: str) -> str:
    if value not in ACTIVATIONS:
        raise ValueError(
            f"model.{field}={value!r} must be one of {tuple(ACTIVATIONS)}: e.g. model.{field}=tanh"
        )
    return value


def seeded_dropout(x: Tensor, p: float, generator: torch.Generator | None) -> Tensor:
    """Inverted dropout: each value kept with probability ``1 − p`` and scaled by ``1 / (1 − p)``; ``generator`` feeds
    the draw."""
    if p <= 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p
    return x * keep / (1.0 - p)


def check_items(x: Tensor, num_items: int, model: str) -> None:
    if x.ndim != 2 or x.shape[1] != num_items:
        raise ValueError(
            f"{model} was built for {num_items} items (model.num_items) but got a batch of shape {tuple(x.shape)}: "
            "leave model.num_items to ${data.shape.0}"
        )


class DenseStack(nn.Module):
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
