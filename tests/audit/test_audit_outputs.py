"""Terminal table, versioned JSON, self-contained escaped HTML, the notebook repr, and the CLI
exit statuses (issue 5, sec. 4 and 5)."""

from __future__ import annotations

import io
import json
import math
import re
import textwrap

import pytest
import torch
from models_for_audit import batch, mlp, normal_init
from torch import nn

from initlab.auditing import SCHEMA_VERSION, AuditReport, audit
from initlab.cli import main
from initlab.errors import InitlabError

HOSTILE = "<script>alert(1)</script>"


class Hostile(nn.Module):
    """A model whose module and class names carry markup."""

    def __init__(self):
        super().__init__()
        self.add_module(HOSTILE, nn.Linear(40, 32))
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(torch.tanh(getattr(self, HOSTILE)(x)))


Hostile.__name__ = "Evil<b>Model</b>"


@pytest.fixture(scope="module")
def unhealthy() -> AuditReport:
    return audit(mlp(8, 64, nn.Tanh, normal_init(0.01)), batch(32))


def test_terminal_table_has_one_row_per_layer_then_the_verdict_and_fixes(unhealthy):
    out = io.StringIO()
    unhealthy.print(file=out)
    text = out.getvalue()
    rows = [line for line in text.splitlines() if re.match(r"\s*\d+\s+\S+\s+Linear", line)]
    assert len(rows) == len(unhealthy.layers) == 9
    assert "Linear → Tanh" in rows[0] and any("vanishing" in row for row in rows)
    assert "overall: vanishing" in text
    assert "glorot_normal" in text.replace("\n", "")


def test_json_is_versioned_and_round_trips(unhealthy, tmp_path):
    path = tmp_path / "audit.json"
    text = unhealthy.to_json(path)
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION == 2
    assert data["verdict"] == "vanishing" and data["healthy"] is False
    assert data["layers"][0]["output"]["histogram"]["counts"]
    assert AuditReport.from_json(text).to_dict() == unhealthy.to_dict()


def test_json_writes_non_finite_values_as_strings_and_reads_them_back():
    class Overflow(nn.Module):
        def forward(self, x):
            return torch.exp(x * 200)  # inf in float32

    report = audit(nn.Sequential(nn.Linear(40, 8), Overflow(), nn.Linear(8, 2)), batch(8), jacobian=False)
    text = report.to_json()

    def refuse(constant):
        raise AssertionError(f"non-standard JSON literal {constant}")

    data = json.loads(text, parse_constant=refuse)  # strict JSON: no NaN/Infinity literals
    # the gradient through exp(200 x) overflows at the first layer's output
    assert data["layers"][0]["grad_output_norm"] == "inf" and data["layers"][0]["grad_output_std"] == "nan"
    back = AuditReport.from_json(text)
    assert back.verdict == "non_finite" and back.first("non_finite").layer == 2  # where inf first appears
    assert math.isinf(back.layers[0].grad_output_norm) and math.isnan(back.layers[0].grad_output_std)


def test_json_with_another_schema_version_or_no_json_is_refused(unhealthy):
    data = json.loads(unhealthy.to_json())
    data["schema_version"] = 99
    with pytest.raises(InitlabError, match=r"AuditReport.from_json: schema_version=99 is invalid; expected 2"):
        AuditReport.from_json(json.dumps(data))
    with pytest.raises(InitlabError, match=r"AuditReport.from_json: text is not JSON \(Expecting value"):
        AuditReport.from_json("not json")


def test_html_is_self_contained_and_escapes_user_strings(tmp_path):
    report = audit(Hostile(), batch(16))
    page = report.to_html(tmp_path / "hostile.html")
    assert (tmp_path / "hostile.html").read_text(encoding="utf-8") == page
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Evil&lt;b&gt;Model&lt;/b&gt;" in page and "<b>" not in page
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert page.count('<img src="data:image/png;base64,') == 3  # curves, histograms, Jacobian


