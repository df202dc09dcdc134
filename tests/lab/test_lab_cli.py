"""The `initlab run` and `initlab runs` commands, end to end in this process."""

import csv
import json
import re

import pytest

from initlab.cli import main

STUDY = """
name = "cli"
description = "two seeds, two inits"
[dataset]
name = "digits"
[model]
depth = 1
width = 16
activation = "tanh"
weight_init = "glorot_normal"
[training]
steps = 20
log_every = 10
batch_size = 32
[grid]
"training.seed" = [0, 1]
"model.weight_init" = ["glorot_normal", {scheme = "normal", std = 0.01}]
[claim]
name = "compare"
params = {metric = "weight_norm", a = {"model.weight_init" = "glorot_normal"}, b = {"model.weight_init" = {scheme = "normal", std = 0.01}}, op = ">"}
"""


@pytest.fixture
def study(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    return path


def test_dry_run_lists_the_grid_without_training(study, tmp_path, capsys):
    assert main(["run", str(study), "--dry-run", "--store", str(tmp_path / "s.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "study cli: 4 run(s) in 1 batched group(s)" in out and "GFLOP" in out
    assert "seed=1, weight_init=normal" in out
    assert not (tmp_path / "s.sqlite").exists()


def test_run_list_show_export(study, tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    assert main(["run", str(study), "--store", store]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert report["trained"] == 4 and report["claim"]["holds"] is True
    # not a terminal: plain progress lines
    assert "[cli] 4/4 (100%)" in captured.err
    assert main(["run", str(study), "--store", store, "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["already_stored"] == 4
    assert main(["runs", "list", "--store", store, "--study", "cli"]) == 0
    listing = capsys.readouterr().out
    assert "4 run(s)" in listing and listing.count(" done ") == 4
    key = re.search(r"([0-9a-f]{12}) ", listing).group(1)
    assert main(["runs", "show", key, "--store", store]) == 0
    assert "history" in capsys.readouterr().out
    out_csv = tmp_path / "runs.csv"
    assert main(["runs", "export", "--csv", str(out_csv), "--store", store]) == 0
    with open(out_csv) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and {row["config.training.seed"] for row in rows} == {"0", "1"}
    assert all(float(row["summary.test_accuracy"]) > 0 for row in rows)
    assert "summary.act_std[0]" in rows[0]


def test_parquet_export_says_it_needs_pyarrow(study, tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    assert main(["run", str(study), "--store", store, "--quiet"]) == 0
    target = tmp_path / "runs.parquet"
    status = main(["runs", "export", "--parquet", str(target), "--store", store])
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert status == 2
        assert "--parquet needs the optional dependency pyarrow" in capsys.readouterr().err
    else:
        assert status == 0 and target.stat().st_size > 0


def test_cli_errors_exit_2_with_the_field(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[model]\nwidth = -1\n')
    assert main(["run", str(bad)]) == 2
    assert "model.width=-1 is invalid" in capsys.readouterr().err
    assert main(["runs", "list", "--store", str(tmp_path / "none.sqlite")]) == 2
    assert "expected an existing store file" in capsys.readouterr().err
