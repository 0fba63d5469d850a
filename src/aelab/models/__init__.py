"""aelab's LightningModules.

The family at a glance::

    Autoencoder(encoder, decoder)            # AE and ConvAE: the parts decide MLP vs conv
    ├── DenoisingAutoencoder(+ corruption)   # DAE: trained on corrupted input, clean target
    ├── VAE(+ Gaussian posterior, prior)     # VAE and conv VAE: encoder output split into μ, log σ²
    │   └── IWAE(+ k samples)                # the importance-weighted bound as the objective
    ├── VQVAE(+ quantizer)                   # codes from a learned codebook (EMA, restarts)
    ├── SparseAutoencoder                    # top-k or L1 sparse, overcomplete codes
    ├── RAE, WAE                             # deterministic AEs regularized to generate
    └── LearnedCodec(+ entropy model)        # rate + λ·distortion, entropy-coded latents
        └── HyperpriorCodec(+ h_a, h_s)      # the latents' scales (and means) from side information
"""

from aelab.models.autoencoder import Autoencoder
from aelab.models.codec import LearnedCodec
from aelab.models.dae import DenoisingAutoencoder
from aelab.models.hyperprior import HyperpriorCodec
from aelab.models.iwae import IWAE
from aelab.models.rae import RAE
from aelab.models.sparse import SparseAutoencoder
from aelab.models.vae import VAE
from aelab.models.vqvae import VQVAE
from aelab.models.wae import WAE

__all__ = [
    "IWAE",
    "RAE",
    "VAE",
    "VQVAE",
    "WAE",
    "Autoencoder",
    "DenoisingAutoencoder",
    "HyperpriorCodec",
    "LearnedCodec",
    "SparseAutoencoder",
]
