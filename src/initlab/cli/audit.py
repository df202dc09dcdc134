"""``initlab audit FILE.py:factory --input-shape 32,40 [--init SCHEME|auto] [--seed S] [--html F] [--json F]``.

The file is executed as a module, ``factory()`` (no arguments) must return an
``nn.Module``; it runs with the global random generators (torch, ``random``, numpy) seeded
with ``--seed`` and restored afterwards, so the same command builds the same model. The
batch is standard normal of the given shape from the ``initlab.random`` stream
``(seed, "audit.batch")``, and the audit itself is seeded with ``--seed``: the same command
gives the same report, byte for byte (on the same machine and thread count). ``--init`` first initialises the
model through :func:`initlab.nn.init_`: ``auto`` with the auto plan (the activations
actually used, found by running the batch), or ``SCHEME[:key=value,...]`` (e.g.
``he_normal``, ``normal:std=0.01``) for the weights of every Linear/Conv/ConvTranspose
layer, zero biases, and the auto plan for the other parameters.

The reports are written before anything is printed. A reader that stops reading the
terminal output (``| head -1``) ends the printing quietly; the exit status is still the
verdict's. Progress is shown on standard error when it is a terminal and the audit runs
longer than a second.

Exit status: 0 healthy, 1 any unhealthy verdict (a CI gate), 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import torch
from torch import nn

from initlab.cli import params
from initlab.errors import bad_value
from initlab.nn.factory import load_factory, parse_shape

WHERE = "initlab audit"
WEIGHTED_LAYERS = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)
"""Layers whose weight ``--init SCHEME`` sets."""


def parse_scheme(text: str):
    """``"normal:std=0.01"`` -> ``initlab.get("normal", std=0.01)``."""
    from initlab.schemes import get

    name, _, arguments = text.partition(":")
    params: dict[str, Any] = {}
    for pair in filter(None, arguments.split(",")):
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            raise bad_value(WHERE, "--init", text, "SCHEME or SCHEME:key=value,... e.g. normal:std=0.01")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            params[key.strip()] = value.strip()
    return get(name.strip(), **params)


def initialise(model: nn.Module, spec: str, seed: int, batch: torch.Tensor) -> None:
    """Apply ``--init`` (``auto`` or a scheme) through :func:`initlab.nn.init_`."""
    from initlab.nn import Plan, Rule, init_
    from initlab.schemes import zeros

    if spec == "auto":
        init_(model, "auto", seed=seed, example_input=batch)
        return
    rule = Rule(type=WEIGHTED_LAYERS, weight=parse_scheme(spec), bias=zeros())
    init_(model, Plan([rule], default="auto"), seed=seed, example_input=batch)


def run(args: argparse.Namespace) -> int:
    """The ``initlab audit`` handler; returns the exit status."""
    from initlab.auditing import audit
    from initlab.auditing.state import seeded
    from initlab.random import Stream, normal_
    from initlab.report.audit_progress import audit_progress

    batch = normal_(torch.empty(parse_shape(args.input_shape, WHERE)), Stream(args.seed, "audit.batch"))
    with seeded(args.seed):
        model = load_factory(args.model, WHERE)
        if args.init:
            initialise(model, args.init, args.seed, batch)
    with audit_progress(sys.stderr) as progress:
        report = audit(
            model,
            batch,
            seed=args.seed,
            jacobian=not args.no_jacobian,
            progress=progress,
            verify_fixes=not args.no_fix_check,
        )
    report.init = args.init or "model's own"
    written = []
    if args.html:
        report.to_html(args.html)
        written.append(args.html)
    if args.json:
        report.to_json(args.json)
        written.append(args.json)
    _print_report(report, written)
    return 0 if report.healthy else 1


def _print_report(report: Any, written: list[str]) -> None:
    """The terminal report; if the reader closes the pipe (``| head``), stop printing without
    an error (standard output then points at the null device, so nothing is written at exit)."""
    from initlab.report.audit_terminal import render_audit

    try:
        sys.stdout.write(render_audit(report, terminal=sys.stdout.isatty()))
        for path in written:
            sys.stdout.write(f"wrote {path}\n")
        sys.stdout.flush()
    except BrokenPipeError:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``initlab audit``."""
    parser = subparsers.add_parser(
        "audit",
        help="audit a model's initialization on a random batch: per-layer statistics, verdicts, fixes",
        description="Build the model FILE.py:factory returns (FILE.py is executed as `python FILE.py` would "
        "run it), optionally initialise it, run one forward and backward pass on a "
        "standard-normal batch and print per-layer verdicts. Exit status: 0 healthy, "
        "1 unhealthy (use it as a CI gate), 2 bad usage.",
    )
    parser.add_argument("model", metavar="FILE.py:factory", help="a Python file and a function returning an nn.Module")
    parser.add_argument("--input-shape", required=True, metavar="N,M,...", help="shape of the batch, e.g. 32,40")
    parser.add_argument(
        "--init",
        metavar="SCHEME|auto",
        help="initialise first: 'auto' (initlab.init_ auto plan) or a scheme for Linear/Conv "
        "weights, e.g. he_normal or normal:std=0.01",
    )
    parser.add_argument("--seed", type=params.seed, default=0, help="seed of the batch, the init and the audit")
    parser.add_argument("--html", metavar="FILE", help="write the self-contained HTML report")
    parser.add_argument("--json", metavar="FILE", help="write the JSON report")
    parser.add_argument("--no-jacobian", action="store_true", help="skip the Jacobian spectrum")
    parser.add_argument(
        "--no-fix-check",
        action="store_true",
        help="give the fixes without re-auditing a fixed copy of the model (for a model too large to hold twice)",
    )
    parser.set_defaults(handler=run)
