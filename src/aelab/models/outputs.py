"""What a model's loss returns (as pythae's ``ModelOutput``): one small dataclass instead of a bare tuple."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class LossOutput:
    """One batch's loss.

    Attributes:
        loss: the scalar minimized (a mean over the batch).
        reconstruction: ``(B, C, H, W)`` in [0, 1] in validation/test, ``None`` in training (never needed there).
        terms: the extra terms by name (``extra_terms``), logged as ``train/…``, ``val/…``, ``test/…`` metrics.

    It unpacks and indexes like the ``(loss, reconstruction, terms)`` tuple it replaces.
    """

    loss: Tensor
    reconstruction: Tensor | None = None
    terms: dict[str, Tensor] = field(default_factory=dict)

    def __iter__(self) -> Iterator:
        return iter((self.loss, self.reconstruction, self.terms))

    def __getitem__(self, i: int):
        return (self.loss, self.reconstruction, self.terms)[i]
