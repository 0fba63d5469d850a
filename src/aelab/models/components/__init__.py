"""Plain ``nn.Module`` building blocks shared by aelab's autoencoders.

Encoders map inputs ``(B, *shape)`` (images ``(B, C, H, W)``, table rows ``(B, F)``, series windows ``(B, T, C)``) to feature vectors
``(B, out_dim)``; decoders map latent codes ``(B, latent_dim)`` to *logits* ``(B, *shape)`` (the model's output
activation gives the data's units). The codecs' transforms and entropy models live in :mod:`aelab.codecs`.
"""

from aelab.models.components.conv import ConvDecoder, ConvEncoder
from aelab.models.components.corruption import Corruption, GaussianNoise, Masking, SaltAndPepper
from aelab.models.components.mlp import MLPDecoder, MLPEncoder
from aelab.models.components.quantizer import VectorQuantizer
from aelab.models.components.resconv import ResConvDecoder, ResConvEncoder
from aelab.models.components.sequence import (
    Conv1dDecoder,
    Conv1dEncoder,
    GRUEncoder,
    LSTMDecoder,
    LSTMEncoder,
    TransformerSeriesDecoder,
    TransformerSeriesEncoder,
)

__all__ = [
    "Conv1dDecoder",
    "Conv1dEncoder",
    "GRUEncoder",
    "LSTMDecoder",
    "LSTMEncoder",
    "TransformerSeriesDecoder",
    "TransformerSeriesEncoder",
    "ConvDecoder",
    "ConvEncoder",
    "Corruption",
    "GaussianNoise",
    "MLPDecoder",
    "MLPEncoder",
    "Masking",
    "ResConvDecoder",
    "ResConvEncoder",
    "SaltAndPepper",
    "VectorQuantizer",
]
