"""aelab's LightningModules.

The family at a glance::

    Autoencoder(encoder, decoder)            # AE and ConvAE: the parts decide MLP vs conv
    ├── DenoisingAutoencoder(+ corruption)   # DAE: trained on corrupted input, clean target
    └── VAE(+ Gaussian posterior, prior)     # VAE and conv VAE: encoder output split into μ, log σ²
"""

from aelab.models.autoencoder import Autoencoder
from aelab.models.dae import DenoisingAutoencoder
from aelab.models.vae import VAE

__all__ = ["VAE", "Autoencoder", "DenoisingAutoencoder"]
