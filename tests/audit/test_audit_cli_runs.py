"""``initlab audit`` as a person and a CI job run it: the same command gives the same report byte
for byte, the caller's random states are left alone, the terminal output fits 100 columns,
a reader that leaves (``| head``) ends it quietly, progress shows on a terminal, and the HTML
says which initialisation was audited, in plain words (issue 17, points 3 and 6)."""

from __future__ import annotations

import html as html_text
import io
import json
import os
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from models_for_audit import batch, mlp, normal_init

import initlab
from initlab.cli import main
from initlab.report.audit_progress import audit_progress

SOURCE = Path(initlab.__file__).resolve().parents[1]

MODEL_FILE = textwrap.dedent("""
    from collections import OrderedDict

    import torch
    from torch import nn

    def make_model():
        # issue 17: a 20-layer tanh MLP with PyTorch's default init (drawn from torch's global RNG)
        layers = []
        for i in range(20):
            layers += [nn.Linear(40 if i == 0 else 64, 64), nn.Tanh()]
        return nn.Sequential(*layers, nn.Linear(64, 10))

    def make_wide_names():
        blocks = [(f"a_rather_long_block_name_{i}", nn.Sequential(nn.Linear(40 if i == 0 else 64, 64), nn.Tanh()))
                  for i in range(8)]
        return nn.Sequential(OrderedDict([*blocks, ("classification_head_with_a_long_name", nn.Linear(64, 300))]))
""")


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(MODEL_FILE)
    return path


def _cli(model_file: Path, factory: str, shape: str, *extra: str) -> list[str]:
    return ["audit", f"{model_file}:{factory}", "--input-shape", shape, *extra]


def test_the_same_command_gives_the_same_json_and_html_byte_for_byte(model_file, tmp_path, capsys):
    outputs = []
    for run in range(2):
        torch.rand(3)  # the caller's global RNG moves on between runs, as in any session
        js, html = tmp_path / f"{run}.json", tmp_path / f"{run}.html"
        status = main(_cli(model_file, "make_model", "32,40", "--seed", "0", "--json", str(js), "--html", str(html)))
        out = capsys.readouterr().out.replace(str(js), "JSON").replace(str(html), "HTML")
        outputs.append((status, js.read_bytes(), html.read_bytes(), out))
    assert outputs[0] == outputs[1]
    # the report holds no timestamp that a comparison would have to mask
    assert not re.search(rb"20\d\d-\d\d-\d\d", outputs[0][1] + outputs[0][2])


def test_seed_changes_the_model_and_the_batch(model_file, tmp_path, capsys):
    reports = []
    for seed in (0, 1):
        js = tmp_path / f"{seed}.json"
        main(_cli(model_file, "make_model", "32,40", "--seed", str(seed), "--json", str(js), "--no-jacobian"))
        reports.append(json.loads(js.read_text()))
    assert reports[0]["layers"][0]["weight_std"] != reports[1]["layers"][0]["weight_std"]


def test_the_callers_random_states_are_restored_after_the_command(model_file, capsys):
    torch.manual_seed(123)
    random.seed(4)
    np.random.seed(5)
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    main(_cli(model_file, "make_model", "16,40", "--init", "auto", "--seed", "7"))
    assert torch.equal(torch.get_rng_state(), states[0])
    assert random.getstate() == states[1]
    assert np.array_equal(np.random.get_state()[1], states[2])


def _run_cli(arguments: list[str], env_extra: dict[str, str] | None = None, **options) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SOURCE), **(env_extra or {})}
    env.pop("FORCE_COLOR", None)
    return subprocess.Popen([sys.executable, "-m", "initlab.cli", *arguments], env=env, **options)


