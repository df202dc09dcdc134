"""Build a user's model from ``FILE.py:factory`` (the ``initlab plan`` / ``audit`` argument).

The file is run as a module (its code executes, as ``python FILE.py`` would
minus the ``__main__`` block: its folder is first on ``sys.path`` while it runs, so
it can import modules beside it), ``factory()`` is called with no arguments and
must return an ``nn.Module``. Every failure is an InitlabError that names the
command, the argument and what went wrong; an exception raised by the user's code
is chained to it (``__cause__``), with its own traceback.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from torch import nn

from initlab.errors import InitlabError, bad_value


def load_factory(target: str, where: str) -> nn.Module:
    """The module ``factory()`` returns for ``target = "FILE.py:factory"``; ``where`` names the command."""
    path_text, separator, factory_name = target.rpartition(":")
    if not separator or not path_text or not factory_name:
        raise bad_value(where, "MODEL", target, "FILE.py:factory, e.g. models.py:make_mlp")
    path = Path(path_text)
    if not path.is_file():
        raise bad_value(where, "MODEL", target, "an existing Python file before the colon", f"{path} does not exist.")
    spec = importlib.util.spec_from_file_location(f"initlab_target_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise bad_value(where, "MODEL", target, "a Python source file before the colon", f"{path} cannot be imported.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # lets classes defined in the file be pickled / resolved by name
    try:
        with _folder_on_path(path.resolve().parent):
            spec.loader.exec_module(module)
    except Exception as error:  # the user's file may fail in any way
        raise InitlabError(f"{where}: could not run {path}: {type(error).__name__}: {error}") from error
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        names = sorted(name for name, value in vars(module).items() if callable(value) and not name.startswith("_"))
        raise bad_value(
            where,
            "factory",
            factory_name,
            f"a callable defined in {path}",
            f"Callables there: {', '.join(names) or 'none'}.",
        )
    try:
        model = factory()
    except Exception as error:  # the user's factory may fail in any way
        raise InitlabError(f"{where}: {factory_name}() raised {type(error).__name__}: {error}") from error
    if not isinstance(model, nn.Module):
        raise bad_value(
            where, "factory", factory_name, "a function returning an nn.Module", f"It returned {type(model).__name__}."
        )
    return model


@contextmanager
def _folder_on_path(folder: Path) -> Iterator[None]:
    """``folder`` first on ``sys.path`` within the block (as ``python FILE.py`` puts the file's folder)."""
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        if entry in sys.path:
            sys.path.remove(entry)


MAX_INPUT_ELEMENTS = 2**28
"""Largest batch (in elements) the command builds from ``--input-shape``."""


def parse_shape(text: str, where: str) -> tuple[int, ...]:
    """``"32,40"`` -> ``(32, 40)``; ``where`` names the command."""
    try:
        shape = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or any(size <= 0 for size in shape):
        raise bad_value(where, "--input-shape", text, "positive integers separated by commas, e.g. 32,40")
    if math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise bad_value(
            where,
            "--input-shape",
            text,
            f"at most {MAX_INPUT_ELEMENTS:,} elements in all (1 GiB of float32)",
            f"It has {math.prod(shape):,}.",
        )
    return shape
