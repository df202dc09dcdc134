"""The command's bounded inputs: every count, sweep and seed has a stated limit and a named error."""

import pytest

from initlab.cli import main

MODEL = "def make():\n    import torch\n    return torch.nn.Linear(4, 2)\n"


def _usage_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_theory_sweep_length_is_bounded(capsys):
    assert main(["theory", "tanh", "--sigma-w2", "1:2:100000000"]) == 2
    assert capsys.readouterr().err == (
        "initlab theory: error: theory: --sigma-w2='1:2:100000000' is invalid: 100000000 values; "
        "expected 1 to 10000.\n"
    )


def test_theory_list_length_is_bounded(capsys):
    values = ",".join(["1.5"] * 10_001)
    assert main(["theory", "tanh", "--sigma-w2", values]) == 2
    assert "...' is invalid: 10001 values; expected 1 to 10000." in capsys.readouterr().err


@pytest.mark.parametrize("seed", ["-1", str(2**64), "abc"])
def test_seed_beyond_64_bits_is_a_usage_error(tmp_path, capsys, seed):
    model = tmp_path / "model.py"
    model.write_text(MODEL)
    err = _usage_error(["audit", f"{model}:make", "--input-shape", "2,4", "--seed", seed], capsys)
    assert f"argument --seed: invalid seed {seed!r}; expected an integer in [0, 2**63 - 1]" in err


def test_absurd_input_shape_is_named(tmp_path, capsys):
    model = tmp_path / "model.py"
    model.write_text(MODEL)
    assert main(["audit", f"{model}:make", "--input-shape", "100000,100000,4"]) == 2
    assert capsys.readouterr().err == (
        "initlab audit: error: initlab audit: --input-shape='100000,100000,4' is invalid; expected at most "
        "268,435,456 elements in all (1 GiB of float32). It has 40,000,000,000.\n"
    )


@pytest.mark.parametrize("workers", ["0", "-1", "257"])
def test_run_workers_out_of_range_is_a_usage_error(tmp_path, capsys, workers):
    err = _usage_error(["run", str(tmp_path / "study.toml"), "--executor", "dask", "--workers", workers], capsys)
    assert f"argument --workers: invalid worker count {workers!r}; expected an integer in [1, 256]" in err
