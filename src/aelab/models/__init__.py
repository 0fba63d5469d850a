"""aelab's models: plain ``torch.nn.Module`` s whose ``forward`` returns a :class:`ModelOutput` (the loss, the
logits, the latents and each term named). They need no Lightning: aelab's one LightningModule
(:class:`aelab.module.AutoencoderModule`) trains any of them, and so does ten lines of plain PyTorch.

The family at a glance::

    Autoencoder(encoder, decoder)            # AE and ConvAE: the parts decide MLP vs conv
    ├── DenoisingAutoencoder(+ corruption)   # DAE: trained on corrupted input, clean target
    ├── VAE(+ Gaussian posterior, prior)     # VAE and conv VAE: encoder output split into μ, log σ²
    │   └── IWAE(+ k samples)                # the importance-weighted bound as the objective
    ├── VQVAE(+ quantizer)                   # codes from a learned codebook (EMA, restarts)
    ├── SparseAutoencoder                    # top-k or L1 sparse, overcomplete codes
    ├── RAE, WAE                             # deterministic AEs regularized to generate (a regularizer each)
    └── USAD(+ a second decoder)             # series windows: two decoders trained adversarially (Audibert et al. 2020)

    Recommenders (a user's 0/1 item vector in, item scores out; aelab.models.recommenders)
    ├── MultDAE, MultVAE                     # multinomial likelihood, normalised input + dropout (Liang et al. 2018)
    ├── RecVAE                               # composite prior, β = γ|x|, alternating epochs (Shenbin et al. 2020)
    ├── CDAE                                 # + a vector per training user (Wu et al. 2016)
    └── EASE                                 # closed-form item-item weights, fitted at the start (Steck 2019)

    Sentences (token ids in, aelab.models.text)
    ├── TextAutoencoder                      # recurrent encoder to a code, autoregressive decoder conditioned on it
    ├── SentenceVAE                          # Bowman et al. 2016: KL annealing, word dropout, free bits
    └── LanguageModel                        # the decoder without a code: the yardstick

The learned image codecs (CompressAI's ``FactorizedPrior``, ``ScaleHyperprior``, ``MeanScaleHyperprior``) live
with their entropy models and file format in :mod:`aelab.codecs`.
"""

from aelab.models.autoencoder import Autoencoder
from aelab.models.dae import DenoisingAutoencoder
from aelab.models.iwae import IWAE
from aelab.models.outputs import ModelOutput
from aelab.models.rae import RAE
from aelab.models.recommenders import (
    CDAE,
    EASE,
    MultDAE,
    MultVAE,
    RecVAE,
    ease_weights,
    multinomial_log_likelihood,
)
from aelab.models.sparse import SparseAutoencoder
from aelab.models.text import LanguageModel, SentenceVAE, TextAutoencoder
from aelab.models.usad import USAD
from aelab.models.vae import VAE
from aelab.models.vqvae import VQVAE
from aelab.models.wae import WAE

__all__ = [
    "CDAE",
    "EASE",
    "IWAE",
    "RAE",
    "VAE",
    "VQVAE",
    "WAE",
    "Autoencoder",
    "DenoisingAutoencoder",
    "ModelOutput",
    "MultDAE",
    "MultVAE",
    "RecVAE",
    "USAD",
    "LanguageModel",
    "SentenceVAE",
    "TextAutoencoder",
    "SparseAutoencoder",
    "ease_weights",
    "multinomial_log_likelihood",
]
