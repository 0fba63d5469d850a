"""aelab: an experiment framework for autoencoders on PyTorch Lightning and Hydra.

Importing :mod:`aelab` registers the OmegaConf resolvers the configs in ``conf/`` use
(see :mod:`aelab.utils.config`).
"""

from aelab.utils.config import CONF_DIR, register_resolvers

__version__ = "0.1.0"
__all__ = ["CONF_DIR", "__version__"]

register_resolvers()
