"""Issue 20, the audit's part: a NaN anywhere in the audited output is a ``non_finite`` finding,
and inputs the audit cannot measure are named errors raised before anything runs (not a
crash inside the audit, not blamed on the model), leaving the model as it was."""

from __future__ import annotations

import re

import pytest
import torch
from models_for_audit import batch
from torch import nn

import initlab
from initlab.auditing.state import bits_equal, model_tensors
from initlab.errors import InitlabError


class LogAfterTheLastLayer(nn.Module):
    """The issue's case: the NaN comes from functional code after the last module."""

    def __init__(self):
        super().__init__()
        self.l = nn.Linear(40, 5)

    def forward(self, x):
        return torch.log(self.l(x) - 100)


@pytest.mark.parametrize("jacobian", [False, True])
def test_nan_made_after_the_last_module_is_a_non_finite_finding(jacobian):
    torch.manual_seed(0)
    report = initlab.audit(LogAfterTheLastLayer(), batch(16), jacobian=jacobian)
    assert report.verdict == "non_finite" and not report.healthy
    finding = report.first("non_finite")
    assert finding.layer_name == "l" and finding.rule == "non_finite_model_output=80 > 0"
    assert "the model's output holds 80 NaN/inf values of 80" in finding.message
    assert report.layer("l").output.non_finite == 0  # the layer itself is finite: the code after it is not


def test_a_nan_made_inside_a_layer_is_reported_there_once():
    class Overflow(nn.Module):
        def forward(self, x):
            return torch.exp(x * 1e4)

    report = initlab.audit(nn.Sequential(nn.Linear(40, 8), Overflow(), nn.Linear(8, 2)), batch(8), jacobian=False)
    non_finite = [f for f in report.findings if f.kind == "non_finite"]
    assert len(non_finite) == 1 and non_finite[0].rule.startswith("non_finite_outputs=")


def _meta_linear() -> nn.Module:
    return nn.Linear(5, 3, device="meta")


@pytest.mark.parametrize("model, data, message", [
    (lambda: nn.Linear(5, 0), lambda: torch.randn(8, 5),
     r"^audit: the audited output has shape \(8, 0\): no values to audit; expected an output with at least one "
     r"value per sample"),
    (lambda: nn.Linear(5, 3), lambda: torch.randn(0, 5),
     r"^audit: batch \(shape \(0, 5\)\) is empty; expected a batch whose first dimension indexes at least one "
     r"sample"),
    (lambda: nn.Linear(5, 3), lambda: (torch.randn(4, 5), torch.empty(4, 0)),
     r"^audit: batch\[1\] \(shape \(4, 0\)\) is empty"),
    (_meta_linear, lambda: torch.randn(8, 5),
     r"^audit: model parameter or buffer 'weight' is on the meta device \(it has a shape but no values\); expected "
     r"a model with values to audit: materialise it first \(model.to_empty\(device='cpu'\)"),
    (lambda: nn.Linear(5, 3), lambda: torch.randn(8, 5, device="meta"),
     r"^audit: batch \(shape \(8, 5\)\) is on the meta device \(no values\)"),
    (lambda: nn.Linear(5, 3), lambda: torch.randn(8, 5).to_sparse(),
     r"^audit: batch \(shape \(8, 5\)\) is a torch.sparse_coo tensor; expected a dense tensor \(the audit measures "
     r"every value\): pass batch.to_dense\(\)\.$"),
    (lambda: nn.Linear(5, 3), lambda: torch.randn(8, 5).to_sparse_csr(),
     r"^audit: batch \(shape \(8, 5\)\) is a torch.sparse_csr tensor"),
])
@pytest.mark.parametrize("jacobian", [False, True])
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors:UserWarning")
@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta:UserWarning")
def test_inputs_the_audit_cannot_measure_are_named_errors(model, data, message, jacobian):
    module, inputs = model(), data()
    before = [t.detach().clone() for t in model_tensors(module)] if not _meta(module) else []
    with pytest.raises(InitlabError, match=message) as raised:
        initlab.audit(module, inputs, jacobian=jacobian)
    assert raised.value.__cause__ is None  # the audit's own check, not an error of the model
    assert "the model raised" not in str(raised.value)
    for tensor, copy in zip(model_tensors(module), before):
        assert bits_equal(tensor.detach(), copy)


def _meta(module: nn.Module) -> bool:
    return any(t.is_meta for t in model_tensors(module))


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors:UserWarning")
def test_the_command_line_says_the_same_with_exit_status_2(tmp_path, capsys):
    from initlab.cli import main

    path = tmp_path / "empty.py"
    path.write_text("from torch import nn\n\ndef make():\n    return nn.Linear(5, 0)\n")
    assert main(["audit", f"{path}:make", "--input-shape", "8,5"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"initlab audit: error: audit: the audited output has shape \(8, 0\)", err)
    assert "Traceback" not in err
