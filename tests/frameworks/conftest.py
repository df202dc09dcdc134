"""Shared set-up of the framework tests (Keras 3, JAX/Flax, numpy).

Keras needs its backend chosen before it is first imported: these tests run it
on torch unless ``KERAS_BACKEND`` is already set (the JAX backend runs the same
Keras tests in a subprocess, see ``test_frameworks_keras_jax_backend.py``).
A framework that is not installed skips its tests with the reason.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
