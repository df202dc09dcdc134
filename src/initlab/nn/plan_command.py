"""``initlab plan FILE.py:factory --input-shape 32,40``: print the auto plan of a model.

The file is run as a module (its code executes, as ``python FILE.py`` would
minus the ``__main__`` block), ``factory()`` is called with no arguments and
must return an ``nn.Module``. With ``--input-shape`` an input of that shape
(``randn`` for float32, zeros for int64 token ids) is traced through the
model; without it torch.fx is used.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from initlab.errors import InitlabError, bad_value
from initlab.nn.apply import preview
from initlab.nn.plan import Plan, Rule
from initlab.nn.record import InitRecord
from initlab.nn.residual import scheme_from_dict

FORMATS = ("table", "json", "plan-toml", "plan-json")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64}


def load_factory(target: str) -> nn.Module:
    """The model ``factory()`` of ``FILE.py:factory`` returns."""
    path_text, separator, factory_name = target.rpartition(":")
    if not separator or not path_text or not factory_name:
        raise bad_value("initlab plan", "MODEL", target, "FILE.py:factory, e.g. models.py:make_mlp")
    path = Path(path_text)
    if not path.is_file():
        raise bad_value("initlab plan", "MODEL", target, "an existing Python file before the colon",
                        f"{path} does not exist.")
    spec = importlib.util.spec_from_file_location(f"initlab_plan_target_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # lets classes defined in the file be pickled / resolved by name
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's file may fail in any way
        raise InitlabError(f"initlab plan: could not run {path}: {type(error).__name__}: {error}") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        names = sorted(name for name, value in vars(module).items() if callable(value) and not name.startswith("_"))
        raise bad_value("initlab plan", "factory", factory_name, f"a callable defined in {path}",
                        f"Callables there: {', '.join(names) or 'none'}.")
    try:
        model = factory()
    except Exception as error:  # the user's factory may fail in any way
        raise InitlabError(f"initlab plan: {factory_name}() raised {type(error).__name__}: {error}") from None
    if not isinstance(model, nn.Module):
        raise bad_value("initlab plan", "factory", factory_name, "a function returning an nn.Module",
                        f"It returned {type(model).__name__}.")
    return model


def parse_shape(text: str) -> tuple[int, ...]:
    """``"32,40"`` -> ``(32, 40)``."""
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or any(size <= 0 for size in shape):
        raise bad_value("initlab plan", "--input-shape", text, "positive integers separated by commas, e.g. 32,40")
    return shape


def example_input(shape: tuple[int, ...] | None, dtype: str) -> torch.Tensor | None:
    """A seeded example input of ``shape`` (None without a shape)."""
    if shape is None:
        return None
    if DTYPES[dtype].is_floating_point:
        return torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=DTYPES[dtype])
    return torch.zeros(shape, dtype=DTYPES[dtype])


def explicit_plan(record: InitRecord) -> Plan:
    """The plan a record followed, as one exact-name rule per parameter (untouched ones left out)."""
    rules = []
    for row in record.rows:
        if row.scheme is None:
            continue
        kind = "bias" if "bias" in row.name.rpartition(".")[2] else "weight"
        rules.append(Rule(match=row.name, **{kind: scheme_from_dict(row.scheme)}))
    return Plan(rules, default=None, strict=True)


def render(record: InitRecord, fmt: str) -> str:
    """The record in one of :data:`FORMATS`."""
    if fmt == "table":
        return str(record)
    if fmt == "json":
        return json.dumps(record.to_dict(), indent=2)
    plan = explicit_plan(record)
    return plan.to_toml() if fmt == "plan-toml" else plan.to_json()


def run(target: str, input_shape: str | None, input_dtype: str, fmt: str, seed: int) -> str:
    """Everything ``initlab plan`` prints."""
    if fmt not in FORMATS:
        raise bad_value("initlab plan", "--format", fmt, f"one of {', '.join(FORMATS)}")
    model = load_factory(target)
    shape = parse_shape(input_shape) if input_shape is not None else None
    record = preview(model, "auto", seed=seed, example_input=example_input(shape, input_dtype))
    return render(record, fmt)


def handle(args: Any) -> int:
    """The ``initlab plan`` handler (see :func:`initlab.cli._add_plan`)."""
    print(run(args.model, args.input_shape, args.input_dtype, args.format, args.seed))
    return 0
