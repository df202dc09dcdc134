"""The one source of initlab's version (read by the build backend and by ``initlab --version``)."""

__version__ = "0.2.0"
