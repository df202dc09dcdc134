"""What ``init_`` did to every parameter, and a re-check of a model against it.

An :class:`InitRecord` has one :class:`Row` per parameter (tied parameters
once, under their first name, with their other names as ``aliases``):
qualified name, shape, layout, scheme with its arguments, fans, the
activation the choice was based on and how it was found, gain, target std,
the std and mean measured right after initialization, and the random
stream ``(seed, name)`` the values came from. Parameters no rule covered
have status ``"untouched"`` and say why.

:func:`verify` re-checks a model against a record: each initialised
parameter must still have its shape, its measured std and mean (relative
tolerance 1e-5, which float32 reductions in another thread layout meet) and
the exact values recorded at 8 fixed positions. A later re-initialisation of
any one layer — even with the same distribution — changes those values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from initlab.errors import InitlabError, bad_value

PROBES = 8
"""Values recorded per parameter, at evenly spaced flat positions."""
_REL_TOL = 1e-5


@dataclass
class Row:
    """One parameter of an :class:`InitRecord`.

    Attributes:
        name: qualified parameter name (the first, for a tied parameter).
        shape: its shape.
        dtype: its dtype (``"float32"``, ``"bfloat16"``...).
        status: ``"initialised"``, ``"planned"`` (a preview), ``"untouched"`` or ``"loaded"``
            (left as loaded from a checkpoint by a partial init).
        layout: the layout's ``to_dict()`` (None for a 1-D tensor).
        scheme: the scheme's ``to_dict()`` (None when untouched).
        scheme_name: display name (``he_normal``, ``zeros``, ``glorot_normal x0.2``...).
        fans: ``Fans.to_dict()`` where the scheme is fan-based.
        activation: the activation's name and parameters, e.g. ``"leaky_relu(negative_slope=0.2)"``.
        found_by: how it was found (``"fx: act1"``, ``"trace: relu via bn1"``, ``"rule"``...).
        gain: the gain the scheme applies.
        target_std: the std the scheme aims at.
        measured_std, measured_mean: measured after initialization (None in a preview).
        probes: the values at the probe positions (for :func:`verify`).
        seed, stream: the random stream the values came from (``Stream(seed, stream)``).
        aliases: other names of a tied parameter.
        note: anything else worth knowing (defaults, padding row, residual scaling...).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    status: str
    layout: dict | None = None
    scheme: dict | None = None
    scheme_name: str = ""
    fans: dict | None = None
    activation: str | None = None
    found_by: str = ""
    gain: float | None = None
    target_std: float | None = None
    measured_std: float | None = None
    measured_mean: float | None = None
    probes: list[float] = field(default_factory=list)
    seed: int = 0
    stream: str = ""
    aliases: list[str] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shape"] = list(self.shape)
        return data


