"""``initlab plan FILE.py:factory --input-shape 32,40``: print the auto plan of a model.

The model comes from :func:`initlab.nn.factory.load_factory`. With ``--input-shape`` an input of that shape
(``randn`` for float32, zeros for int64 token ids) is traced through the
model; without it torch.fx is used.
"""

from __future__ import annotations

import argparse

import torch

from initlab._json import dumps
from initlab.cli import params
from initlab.errors import bad_value
from initlab.nn.apply import preview
from initlab.nn.factory import load_factory, parse_shape
from initlab.nn.plan import Plan, Rule
from initlab.nn.record import InitRecord
from initlab.nn.residual import scheme_from_dict

WHERE = "initlab plan"
FORMATS = ("table", "json", "plan-toml", "plan-json")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64}


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
        scheme = scheme_from_dict(row.scheme)
        is_bias = "bias" in row.name.rpartition(".")[2]
        rules.append(Rule(match=row.name, bias=scheme) if is_bias else Rule(match=row.name, weight=scheme))
    return Plan(rules, default=None, strict=True)


def render(record: InitRecord, fmt: str) -> str:
    """The record in one of :data:`FORMATS`."""
    if fmt == "table":
        return str(record)
    if fmt == "json":
        return dumps(record.to_dict(), indent=2)
    plan = explicit_plan(record)
    return plan.to_toml() if fmt == "plan-toml" else plan.to_json()


def run(target: str, input_shape: str | None, input_dtype: str, fmt: str, seed: int) -> str:
    """Everything ``initlab plan`` prints."""
    if fmt not in FORMATS:
        raise bad_value(WHERE, "--format", fmt, f"one of {', '.join(FORMATS)}")
    model = load_factory(target, WHERE)
    shape = parse_shape(input_shape, WHERE) if input_shape is not None else None
    record = preview(model, "auto", seed=seed, example_input=example_input(shape, input_dtype))
    return render(record, fmt)


def handle(args: argparse.Namespace) -> int:
    """The ``initlab plan`` handler: print the plan; returns 0."""
    print(run(args.model, args.input_shape, args.input_dtype, args.format, args.seed))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``initlab plan``."""
    parser = subparsers.add_parser(
        "plan",
        help="print the auto init plan of a model (scheme, activation found, gain per parameter)",
        description="Build the model FILE.py:factory returns and print initlab's auto plan for it, "
        "without changing it. FILE.py is executed as `python FILE.py` would run it.",
    )
    parser.add_argument("model", metavar="FILE.py:factory", help="a Python file and a function returning an nn.Module")
    parser.add_argument(
        "--input-shape", metavar="N,M,...", help="trace a run on an input of this shape (without it: torch.fx)"
    )
    parser.add_argument(
        "--input-dtype",
        default="float32",
        choices=tuple(DTYPES),
        help="dtype of the example input (int64: zeros, for token ids)",
    )
    parser.add_argument(
        "--format",
        default="table",
        choices=FORMATS,
        help="table, the record as JSON, or an explicit Plan (TOML/JSON) to edit and reuse",
    )
    parser.add_argument("--seed", type=params.seed, default=0, help="seed recorded with the plan")
    parser.set_defaults(handler=handle)
