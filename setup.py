"""Build script for initlab's compiled kernels; the project metadata lives in pyproject.toml."""

import os

from setuptools import Extension, setup

# -O3 lets the compiler vectorise the trainer's elementwise loops (tanh, bias, derivative, the
# optimisers); without errno, sqrtf (Adam) is one vector instruction.
TRAINER_FLAGS = ["-O3", "-fno-math-errno"] if os.name == "posix" else []

setup(
    ext_modules=[
        Extension("initlab._kernels", sources=["src/initlab/_kernels.c"]),
        Extension("initlab._trainer", sources=["src/initlab/_trainer.c"], extra_compile_args=TRAINER_FLAGS),
    ],
)
