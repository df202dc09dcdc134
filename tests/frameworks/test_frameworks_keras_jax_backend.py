"""The Keras tests, and the port check's Keras rows, again on Keras's JAX backend (one subprocess).

Keras picks its backend once per process, at import; this process runs Keras on
torch (conftest.py), so the JAX backend gets its own pytest run.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax", reason="JAX is not installed (pip install 'initlab[jax]')")
pytest.importorskip("keras", reason="Keras 3 is not installed (pip install 'initlab[keras]')")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.mark.slow
def test_the_keras_tests_pass_on_the_jax_backend():
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "keras",
               str(HERE / "test_frameworks_keras.py"), str(HERE / "test_frameworks_conventions.py")]
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary
