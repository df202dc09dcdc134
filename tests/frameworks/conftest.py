"""Shared set-up of the framework tests (Keras 3, JAX/Flax, numpy).

Keras needs its backend chosen before it is first imported: these tests run it
on torch unless ``KERAS_BACKEND`` is already set (the JAX backend runs the same
Keras tests in a subprocess, see ``test_frameworks_keras_jax_backend.py``).
A framework that is not installed skips its tests with the reason.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

FRAMEWORK_TESTS = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(config, items):
    """Run these tests after every other test of the session.

    Keras and JAX start JAX's threads in this process; a process that forks
    after that (the lab's executors, tests/test_kernels.py) gets JAX's
    "os.fork() is incompatible with multithreaded code" warning and risks a
    deadlock in the child. Keeping them last means nothing forks after them.
    """
    inside = [item for item in items if str(item.path).startswith(FRAMEWORK_TESTS + os.sep)]
    if inside and len(inside) < len(items):
        chosen = set(map(id, inside))
        items[:] = [item for item in items if id(item) not in chosen] + inside