@dataclass
class InitRecord:
    """The record of one ``init_`` (or ``preview``) call.

    Attributes:
        seed: the seed.
        discovery: how activations were found (``"fx"``, ``"trace"``, ``"unknown"``, ``""`` if not needed).
        discovery_note: details (e.g. why fx failed).
        rows: one per unique parameter, in ``named_parameters()`` order.
        buffers_reset: norm-layer buffers reset to their initial values (running mean 0, var 1).
        partial: for ``init_(..., only=...)``: the ``missing``, ``mismatched`` and ``unexpected``
            keys and how many parameters were ``left_as_loaded``; None for a full init.
    """

    seed: int
    discovery: str
    discovery_note: str
    rows: list[Row]
    buffers_reset: list[str] = field(default_factory=list)
    partial: dict[str, Any] | None = None

    @property
    def untouched(self) -> list[str]:
        """Names of the parameters left untouched."""
        return [row.name for row in self.rows if row.status == "untouched"]

    def row(self, name: str) -> Row:
        """The row of parameter ``name`` (a tied parameter's alias works too)."""
        for row in self.rows:
            if row.name == name or name in row.aliases:
                return row
        raise bad_value("InitRecord.row", "name", name, f"one of {', '.join(r.name for r in self.rows)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; :meth:`from_dict` rebuilds an equal record."""
        return {
            "seed": self.seed,
            "discovery": self.discovery,
            "discovery_note": self.discovery_note,
            "rows": [row.to_dict() for row in self.rows],
            "buffers_reset": list(self.buffers_reset),
            "partial": None if self.partial is None else dict(self.partial),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InitRecord:
        try:
            rows = [Row(**{**row, "shape": tuple(row["shape"])}) for row in data["rows"]]
            return cls(
                data["seed"],
                data["discovery"],
                data["discovery_note"],
                rows,
                list(data.get("buffers_reset", [])),
                data.get("partial"),
            )
        except (KeyError, TypeError) as error:
            raise bad_value(
                "InitRecord.from_dict",
                "data",
                type(data).__name__,
                "the output of InitRecord.to_dict()",
                f"({type(error).__name__}: {error})",
            ) from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        return format_table(self)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _layout_text(layout: dict | None) -> str:
    if layout is None:
        return "-"
    extras = [f"{key}={value}" for key, value in layout.items() if key != "kind"]
    return layout["kind"] + (f"({', '.join(extras)})" if extras else "")


def format_table(record: InitRecord) -> str:
    """The record as a fixed-width text table, with a summary line."""
    header = (
        "parameter",
        "shape",
        "layout",
        "scheme",
        "fan_in/out",
        "activation",
        "found by",
        "gain",
        "target std",
        "measured std",
    )
    lines = []
    for row in record.rows:
        fans = "-" if row.fans is None else f"{row.fans['fan_in']}/{row.fans['fan_out']}"
        name = row.name + (f" (= {', '.join(row.aliases)})" if row.aliases else "")
        scheme = {"untouched": "UNTOUCHED", "loaded": "LOADED"}.get(row.status, row.scheme_name)
        lines.append(
            (
                name,
                "x".join(map(str, row.shape)) or "scalar",
                _layout_text(row.layout),
                scheme,
                fans,
                row.activation or "-",
                _clip(row.found_by or "-", 40),
                _number(row.gain),
                _number(row.target_std),
                _number(row.measured_std),
            )
        )
    out = text_table(header, lines)
    notes = [f"  {row.name}: {row.note}" for row in record.rows if row.note and row.status != "loaded"]
    touched = sum(row.status not in ("untouched", "loaded") for row in record.rows)
    loaded = sum(row.status == "loaded" for row in record.rows)
    out.append("")
    verb = "planned" if any(row.status == "planned" for row in record.rows) else "set"
    out.append(
        f"seed {record.seed}; {touched} parameter(s) {verb}, "
        + (f"{loaded} left as loaded, " if loaded else "")
        + f"{len(record.untouched)} untouched"
        + (f": {', '.join(record.untouched)}" if record.untouched else "")
        + (f"; activations by {record.discovery} ({record.discovery_note})" if record.discovery else "")
    )
    if notes:
        out.append("notes:")
        out.extend(notes)
    return "\n".join(out)


def text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Lines of a left-aligned fixed-width table: the header, a rule, the rows."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths)).rstrip()
        for cells in [header, ["-" * width for width in widths], *rows]
    ]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------ measuring


def probe_positions(numel: int) -> list[int]:
    """Up to :data:`PROBES` evenly spaced flat positions of a tensor of ``numel`` elements."""
    if numel <= 0:
        return []
    count = min(PROBES, numel)
    return sorted({(numel - 1) * k // max(count - 1, 1) for k in range(count)})


_ROW = 1024


def _moments(flat: torch.Tensor) -> tuple[float, float]:
    """(sum, sum of squares) of a float vector, in one read per statistic and no temporary.

    Rows of 1024 are reduced in the tensor's dtype (rounding error ~1e-7 relative per row),
    the row results added in float64: ~1e-10 relative on 10^7 normals, where a float32
    ``torch.linalg.vector_norm`` of the whole tensor is off by ~1e-3.
    """
    whole = flat.numel() // _ROW * _ROW
    rows, tail = flat[:whole].view(-1, _ROW), flat[whole:].double()
    row_sums = torch.mv(rows, torch.ones(_ROW, dtype=rows.dtype, device=rows.device))  # BLAS: ~2x sum(dim=1)
    total = float(row_sums.double().sum()) + float(tail.sum())
    squares = float(torch.linalg.vector_norm(rows, dim=1).double().square().sum()) + float(tail.square().sum())
    return total, squares


def variance_mean(tensor: torch.Tensor) -> tuple[float, float]:
    """Unbiased variance and mean of all elements of a non-empty tensor, cheaply.

    From the sums of :func:`_moments`, Var = (sum(x^2) - n mean^2) / (n - 1); that loses digits when |mean| is not
    small next to the RMS, so then (|mean| > 1% of the RMS: biases, norm weights,
    offsets) a two-pass variance in float64 is used instead.
    """
    with torch.no_grad():
        data = tensor.detach()
        data = data.float() if data.dtype in (torch.float16, torch.bfloat16) else data
        flat = data.reshape(-1)
        count = flat.numel()
        total, squares = _moments(flat)
        mean = total / count
        if count == 1:
            return 0.0, mean
        if mean * mean > 1e-4 * squares / count:
            return float(flat.double().var()), mean
        return max(squares - count * mean * mean, 0.0) / (count - 1), mean


def measure(tensor: torch.Tensor) -> tuple[float | None, float | None, list[float]]:
    """(std, mean, probe values) of a tensor (None, None, [] when it is empty); see :func:`variance_mean`."""
    count = tensor.numel()
    if count == 0:
        return None, None, []
    variance, mean = variance_mean(tensor)
    flat = tensor.detach().reshape(-1)
    probes = flat[torch.tensor(probe_positions(count), device=flat.device)].float().tolist()
    return math.sqrt(variance), mean, probes


# ------------------------------------------------------------------ verify


@dataclass(frozen=True)
class Verification:
    """The result of :func:`verify`: ``ok`` and one line per problem found."""

    ok: bool
    problems: tuple[str, ...]

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return "model matches its init record" if self.ok else "\n".join(self.problems)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=1e-12)


def verify(model: nn.Module, record: InitRecord, *, raise_on_mismatch: bool = False) -> Verification:
    """Re-check ``model`` against ``record``: did any initialised parameter change since?

    Args:
        model: the model ``record`` was made for.
        record: the :class:`InitRecord` returned by ``init_``.
        raise_on_mismatch: raise :class:`InitlabError` listing the problems instead of returning.

    Returns:
        A :class:`Verification`; ``ok`` is False when a parameter is missing,
        changed shape, or its std, mean or probe values differ from the record.
    """
    if not isinstance(record, InitRecord):
        raise bad_value("verify", "record", type(record).__name__, "an InitRecord returned by init_")
    params = dict(model.named_parameters(remove_duplicate=False))
    problems = []
    for row in record.rows:
        if row.status != "initialised" or row.measured_std is None:
            continue
        tensor = params.get(row.name)
        if tensor is None:
            problems.append(f"{row.name}: not a parameter of the model any more")
            continue
        if tuple(tensor.shape) != tuple(row.shape):
            problems.append(f"{row.name}: shape {tuple(tensor.shape)} != recorded {tuple(row.shape)}")
            continue
        std, mean, probes = measure(tensor)
        if not (_close(std, row.measured_std) and _close(mean, row.measured_mean)) or probes != row.probes:
            problems.append(
                f"{row.name}: changed since init_ (std {_number(std)} vs recorded {_number(row.measured_std)}, "
                f"mean {_number(mean)} vs {_number(row.measured_mean)}); it was re-initialised or trained"
            )
    result = Verification(not problems, tuple(problems))
    if raise_on_mismatch and problems:
        raise InitlabError("verify: the model does not match its init record:\n" + "\n".join(problems))
    return result
