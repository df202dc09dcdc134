"""The `initlab theory` command and the phase-diagram figure."""

import pytest

from initlab.cli import main
from initlab.errors import InitlabError
from initlab.report.theory_plot import plot_phase_diagram
from initlab.theory import phase_diagram


def test_theory_command_prints_sweep_and_critical_point(capsys):
    assert main(["theory", "tanh", "--sigma-b2", "0.05", "--sigma-w2", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "ordered" in out and "chaotic" in out
    assert "critical sigma_w2 (chi_1 = 1): 1.7609546" in out


def test_theory_command_explains_missing_critical_point_and_unbounded_rows(capsys):
    assert main(["theory", "relu", "--sigma-b2", "0.05", "--sigma-w2", "1,3"]) == 0
    out = capsys.readouterr().out
    assert "unbounded" in out and "no fixed point when sigma_b2 > 0" in out


def test_theory_command_rejects_bad_sweep(capsys):
    assert main(["theory", "tanh", "--sigma-w2", "1:nan:3"]) == 2
    assert "--sigma-w2='1:nan:3' is invalid" in capsys.readouterr().err


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_plot_writes_png_or_svg(tmp_path, suffix, magic, capsys):
    path = tmp_path / f"tanh{suffix}"
    assert main(["theory", "tanh", "--sigma-w2", "0.5:4:3", "--plot", str(path)]) == 0
    assert path.read_bytes().startswith(magic)
    if suffix == ".svg":
        text = path.read_text()
        for label in ("order-to-chaos phase diagram", "critical line", "trainable depth 6 xi_c", "sigma_b^2"):
            assert label in text


def test_plot_rejects_unknown_extension(tmp_path):
    diagram = phase_diagram("tanh", [1.0, 2.0], [0.0, 0.1])
    with pytest.raises(InitlabError, match=r"path=.*\.pdf' is invalid; expected a file name ending in \.png or \.svg"):
        plot_phase_diagram(diagram, tmp_path / "x.pdf", sigma_b2=0.05, depth_curve=diagram)
