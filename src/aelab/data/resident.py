"""A loader that keeps a whole image dataset resident on the training device.

MNIST is 47 MB as uint8: it fits in any accelerator's memory; so do most image sets researchers train
autoencoders on. Instead of converting and collating images
on the host for every batch, :class:`ResidentLoader` holds the uint8 images on the device, gathers each
batch by index there and converts it to float in [0, 1] there. Index order and DDP sharding come from the
sampler (:class:`torch.utils.data.DistributedSampler` for training, Lightning's ``UnrepeatedDistributedSampler``
for evaluation: every image once, no padding); the same samplers drive the DataLoader path, so both paths yield
the same batches for the same seed, rank and epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import Sampler


def to_unit(images: Tensor) -> Tensor:
    """uint8 pixels 0..255 → float32 in [0, 1], same shape (the one conversion every path uses)."""
    return images.float().div_(255.0)


def as_float(examples: Tensor) -> Tensor:
    """The examples a model takes: uint8 pixels → float32 in [0, 1] (:func:`to_unit`); float rows as float32; int64
    token ids as they are (a token sequence is ids, not values)."""
    if examples.dtype == torch.uint8:
        return to_unit(examples)
    return examples if examples.dtype == torch.int64 else examples.float()


class ResidentLoader:
    """Iterate ``(images, labels)`` batches drawn by index from device-resident tensors.

    Args:
        images: uint8 tensor ``(N, H, W)`` or ``(N, C, H, W)`` with pixel values 0..255, on the device the
            batches should live on.
        labels: int64 tensor ``(N,)`` on the same device.
        batch_size: images per batch *on this rank* (the global batch divided by the world size).
        sampler: a :class:`~torch.utils.data.DistributedSampler` (training) or Lightning's
            ``UnrepeatedDistributedSampler`` (evaluation) over ``range(N)``; it fixes the shuffle, the seed and this rank's shard. Lightning
            calls its ``set_epoch`` at the start of every epoch.
        drop_last: drop the last incomplete batch.

    Yields:
        ``(x, y)`` with ``x`` float32 ``(B, C, H, W)`` in [0, 1] and ``y`` int64 ``(B,)``, on the device of
        ``images``.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        sampler: Sampler[int],
        drop_last: bool = False,
    ) -> None:
        if images.dtype not in (torch.uint8, torch.float32, torch.int64):
            raise TypeError(
                f"ResidentLoader expects uint8 images (0..255), float32 examples or int64 token ids, got {images.dtype}"
            )
        if images.dtype == torch.uint8 and images.ndim == 3:
            images = images.unsqueeze(1)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        # DataLoader's attribute names: Lightning finds `sampler` and calls its set_epoch every epoch.
        self.sampler = sampler
        self.batch_sampler = None
        self.drop_last = drop_last
        self._yielded = 0  # batches handed out in the current pass
        self._skip = 0  # batches to skip at the start of the next pass (a mid-epoch resume)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        index = torch.as_tensor(list(iter(self.sampler)), dtype=torch.long).to(self.device, non_blocking=True)
        start, self._skip = self._skip, 0
        self._yielded = start
        for b in range(start, len(self)):
            i = index[b * self.batch_size : (b + 1) * self.batch_size]
            self._yielded = b + 1
            yield as_float(self.images[i]), self.labels[i]

    # Lightning's stateful-loader protocol: a mid-epoch checkpoint stores the position in the epoch, and
    # resuming from it continues with the next batch of the same (seeded) order instead of restarting it.
    def state_dict(self) -> dict[str, int]:
        """``{"batches": n}``: the batches of the current pass already handed out."""
        return {"batches": self._yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Skip the first ``state["batches"]`` batches of the next pass."""
        self._skip = int(state.get("batches", 0))
