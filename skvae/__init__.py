"""skvae: autoencoders and variational autoencoders as scikit-learn transformers."""

from . import exceptions
from ._autoencoder import AutoencoderTransformer
from ._impute import VAEImputer
from ._vae import VAETransformer

__version__ = "0.2.0"

__all__ = [
    "AutoencoderTransformer",
    "VAEImputer",
    "VAETransformer",
    "__version__",
    "exceptions",
]
