"""Encoders and decoders of windows of a series ``(B, T, C)`` (``T`` points, ``C`` channels): 1-D convolutions, an
LSTM or GRU and a Transformer. The encoders also read a sentence's token embeddings ``(B, T, E)`` with its padding
mask (the text models'). Each encoder maps ``(B, T, C)`` to ``(B, out_dim)`` and each decoder maps a code
``(B, latent_dim)`` to ``(B, T, C)`` (values in the data's scaled units; the model's output activation follows), so
the AE, DAE and VAE take them as they take the MLP parts (``model/encoder=conv1d|lstm|transformer``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from aelab.models.components.mlp import activation_module


def _series_shape(shape: Sequence[int], key: str) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2:
        raise ValueError(
            f"{key}={list(shape)}: the sequence parts take windows of a series (T, C); use model/encoder=mlp for "
            "other data"
        )
    return shape  # type: ignore[return-value]


class Conv1dEncoder(nn.Module):
    """Stride-2 ``Conv1d → act`` stages over time (``T → T/2 → ...``), flattened, then a linear map to ``out_dim``.

    Args:
        out_dim: output features (``latent_dim``; ``2 * latent_dim`` for a VAE).
        channels: channels of the stride-2 stages.
        in_shape: the window ``(T, C)``.
        kernel_size: the convolutions' width in points (odd).
        activation: hidden activation name.

    Shapes: ``(B, T, C)`` → ``(B, out_dim)``.
    """

    def __init__(
        self,
        out_dim: int = 16,
        channels: Sequence[int] = (32, 64),
        in_shape: Sequence[int] = (100, 1),
        kernel_size: int = 5,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.out_dim, self.in_shape = int(out_dim), _series_shape(in_shape, "model.encoder.in_shape")
        if int(kernel_size) % 2 == 0:
            raise ValueError(
                f"model.encoder.kernel_size={kernel_size} must be odd (the stages halve T exactly)"
            )
        t, c = self.in_shape
        layers: list[nn.Module] = []
        for ch in channels:
            layers += [nn.Conv1d(c, int(ch), kernel_size, stride=2, padding=kernel_size // 2),
                       activation_module(activation)]  # fmt: skip
            c, t = int(ch), (t + 1) // 2
        self.convs = nn.Sequential(*layers)
        self.head = nn.Linear(c * t, self.out_dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is not None:  # padding reads as zeros
            x = x * mask[..., None].to(x.dtype)
        return self.head(self.convs(x.transpose(1, 2)).flatten(1))


class Conv1dDecoder(nn.Module):
    """A linear map to a short feature sequence, stride-2 ``ConvTranspose1d → act`` stages back to ``T`` points,
    then a ``Conv1d`` to the ``C`` channels (cropped to ``T``).

    Args:
        latent_dim: the code size.
        channels: channels of the stages, code side first.
        out_shape: the window ``(T, C)``.
        kernel_size: the convolutions' width (odd).
        activation: hidden activation name.

    Shapes: ``(B, latent_dim)`` → ``(B, T, C)``.
    """

    def __init__(
        self,
        latent_dim: int = 16,
        channels: Sequence[int] = (64, 32),
        out_shape: Sequence[int] = (100, 1),
        kernel_size: int = 5,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.latent_dim, self.out_shape = int(latent_dim), _series_shape(out_shape, "model.decoder.out_shape")
        t, c = self.out_shape
        self.t0 = math.ceil(t / 2 ** len(channels))
        self.c0 = int(channels[0]) if channels else c
        self.fc = nn.Linear(self.latent_dim, self.c0 * self.t0)
        layers: list[nn.Module] = [activation_module(activation)]
        prev = self.c0
        for ch in channels:
            layers += [
                nn.ConvTranspose1d(prev, int(ch), 4, stride=2, padding=1),
                activation_module(activation),
            ]
            prev = int(ch)
        self.deconvs = nn.Sequential(*layers)
        self.out = nn.Conv1d(prev, c, kernel_size, padding=kernel_size // 2)

    def forward(self, z: Tensor) -> Tensor:
        h = self.deconvs(self.fc(z).view(len(z), self.c0, self.t0))
        return self.out(h)[..., : self.out_shape[0]].transpose(1, 2)


class RecurrentEncoder(nn.Module):
    """An LSTM or GRU over the window (or a sentence's embeddings); its last hidden state (top layer) mapped linearly
    to ``out_dim`` (Malhotra et al., ICML Workshop 2016, §2, and Bowman et al., CoNLL 2016, §3: the code is the
    encoder's final state). With a padding mask ``(B, T)`` (True at real steps, padding at the end) the state is the
    one at each sequence's last real step.

    Args:
        out_dim: output features.
        in_shape: the window ``(T, C)`` (for text: ``(T, embedding_dim)``).
        hidden_size: units per layer.
        num_layers: stacked layers.
        cell: ``lstm`` or ``gru``.
        bidirectional: read forwards and backwards (the two final states concatenated).

    Shapes: ``(B, T, C)`` (and a mask ``(B, T)``) → ``(B, out_dim)``.
    """

    def __init__(
        self,
        out_dim: int = 16,
        in_shape: Sequence[int] = (100, 1),
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"model.encoder.cell={cell!r} must be lstm or gru")
        self.out_dim, self.in_shape = int(out_dim), _series_shape(in_shape, "model.encoder.in_shape")
        self.cell, self.bidirectional = cell, bool(bidirectional)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(self.in_shape[1], int(hidden_size), int(num_layers), batch_first=True,
                       bidirectional=self.bidirectional)  # fmt: skip
        self.head = nn.Linear(int(hidden_size) * (2 if self.bidirectional else 1), self.out_dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is not None:
            lengths = mask.sum(1).clamp(min=1).cpu()
            x = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, state = self.rnn(x)
        h = state[0] if self.cell == "lstm" else state
        last = torch.cat([h[-2], h[-1]], -1) if self.bidirectional else h[-1]
        return self.head(last)


class LSTMEncoder(RecurrentEncoder):
    """:class:`RecurrentEncoder` with an LSTM (``model/encoder=lstm``)."""

    def __init__(self, out_dim: int = 16, in_shape: Sequence[int] = (100, 1), hidden_size: int = 64,
                 num_layers: int = 1, bidirectional: bool = False) -> None:  # fmt: skip
        super().__init__(out_dim, in_shape, hidden_size, num_layers, "lstm", bidirectional)


class GRUEncoder(RecurrentEncoder):
    """:class:`RecurrentEncoder` with a GRU (``model/encoder=gru``)."""

    def __init__(self, out_dim: int = 16, in_shape: Sequence[int] = (100, 1), hidden_size: int = 64,
                 num_layers: int = 1, bidirectional: bool = False) -> None:  # fmt: skip
        super().__init__(out_dim, in_shape, hidden_size, num_layers, "gru", bidirectional)


class LSTMDecoder(nn.Module):
    """An LSTM started from the code (its initial hidden and cell states are linear maps of it) and fed, at every
    step, the code and the step's sinusoidal position (``position_dim`` numbers), then a linear map of each step's
    state to the ``C`` channels. With ``reverse`` the steps run from the last point to the first, as EncDec-AD
    reconstructs (Malhotra et al. 2016, §2). EncDec-AD feeds the previous point instead (its target in training, its
    own output in inference); this decoder needs no target, so a window is scored in one pass, and the positions tell
    the steps apart (without them the windows of internal_bleeding reached a validation MSE of 0.81 after 8 epochs,
    with them 0.37).

    Args:
        latent_dim: the code size.
        out_shape: the window ``(T, C)``.
        hidden_size: LSTM units per layer.
        num_layers: stacked LSTM layers.
        reverse: reconstruct in reverse time order.
        position_dim: the sinusoidal position's numbers fed at each step (0: the code alone).

    Shapes: ``(B, latent_dim)`` → ``(B, T, C)``.
    """

    def __init__(
        self,
        latent_dim: int = 16,
        out_shape: Sequence[int] = (100, 1),
        hidden_size: int = 64,
        num_layers: int = 1,
        reverse: bool = True,
        position_dim: int = 16,
    ) -> None:
        super().__init__()
        self.latent_dim, self.out_shape = int(latent_dim), _series_shape(out_shape, "model.decoder.out_shape")
        self.hidden_size, self.num_layers, self.reverse = int(hidden_size), int(num_layers), bool(reverse)
        self.position_dim = int(position_dim)
        if self.position_dim % 2:
            raise ValueError(
                f"model.decoder.position_dim={position_dim} must be even (sine and cosine pairs)"
            )
        self.register_buffer(
            "positions", sinusoidal_positions(self.out_shape[0], self.position_dim), persistent=False
        )
        self.init_state = nn.Linear(self.latent_dim, 2 * self.num_layers * self.hidden_size)
        self.lstm = nn.LSTM(
            self.latent_dim + self.position_dim, self.hidden_size, self.num_layers, batch_first=True
        )
        self.out = nn.Linear(self.hidden_size, self.out_shape[1])

    def forward(self, z: Tensor) -> Tensor:
        b, t = len(z), self.out_shape[0]
        h, c = torch.tanh(self.init_state(z)).view(b, 2, self.num_layers, self.hidden_size).unbind(1)
        steps = z[:, None, :].expand(b, t, self.latent_dim)
        if self.position_dim:
            steps = torch.cat([steps, self.positions.to(z.dtype).expand(b, t, self.position_dim)], -1)
        y, _ = self.lstm(steps, (h.transpose(0, 1).contiguous(), c.transpose(0, 1).contiguous()))
        y = self.out(y)
        return y.flip(1) if self.reverse else y


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """The sinusoidal position encodings of Vaswani et al. 2017 (§3.5): ``(length, dim)``,
    ``PE[t, 2i] = sin(t / 10000^(2i/dim))``, ``PE[t, 2i+1] = cos(...)``."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


def self_attention_layers(
    part: str, d_model: int, nhead: int, num_layers: int, dim_feedforward: int, dropout: float
) -> nn.TransformerEncoder:
    """``num_layers`` Transformer encoder layers (self-attention, batch first) of width ``d_model`` — the stack of
    both :class:`TransformerSeriesEncoder` and :class:`TransformerSeriesDecoder` (``part`` names their config keys).

    Raises:
        ValueError: when ``nhead`` does not divide ``d_model``.
    """
    if int(d_model) % int(nhead):
        raise ValueError(f"model.{part}.d_model={d_model} must divide by model.{part}.nhead={nhead}")
    layer = nn.TransformerEncoderLayer(int(d_model), int(nhead), int(dim_feedforward), float(dropout),
                                       batch_first=True)  # fmt: skip
    return nn.TransformerEncoder(layer, int(num_layers), enable_nested_tensor=False)


class TransformerSeriesEncoder(nn.Module):
    """Each point projected to ``d_model``, sinusoidal positions added, ``num_layers`` Transformer encoder layers
    (self-attention over the window), the mean over time mapped linearly to ``out_dim``.

    Args:
        out_dim: output features.
        in_shape: the window ``(T, C)``.
        d_model: the model width; ``nhead`` must divide it.
        nhead: attention heads.
        num_layers: encoder layers.
        dim_feedforward: the feed-forward width.
        dropout: dropout inside the layers.

    Shapes: ``(B, T, C)`` → ``(B, out_dim)``.
    """

    def __init__(
        self,
        out_dim: int = 16,
        in_shape: Sequence[int] = (100, 1),
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.out_dim, self.in_shape = int(out_dim), _series_shape(in_shape, "model.encoder.in_shape")
        self.proj = nn.Linear(self.in_shape[1], int(d_model))
        self.register_buffer(
            "positions", sinusoidal_positions(self.in_shape[0], int(d_model)), persistent=False
        )
        self.layers = self_attention_layers("encoder", d_model, nhead, num_layers, dim_feedforward, dropout)
        self.head = nn.Linear(int(d_model), self.out_dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if x.shape[1] > self.in_shape[0]:
            raise ValueError(
                f"a sequence of {x.shape[1]} steps is longer than the encoder's {self.in_shape[0]}"
            )
        positions = self.positions[: x.shape[1]]  # a batch cut after its longest sentence is shorter than T
        h = self.layers(self.proj(x) + positions, src_key_padding_mask=None if mask is None else ~mask)
        if mask is None:
            return self.head(h.mean(1))
        weights = mask.to(h.dtype)[..., None]
        return self.head((h * weights).sum(1) / weights.sum(1).clamp(min=1))


class TransformerSeriesDecoder(nn.Module):
    """The code mapped to ``d_model`` and added to the sinusoidal position of every point, ``num_layers``
    Transformer encoder layers (self-attention among the points), and a linear map to the ``C`` channels.

    Args:
        latent_dim: the code size.
        out_shape: the window ``(T, C)``.
        d_model, nhead, num_layers, dim_feedforward, dropout: as for :class:`TransformerSeriesEncoder`.

    Shapes: ``(B, latent_dim)`` → ``(B, T, C)``.
    """

    def __init__(
        self,
        latent_dim: int = 16,
        out_shape: Sequence[int] = (100, 1),
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.latent_dim, self.out_shape = int(latent_dim), _series_shape(out_shape, "model.decoder.out_shape")
        self.code = nn.Linear(self.latent_dim, int(d_model))
        self.register_buffer(
            "positions", sinusoidal_positions(self.out_shape[0], int(d_model)), persistent=False
        )
        self.layers = self_attention_layers("decoder", d_model, nhead, num_layers, dim_feedforward, dropout)
        self.out = nn.Linear(int(d_model), self.out_shape[1])

    def forward(self, z: Tensor) -> Tensor:
        return self.out(self.layers(self.code(z)[:, None, :] + self.positions))
