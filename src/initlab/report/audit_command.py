"""``initlab audit FILE.py:factory --input-shape 32,40 [--init SCHEME|auto] [--seed S] [--html F] [--json F]``.

The file is executed as a module, ``factory()`` (no arguments) must return an
``nn.Module``; the batch is standard normal of the given shape from the
``initlab.random`` stream ``(seed, "audit.batch")``. ``--init`` first initialises the
model through :func:`initlab.nn.init_`: ``auto`` with the auto plan (the activations
actually used, found by running the batch), or ``SCHEME[:key=value,...]`` (e.g.
``he_normal``, ``normal:std=0.01``) for the weights of every Linear/Conv/ConvTranspose
layer, zero biases, and the auto plan for the other parameters.

Exit status: 0 healthy, 1 any unhealthy verdict (a CI gate), 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from initlab.errors import InitlabError, bad_value

WHERE = "initlab audit"
WEIGHTED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                   nn.ConvTranspose3d)
"""Layers whose weight ``--init SCHEME`` sets."""


def load_model(target: str) -> nn.Module:
    """The module ``factory()`` returns for ``FILE.py:factory``."""
    path_text, separator, factory_name = target.rpartition(":")
    if not separator or not path_text or not factory_name:
        raise bad_value(WHERE, "MODEL", target, "FILE.py:factory, e.g. models.py:make_mlp")
    path = Path(path_text)
    if not path.is_file():
        raise bad_value(WHERE, "MODEL", target, "an existing Python file before the colon", f"{path} does not exist.")
    spec = importlib.util.spec_from_file_location(f"initlab_audit_target_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        factory = getattr(module, factory_name, None)
        if not callable(factory):
            names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            raise bad_value(WHERE, "factory", factory_name, f"a callable defined in {path}",
                            f"Callables there: {', '.join(names) or 'none'}.")
        model = factory()
    except InitlabError:
        raise
    except Exception as error:
        raise InitlabError(f"{WHERE}: MODEL={target!r} failed to build: {type(error).__name__}: {error}.") from None
    if not isinstance(model, nn.Module):
        raise bad_value(WHERE, "factory", factory_name, "a function returning an nn.Module",
                        f"It returned {type(model).__name__}.")
    return model


def parse_shape(text: str) -> tuple[int, ...]:
    """``"32,40"`` -> ``(32, 40)``."""
    try:
        shape = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        shape = ()
    if not shape or any(size <= 0 for size in shape):
        raise bad_value(WHERE, "--input-shape", text, "positive integers separated by commas, e.g. 32,40")
    return shape


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
    from initlab.audit import audit
    from initlab.random import Stream, normal_
    from initlab.report.audit_terminal import print_audit

    model = load_model(args.model)
    batch = normal_(torch.empty(parse_shape(args.input_shape)), Stream(args.seed, "audit.batch"))
    if args.init:
        initialise(model, args.init, args.seed, batch)
    report = audit(model, batch, seed=args.seed, jacobian=not args.no_jacobian)
    print_audit(report)
    if args.html:
        report.to_html(args.html)
        print(f"wrote {args.html}")
    if args.json:
        report.to_json(args.json)
        print(f"wrote {args.json}")
    return 0 if report.healthy else 1
