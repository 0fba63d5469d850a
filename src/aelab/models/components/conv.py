"""Convolutional encoder and decoder for small images (28×28 → 7×7 → 28×28 for MNIST)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from aelab.models.components.mlp import activation_module as make_activation


class ConvEncoder(nn.Module):
    """Stride-2 convolutions halve the resolution once per entry of ``channels``, then a linear head.

    With two entries a 28×28 image becomes 7×7 (28 → 14 → 7). Each stage is
    ``Conv3x3(stride 2) → BatchNorm → act`` (``batch_norm=False`` drops the norm).

    Args:
        out_dim: output features (``latent_dim``, or ``2 * latent_dim`` for a VAE).
        channels: output channels per downsampling stage (e.g. ``[32, 64]``).
        in_shape: image shape ``(C, H, W)``; ``H`` and ``W`` must divide by ``2 ** len(channels)``.
        activation: activation name.
        batch_norm: use BatchNorm after each convolution.

    Shapes: ``(B, C, H, W)`` → ``(B, out_dim)``.

    Raises:
        ValueError: if the image size does not divide by ``2 ** len(channels)``.
    """

    def __init__(
        self,
        out_dim: int = 32,
        channels: Sequence[int] = (32, 64),
        in_shape: Sequence[int] = (1, 28, 28),
        activation: str = "relu",
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        f = 2 ** len(channels)
        if h % f or w % f:
            raise ValueError(f"image size {h}x{w} must divide by 2**len(channels) = {f}")
        self.out_dim = int(out_dim)
        layers: list[nn.Module] = []
        for c_out in channels:
            layers += [nn.Conv2d(c, c_out, 3, stride=2, padding=1, bias=not batch_norm)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(make_activation(activation))
            c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c * (h // f) * (w // f), self.out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: linear to ``(channels[0], H/f, W/f)``, then stride-2 transposed convs.

    Args:
        latent_dim: size of the code.
        channels: channels per upsampling stage, low-resolution side first (e.g. ``[64, 32]``).
        out_shape: image shape ``(C, H, W)``.
        activation: activation name.
        batch_norm: use BatchNorm after each hidden transposed convolution.

    Shapes: ``(B, latent_dim)`` → logits ``(B, C, H, W)``.
    """

    def __init__(
        self,
        latent_dim: int = 32,
        channels: Sequence[int] = (64, 32),
        out_shape: Sequence[int] = (1, 28, 28),
        activation: str = "relu",
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        c_img, h, w = out_shape
        f = 2 ** len(channels)
        if h % f or w % f:
            raise ValueError(f"image size {h}x{w} must divide by 2**len(channels) = {f}")
        self.latent_dim = int(latent_dim)
        self.out_shape = tuple(out_shape)
        self._start = (channels[0], h // f, w // f)
        self.fc = nn.Sequential(
            nn.Linear(self.latent_dim, channels[0] * (h // f) * (w // f)), make_activation(activation)
        )
        layers: list[nn.Module] = []
        outs = [*channels[1:], None]
        for c_in, c_out in zip(channels, outs, strict=True):
            if c_out is None:  # last stage: to image channels, no norm / activation (logits)
                layers.append(nn.ConvTranspose2d(c_in, c_img, 4, stride=2, padding=1))
            else:
                layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=not batch_norm))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(c_out))
                layers.append(make_activation(activation))
        self.features = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.features(self.fc(z).view(-1, *self._start))