def test_html_shows_borderline_findings_as_warnings_not_as_no_finding():
    from models_for_audit import scheme_init

    from initlab import he_normal
    from initlab.auditing import Thresholds

    model = mlp(10, 256, nn.ReLU, scheme_init(he_normal()))
    with torch.no_grad():
        model[8].weight.mul_(100)
    report = audit(model, batch(), jacobian=False, thresholds=Thresholds(layer_gain_max=60.0))
    assert report.verdict == "borderline"
    fragment = report._repr_html_()
    assert "every layer is healthy" not in fragment and "No definite finding." in fragment
    assert 'id="borderline"' in fragment and 'id="findings"' not in fragment
    assert "overall: borderline" in fragment and "#bf8700" in fragment
    healthy = audit(mlp(4, 64, nn.ReLU, scheme_init(he_normal())), batch(), jacobian=False)
    assert healthy.verdict == "healthy" and "No finding: every layer is healthy." in healthy._repr_html_()


def test_repr_html_is_a_fragment_for_notebooks(unhealthy):
    fragment = unhealthy._repr_html_()
    assert fragment.startswith('<div class="audit">') and "<html" not in fragment
    assert "vanishing" in fragment and 'id="layers"' in fragment


MODEL_FILE = textwrap.dedent("""
    from torch import nn

    def make_mlp():
        layers = []
        for i in range(6):
            layers += [nn.Linear(40 if i == 0 else 64, 64), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(64, 10))

    def not_a_model():
        return 42
""")


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(MODEL_FILE)
    return path


def test_cli_exit_0_when_healthy_and_writes_reports(model_file, tmp_path, capsys):
    html, js = tmp_path / "out.html", tmp_path / "out.json"
    status = main(["audit", f"{model_file}:make_mlp", "--input-shape", "32,40", "--init", "he_normal",
                   "--seed", "3", "--html", str(html), "--json", str(js)])
    assert status == 0, capsys.readouterr().out
    data = json.loads(js.read_text())
    assert data["healthy"] is True and data["seed"] == 3 and data["batch_shape"] == [32, 40]
    assert "<html" in html.read_text() and "overall: healthy" in capsys.readouterr().out


def test_cli_exit_1_when_unhealthy(model_file, capsys):
    status = main(["audit", f"{model_file}:make_mlp", "--input-shape", "32,40", "--init", "normal:std=0.01",
                   "--no-jacobian"])
    assert status == 1
    assert "overall: vanishing" in capsys.readouterr().out


def test_cli_no_fix_check_gives_the_fixes_unverified(model_file, tmp_path, capsys):
    js = tmp_path / "out.json"
    status = main(["audit", f"{model_file}:make_mlp", "--input-shape", "32,40", "--init", "normal:std=0.01",
                   "--no-jacobian", "--no-fix-check", "--json", str(js)])
    assert status == 1
    data = json.loads(js.read_text())
    assert data["verdict"] == "vanishing"
    assert "fixes not verified (verify_fixes=False): no copy of the model was re-audited" in data["notes"]


def test_cli_init_auto_uses_the_auto_plan(model_file, capsys):
    assert main(["audit", f"{model_file}:make_mlp", "--input-shape", "16,40", "--init", "auto", "--no-jacobian"]) == 0


@pytest.mark.parametrize("arguments, message", [
    (["{file}:make_mlp", "--input-shape", "32,41"], r"batch shape \(32, 41\)"),
    (["{file}:make_mlp", "--input-shape", "32,x"], r"--input-shape='32,x' is invalid"),
    (["{file}:missing", "--input-shape", "32,40"], r"factory='missing' is invalid.*make_mlp"),
    (["{file}:not_a_model", "--input-shape", "32,40"], r"returning an nn.Module.*int"),
    (["nowhere.py:make_mlp", "--input-shape", "32,40"], r"an existing Python file"),
    (["{file}:make_mlp", "--input-shape", "32,40", "--init", "bogus"], r"unknown scheme 'bogus'"),
])
def test_cli_exit_2_on_bad_usage_with_a_clear_message(model_file, capsys, arguments, message):
    argv = ["audit", *(a.format(file=model_file) for a in arguments)]
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)
