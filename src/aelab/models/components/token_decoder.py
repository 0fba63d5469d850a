"""The token side of the sentence models (:mod:`aelab.models.text`): token ids ``(B, T)`` with ``[PAD]`` = 0,
``[UNK]`` = 1, ``[BOS]`` = 2, ``[EOS]`` = 3 (:mod:`aelab.data.text`), the masked token NLL, and the autoregressive
decoder with its greedy and beam-search decoding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PAD, UNK, BOS, EOS = 0, 1, 2, 3


def trimmed(x: Tensor) -> Tensor:
    """``x`` ``(B, T)`` cut after the batch's longest sequence (its trailing all-padding columns dropped): the same
    figures, fewer steps."""
    longest = int((x != PAD).sum(1).max()) if x.numel() else 0
    return x[:, : max(longest, 2)]


def masked_token_nll(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """``(nll per sequence (B,), tokens per sequence (B,))``: the cross-entropy of ``logits`` ``(B, T, V)`` against
    ``targets`` ``(B, T)`` summed over each sequence's non-padding targets (nats)."""
    mask = targets != PAD
    nll = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")
    return (nll * mask).sum(1), mask.sum(1)


class TokenDecoder(nn.Module):
    """An autoregressive recurrent decoder: each step reads the previous token's embedding (and the code, when there
    is one) and predicts the next token; the code also sets the initial state (Bowman et al. 2016, §3).

    Args:
        vocab_size: the vocabulary (the data's ``num_tokens``).
        latent_dim: the code size (0: no code: a language model).
        embedding_dim: the token embeddings' size.
        hidden_size: the recurrent state's size.
        cell: ``lstm`` or ``gru``.
        num_layers: stacked recurrent layers.
        dropout: dropout on the embeddings and the outputs.

    Shapes: ``forward(inputs (B, T), z (B, latent_dim) or None) → logits (B, T, vocab_size)``.
    """

    def __init__(
        self,
        vocab_size: int,
        latent_dim: int = 32,
        embedding_dim: int = 256,
        hidden_size: int = 512,
        cell: str = "lstm",
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"model.decoder.cell={cell!r} must be lstm or gru")
        self.vocab_size, self.latent_dim, self.cell = int(vocab_size), int(latent_dim), cell
        self.hidden_size, self.num_layers = int(hidden_size), int(num_layers)
        self.embedding = nn.Embedding(self.vocab_size, int(embedding_dim), padding_idx=PAD)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(
            int(embedding_dim) + self.latent_dim, self.hidden_size, self.num_layers, batch_first=True
        )
        states = (2 if cell == "lstm" else 1) * self.num_layers * self.hidden_size
        self.init_state = nn.Linear(self.latent_dim, states) if self.latent_dim else None
        self.drop = nn.Dropout(float(dropout))
        self.out = nn.Linear(self.hidden_size, self.vocab_size)

    def initial_state(self, z: Tensor | None, batch: int, device) -> tuple | Tensor | None:
        if z is None or self.init_state is None:
            return None
        s = torch.tanh(self.init_state(z)).view(batch, -1, self.num_layers, self.hidden_size)
        s = s.permute(1, 2, 0, 3).contiguous()  # (states, layers, B, H)
        return (s[0], s[1]) if self.cell == "lstm" else s[0]

    def forward(self, inputs: Tensor, z: Tensor | None = None, state=None) -> Tensor:
        logits, _ = self.run(
            inputs, z, state if state is not None else self.initial_state(z, len(inputs), inputs.device)
        )
        return logits

    def hidden(self, inputs: Tensor, z: Tensor | None, state):
        """``(outputs (B, T, hidden_size), final state)``: the recurrent outputs before the output layer."""
        e = self.drop(self.embedding(inputs))
        if self.latent_dim and z is not None:
            e = torch.cat([e, z[:, None, :].expand(-1, e.shape[1], -1).to(e.dtype)], -1)
        return self.rnn(e, state)

    def run(self, inputs: Tensor, z: Tensor | None, state):
        """``(logits (B, T, V), final state)`` from a given state (decoding one step at a time)."""
        y, state = self.hidden(inputs, z, state)
        return self.out(self.drop(y)), state

    def nll(self, inputs: Tensor, targets: Tensor, z: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(nll per sequence (B,), tokens per sequence (B,))`` of ``targets`` ``(B, T)`` after ``inputs`` ``(B, T)``
        (given the code ``z``, from its initial state): :func:`masked_token_nll` of :meth:`forward`'s logits, with the
        output layer (``hidden_size × vocab_size``, the costliest step) run on the non-padding targets only."""
        y, _ = self.hidden(inputs, z, self.initial_state(z, len(inputs), inputs.device))
        mask = targets != PAD
        flat = F.cross_entropy(self.out(self.drop(y[mask])).float(), targets[mask], reduction="none")
        nll = torch.zeros(targets.shape, dtype=flat.dtype, device=flat.device).masked_scatter(mask, flat)
        return nll.sum(1), mask.sum(1)

    @torch.no_grad()
    def greedy(self, z: Tensor | None, length: int, batch: int | None = None, device=None,
               generator: torch.Generator | None = None, sample: bool = False) -> Tensor:  # fmt: skip
        """Token ids ``(B, length)``: ``[BOS]`` then, at each step, the most likely token (or a draw, ``sample``)
        given the code; after ``[EOS]`` a sequence is padded."""
        b = len(z) if z is not None else int(batch)
        device = z.device if z is not None else device
        out = torch.zeros(b, length, dtype=torch.int64, device=device)
        out[:, 0] = BOS
        token, state = out[:, :1], self.initial_state(z, b, device)
        done = torch.zeros(b, dtype=torch.bool, device=device)
        for t in range(1, length):
            logits, state = self.run(token, z, state)
            logits = logits[:, -1].float()
            logits[:, PAD] = -math.inf
            logits[:, BOS] = -math.inf
            if sample:
                token = torch.multinomial(logits.softmax(-1), 1, generator=generator)
            else:
                token = logits.argmax(-1, keepdim=True)
            out[:, t] = torch.where(done, torch.full_like(token[:, 0], PAD), token[:, 0])
            done |= token[:, 0] == EOS
            if done.all():
                break
        return out

    @torch.no_grad()
    def beam(self, z: Tensor, length: int, beam_size: int = 4) -> Tensor:
        """Token ids ``(B, length)``: beam search (``beam_size`` hypotheses per code), the hypothesis of the highest
        total log-probability ``Σ_t log p(w_t | w_<t, z)`` (nats, no length normalisation) after ``[BOS]``; a
        hypothesis that has emitted ``[EOS]`` is padded and keeps its score. ``beam_size = 1`` is :meth:`greedy`.

        Raises:
            ValueError: for a beam size below 1.
        """
        k = int(beam_size)
        if k < 1:
            raise ValueError(f"beam_size={beam_size} must be at least 1")
        if k == 1:
            return self.greedy(z, length)
        b, device = len(z), z.device
        zk = z.repeat_interleave(k, 0)  # (B·K, D): hypothesis j of sequence i at row i·K + j
        state = self.initial_state(zk, b * k, device)
        out = torch.zeros(b * k, length, dtype=torch.int64, device=device)
        out[:, 0] = BOS
        score = torch.full((b, k), -math.inf, device=device)
        score[:, 0] = 0.0  # one live hypothesis at the start (the others would repeat it)
        done = torch.zeros(b * k, dtype=torch.bool, device=device)
        rows = torch.arange(b, device=device)[:, None] * k
        for t in range(1, length):
            logits, state = self.run(out[:, t - 1 : t], zk, state)
            logp = logits[:, -1].float().log_softmax(-1)
            logp[:, PAD] = -math.inf
            logp[:, BOS] = -math.inf
            logp[done] = -math.inf  # a finished hypothesis only pads, at no cost
            logp[done, PAD] = 0.0
            vocab = logp.shape[-1]
            total = (score[:, :, None] + logp.view(b, k, vocab)).view(b, k * vocab)
            score, pick = total.topk(k, dim=1)
            src = (rows + pick // vocab).view(-1)  # the hypothesis each new one extends
            token = (pick % vocab).view(-1)
            out, done = out[src], done[src]
            state = tuple(s[:, src] for s in state) if isinstance(state, tuple) else state[:, src]
            out[:, t] = token
            done = done | (token == EOS)
            if done.all():
                break
        best = score.argmax(1)
        return out.view(b, k, length)[torch.arange(b, device=device), best]


def decoder_nll(
    decoder: nn.Module, inputs: Tensor, targets: Tensor, z: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """``(nll per sequence (B,), tokens per sequence (B,))``: :meth:`TokenDecoder.nll` where the decoder has it, else
    :func:`masked_token_nll` of its ``forward(inputs, z)`` logits (a decoder of a user's own, with ``forward`` only)."""
    if hasattr(decoder, "nll"):
        return decoder.nll(inputs, targets, z)
    return masked_token_nll(decoder(inputs, z), targets)
