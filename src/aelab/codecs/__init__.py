"""aelab's codec package: the learned image codecs and everything they code with, in one place.

- :mod:`.models`: :class:`FactorizedPrior`, :class:`ScaleHyperprior`, :class:`MeanScaleHyperprior` (CompressAI's
  names and interface: ``forward`` for training, ``update()``, ``compress`` / ``decompress``; the two hyperpriors
  share :class:`HyperpriorModel`) and :class:`CheckerboardContextHyperprior` (He et al. 2021's two-pass context
  model);
- :mod:`.entropy_models`: :class:`EntropyBottleneck`, :class:`GaussianConditional`, each owning its integer
  coding tables, with CompressAI's byte-string ``compress`` / ``decompress``;
- :mod:`.range_coder`: the range coder they code with (public, for strings that several entropy models share);
- :mod:`.integer`: exact fixed-point evaluation of the networks that choose the coder's models;
- :mod:`.transforms`, :mod:`.gdn`: ``g_a``, ``g_s``, ``h_a``, ``h_s`` and GDN;
- :mod:`.loss`: :class:`RateDistortionLoss`;
- :mod:`.container`: the file formats (one stream, one file per image), through the
  :class:`~aelab.models.capabilities.Compressor` protocol only.

Beside them, not imported here (nothing on the training path needs them): :mod:`.classical` (JPEG, PNG, WebP,
AVIF, JPEG XL through Pillow, and gzip), :mod:`.codes` (an autoencoder's codes as ``.npz`` files) and :mod:`.pca`
(the linear baseline of the same code size).
"""

from aelab.codecs.context import CheckerboardContextHyperprior
from aelab.codecs.entropy_models import EntropyBottleneck, GaussianConditional
from aelab.codecs.gdn import GDN
from aelab.codecs.loss import RateDistortionLoss
from aelab.codecs.models import (
    CompressionModel,
    FactorizedPrior,
    HyperpriorModel,
    MeanScaleHyperprior,
    ScaleHyperprior,
)
from aelab.codecs.transforms import AnalysisTransform, HyperAnalysis, HyperSynthesis, SynthesisTransform

__all__ = [
    "GDN",
    "AnalysisTransform",
    "CheckerboardContextHyperprior",
    "CompressionModel",
    "EntropyBottleneck",
    "FactorizedPrior",
    "GaussianConditional",
    "HyperAnalysis",
    "HyperSynthesis",
    "HyperpriorModel",
    "MeanScaleHyperprior",
    "RateDistortionLoss",
    "ScaleHyperprior",
    "SynthesisTransform",
]
