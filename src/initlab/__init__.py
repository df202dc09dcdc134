"""initlab: neural-network weight and bias initialization, done right and shown why."""

from initlab.errors import InitlabError

__version__ = "0.1.0"

__all__ = ["InitlabError", "__version__"]
