"""Plain ``nn.Module`` building blocks shared by every aelab model.

Encoders map images ``(B, C, H, W)`` to feature vectors ``(B, out_dim)``; decoders map latent codes
``(B, latent_dim)`` to *logits* ``(B, C, H, W)`` (apply a sigmoid for pixels in [0, 1]).
"""

from aelab.models.components.conv import ConvDecoder, ConvEncoder
from aelab.models.components.corruption import Corruption, GaussianNoise, Masking, SaltAndPepper
from aelab.models.components.entropy import EntropyBottleneck, GaussianConditional
from aelab.models.components.gdn import GDN
from aelab.models.components.mlp import MLPDecoder, MLPEncoder
from aelab.models.components.quantizer import VectorQuantizer
from aelab.models.components.transforms import (
    AnalysisTransform,
    HyperAnalysis,
    HyperSynthesis,
    SynthesisTransform,
)

__all__ = [
    "GDN",
    "AnalysisTransform",
    "ConvDecoder",
    "ConvEncoder",
    "Corruption",
    "GaussianNoise",
    "MLPDecoder",
    "MLPEncoder",
    "Masking",
    "EntropyBottleneck",
    "GaussianConditional",
    "HyperAnalysis",
    "HyperSynthesis",
    "SaltAndPepper",
    "SynthesisTransform",
    "VectorQuantizer",
]
