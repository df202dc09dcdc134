"""Smoke test of an installed initlab wheel with the core dependencies only (run by `make wheel-check`).

Run from outside the source tree, with the wheel's venv: it checks the package imports from
site-packages, applies ``init_`` and ``audit`` to a small model, and that a missing extra is a
named error. Exits non-zero on any failure.
"""

import importlib.util
import pathlib
import sys

import torch

import initlab
from initlab.errors import InitlabError

where = pathlib.Path(initlab.__file__).resolve()
assert "site-packages" in where.parts, f"initlab imported from {where}, expected the installed wheel"
assert not list(where.parent.rglob("*.so")), "the wheel must be pure Python"
assert importlib.util.find_spec("matplotlib") is None, "the core must not pull matplotlib"

model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
record = initlab.init_(model, seed=0, example_input=torch.randn(8, 16))
assert initlab.verify(model, record).ok
report = initlab.audit(model, torch.randn(8, 16), seed=0, jacobian=False)
print(f"initlab {initlab.__version__}: init_ and audit ran; audit healthy={report.healthy}")

try:
    import initlab.lab  # noqa: F401
except InitlabError as error:
    assert "initlab[lab]" in str(error), error
    print(f"missing extra named: {error}")
else:
    sys.exit("initlab.lab imported without the lab extra installed")
