"""Optional dependencies: what each extra provides, and a named error when one is missing.

The core (schemes, ``init_``, ``lsuv_``, ``audit``, theory, the ``initlab`` command) needs
torch, numpy, scipy, rich and tomli-w only. The extras add:

- ``initlab[report]``: matplotlib, for the figures of HTML reports and ``theory --plot``;
- ``initlab[lab]``: pydantic, scikit-learn, mnist1d, platformdirs and matplotlib, for
  studies, datasets and the tour;
- ``initlab[distributed]``: dask.distributed, for ``--executor dask``;
- ``initlab[all]``: all of them.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from initlab.errors import InitlabError


def missing_error(module: str, extra: str, purpose: str) -> InitlabError:
    """The error for ``purpose`` needing ``module``, which ``pip install 'initlab[extra]'`` provides."""
    return InitlabError(
        f"{purpose} needs the optional dependency {module!r}, which is not installed; "
        f"install it with `pip install 'initlab[{extra}]'`."
    )


def require_installed(modules: Sequence[str], extra: str, purpose: str) -> None:
    """Raise :func:`missing_error` for the first of ``modules`` that is not installed (none is imported)."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise missing_error(module, extra, purpose)


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module``; a missing one raises :func:`missing_error` (the ImportError chained)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name is None or module.split(".")[0] != error.name.split(".")[0]:
            raise
        raise missing_error(module.split(".")[0], extra, purpose) from error


def pyplot(purpose: str) -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (``initlab[report]``)."""
    matplotlib = require("matplotlib", "report", purpose)
    matplotlib.use("Agg", force=False)
    return require("matplotlib.pyplot", "report", purpose)
