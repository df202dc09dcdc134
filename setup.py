"""Build script for initlab's compiled kernels; the project metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("initlab._kernels", sources=["src/initlab/_kernels.c"]),
    ],
)
