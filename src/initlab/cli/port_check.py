"""``initlab port-check``: one scheme under torch's, Keras's and JAX's conventions, side by side.

``initlab port-check he_normal 256 128`` prints, for a torch Linear weight of
shape (256, 128), initlab's values and what torch's, Keras's and JAX's
initializers of the same name sample on that weight in their own layouts (and
on the array copied as is), with the traps; ``--json`` prints the
:class:`initlab.conventions.ConventionReport` as JSON. Exit status 0, or 2
for bad usage.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from initlab.errors import InitlabError

_BOOLEANS = {"true": True, "false": False}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``port-check`` sub-command to ``subparsers``; its handler is :func:`run`."""
    from initlab.conventions import FRAMEWORKS, PORT_LAYOUTS

    parser = subparsers.add_parser(
        "port-check",
        help="a scheme's torch, Keras and JAX conventions side by side for one weight",
        description="Print, for SCHEME on a weight of shape DIM..., the fans, std and bounds that initlab, torch, "
        "Keras and JAX give it, the framework calls, and the traps of porting between them.",
    )
    parser.add_argument("scheme", metavar="SCHEME", help="scheme name, e.g. he_normal, glorot_normal, orthogonal")
    parser.add_argument("shape", nargs="+", type=int, metavar="DIM", help="the weight's shape in --framework's layout")
    parser.add_argument(
        "--framework",
        choices=FRAMEWORKS,
        default="torch",
        help="the convention the shape is given in (default torch: (out, in, *k))",
    )
    parser.add_argument(
        "--layout", choices=PORT_LAYOUTS, help="linear, conv or embedding (default: linear up to 2-D, conv above)"
    )
    parser.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="scheme argument, e.g. mode=fan_out, gain=2, corrected=true; repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run)
    return parser


def parse_scheme_options(pairs: Sequence[str]) -> dict[str, float | bool | str]:
    """``["gain=2", "mode=fan_out", "corrected=true"]`` -> ``{"gain": 2.0, "mode": "fan_out", "corrected": True}``."""
    options: dict[str, float | bool | str] = {}
    for pair in pairs:
        key, separator, text = pair.partition("=")
        if not separator or not key:
            raise InitlabError(f"--param={pair!r} is invalid; expected KEY=VALUE, e.g. mode=fan_out.")
        if text.lower() in _BOOLEANS:
            options[key] = _BOOLEANS[text.lower()]
            continue
        try:
            options[key] = float(text)
        except ValueError:
            options[key] = text
    return options


def run(args: argparse.Namespace) -> int:
    """Print the port check of ``args.scheme`` on ``args.shape``; returns the exit status."""
    from initlab.conventions import compare_conventions

    options = parse_scheme_options(args.param or [])
    report = compare_conventions(args.scheme, args.shape, layout=args.layout, framework=args.framework, **options)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_text())
    return 0