def test_two_processes_give_the_same_json(model_file, tmp_path):
    texts = []
    for run in range(2):
        js = tmp_path / f"p{run}.json"
        process = _run_cli(_cli(model_file, "make_model", "32,40", "--seed", "0", "--json", str(js)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = process.communicate(timeout=300)
        assert process.returncode in (0, 1), err
        texts.append(js.read_bytes())
    assert texts[0] == texts[1]


def test_a_reader_that_leaves_ends_the_command_quietly_with_the_verdicts_status(model_file, tmp_path):
    js = tmp_path / "out.json"
    arguments = _cli(model_file, "make_model", "32,40", "--json", str(js), "--no-jacobian")
    process = _run_cli(arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # `| head -0`: the reader is gone before the first line
    err = process.stderr.read().decode()
    process.wait(timeout=300)
    process.stderr.close()
    verdict = json.loads(js.read_text())  # the report was written before printing
    assert process.returncode == (0 if verdict["healthy"] else 1)
    assert err == ""


def test_head_1_in_a_shell_pipe_prints_one_line_and_no_error(model_file, tmp_path):
    command = " ".join(["'" + sys.executable + "'", "-m", "initlab.cli",
                        *_cli(model_file, "make_wide_names", "8,40")]) + " | head -1"
    env = {**os.environ, "PYTHONPATH": str(SOURCE), "COLUMNS": "100"}
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.startswith("initlab audit: Sequential") and done.stdout.count("\n") == 1
    assert done.stderr == "" and done.returncode in (0, 1)


def test_the_terminal_output_fits_100_columns_with_one_line_per_layer_and_whole_words(model_file, tmp_path):
    js = tmp_path / "wide.json"
    process = _run_cli(_cli(model_file, "make_wide_names", "8,40", "--init", "normal:std=0.01", "--json", str(js)),
                       {"COLUMNS": "100"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1, err  # std 0.01 everywhere: vanishing, so fixes are printed
    report = json.loads(js.read_text())
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    rows = [line for line in lines if re.match(r"\s*\d+\s", line)]
    assert len(rows) == len(report["layers"])
    assert [row.split()[-1] for row in rows] == [layer["verdict"] for layer in report["layers"]]
    printed_words = set(" ".join(lines).split())
    for sentence in report["fixes"]:
        assert set(sentence.split()) <= printed_words  # no word cut at a line end
    assert "columns left out at this width" in out


def test_the_table_keeps_every_column_when_it_fits():
    report = initlab.audit(mlp(2, 8, torch.nn.Tanh, normal_init(0.3)), batch(8), jacobian=False)
    out = io.StringIO()
    from initlab.report.audit_terminal import print_audit

    print_audit(report, file=out, width=200)
    assert "columns left out" not in out.getvalue() and "|dW|/|W|" in out.getvalue()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_after_the_delay_and_erased():
    stream = _Terminal()
    with audit_progress(stream, delay=0.0) as progress:
        assert progress is not None
        initlab.audit(mlp(3, 16, torch.nn.Tanh, normal_init(0.3), out=50), batch(8), progress=progress)
        import time

        time.sleep(0.3)  # the display refreshes on its own thread
    text = stream.getvalue()
    assert "initlab audit:" in text and "Jacobian: Lanczos step" in text


def test_no_progress_for_a_quick_audit_or_off_a_terminal():
    stream = _Terminal()
    with audit_progress(stream, delay=30.0) as progress:
        initlab.audit(mlp(2, 8, torch.nn.Tanh, normal_init(0.3)), batch(8), progress=progress)
    assert stream.getvalue() == ""
    with audit_progress(io.StringIO()) as progress:
        assert progress is None


@pytest.mark.parametrize("init, expected", [
    (None, "initialisation: the model's own (no --init)"),
    ("auto", "initialisation: --init auto (initlab's auto plan"),
    ("he_normal", "initialisation: --init he_normal (the weights of every Linear/Conv layer"),
])
def test_the_html_says_which_init_was_applied_in_plain_words(model_file, tmp_path, capsys, init, expected):
    html, js = tmp_path / "out.html", tmp_path / "out.json"
    extra = ["--init", init] if init else []
    main(_cli(model_file, "make_model", "16,40", *extra, "--html", str(html), "--json", str(js), "--no-jacobian"))
    page = html.read_text()
    assert html_text.escape(expected) in page
    assert json.loads(js.read_text())["init"] == (init or "model's own")
    assert "cotangent" not in page and "gradients back-propagated from random unit-variance values" in page
