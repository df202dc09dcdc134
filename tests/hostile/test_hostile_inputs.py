"""Hostile inputs (issue 20): each is refused with a named error and the exit code that means it,
and no file is changed or lost.

Exit status: 0 done / healthy, 1 a finding (unhealthy model, claim that does not hold, failed run),
2 bad input or environment (a one-line ``initlab CMD: error: ...``, no traceback). Most cases call
``initlab.cli.main`` in this process; the few that need a real process (kill -9 and resume, a
driver killed under its workers, two processes sharing a store) live in tests/lab/test_lab_store.py
and tests/lab/test_lab_waiting.py.
"""

import hashlib
import json
import os
import sqlite3

import numpy as np
import pytest
import torch
from torch import nn

import initlab
from initlab.cli import main
from initlab.errors import InitlabError
from initlab.lab import store as store_module
from initlab.lab.store import Store

MODEL = "import torch\n\ndef make():\n    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))\n"
STUDY = """
name = "hostile"
[dataset]
name = "teacher"
n_train = 64
n_test = 32
input_dim = 4
[model]
depth = 1
width = 4
[training]
steps = 1
log_every = 1
batch_size = 16
"""


def _snapshot(folder):
    """Every file under ``folder``: its bytes' SHA-256 and mtime. The empty ``-wal`` / ``-shm`` files
    SQLite creates beside a WAL store for any reader hold no data and are left out."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if path.name.endswith(("-shm", "-wal")) and (path.name.endswith("-shm") or path.stat().st_size == 0):
            continue
        files[str(path.relative_to(folder))] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return files


def _cli(argv, capsys):
    """(exit status, stderr) of ``initlab ARGV`` in this process (argparse usage errors included)."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


@pytest.fixture
def world(tmp_path):
    """A folder with a model file, a study, a store with one run, and assorted non-stores."""
    (tmp_path / "model.py").write_text(MODEL)
    (tmp_path / "study.toml").write_text(STUDY)
    with Store(tmp_path / "runs.sqlite") as store:
        store.record({"key": "abc123def456", "status": "done", "summary": {}, "history": {"step": [0]}}, {}, "v")
    foreign = sqlite3.connect(tmp_path / "foreign.sqlite")
    foreign.execute("CREATE TABLE notes (text TEXT)")
    foreign.commit()
    foreign.close()
    (tmp_path / "notes.txt").write_text("plain text, not a database\n" * 50)
    (tmp_path / "binary.toml").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.toml").mkdir()
    (tmp_path / "existing.html").write_text("<p>keep me</p>")
    return tmp_path


def _check(world, capsys, argv, code, pattern):
    before = _snapshot(world)
    argv = [part.replace("{w}", str(world)) for part in argv]
    status, err = _cli(argv, capsys)
    assert status == code, err
    assert "Traceback" not in err
    if pattern:
        import re

        assert re.search(pattern, err), err
    assert _snapshot(world) == before
    return err


# ------------------------------------------------------------------ 1. study files (run STUDY.toml)
BAD_STUDIES = {
    "unknown-top-key": ('bogus = 1', r"bogus: unknown key"),
    "unknown-dataset": ('[dataset]\nname = "imagenet"', r"dataset"),
    "lr-inf": ('[training]\nlr = inf', r"training\.lr=inf is invalid; Input should be a finite number"),
    "lr-nan": ('[training]\nlr = nan', r"training\.lr=nan is invalid"),
    "momentum-nan": ('[training]\nmomentum = nan', r"training\.momentum=nan is invalid"),
    "residual-scale-inf": ('[model]\nresidual_scale = -inf', r"model\.residual_scale=-inf is invalid; Input should be a finite"),
    "activation-param-nan": ('[model]\nactivation = "leaky_relu"\nactivation_params = {negative_slope = nan}',
                             r"negative_slope=nan is invalid"),
    "scheme-std-nan": ('[model]\nweight_init = {scheme = "normal", std = nan}', r"normal: std=nan is invalid"),
    "noise-inf": ('[dataset]\nname = "teacher"\nnoise = inf', r"dataset\.noise=inf is invalid"),
    "batch-over-n-train": ('[training]\nbatch_size = 65',
                           r"training\.batch_size=65 is invalid; expected at most the 64 training examples"),
    "mnist1d-n-train-over-data": ('[dataset]\nname = "mnist1d"\nn_train = 4001',
                                  r"dataset\.n_train=4001 is invalid; expected at most 4000"),
    "digits-test-fraction-tiny": ('[dataset]\nname = "digits"\ntest_fraction = 1e-6',
                                  r"dataset\.test_fraction=1e-06 is invalid: it leaves 0 test"),
    "digits-test-fraction-huge": ('[dataset]\nname = "digits"\ntest_fraction = 0.99999',
                                  r"dataset\.test_fraction=0\.99999 is invalid: it leaves 1797 test and 0 training"),
    "grid-1e8": ('[grid]\n"training.seed" = [' + ",".join(map(str, range(10_000))) + ']\n"training.lr" = ['
                 + ",".join(["0.1"] * 10_000) + "]", r"the grid expands to 100000000 runs .* expected at most 100000"),
    "grid-empty-axis": ('[grid]\n"training.seed" = []', r"grid\.'training\.seed'=\[\] is invalid"),
    "grid-bad-section": ('[grid]\n"optimizer.lr" = [1]', r"grid key 'optimizer\.lr' is invalid; expected SECTION\.FIELD"),
    "grid-bad-field": ('[grid]\n"model.bogus" = [1]', r"model has no field 'bogus'"),
    "steps-negative": ('[training]\nsteps = -1', r"training\.steps=-1 is invalid"),
    "steps-huge": ('[training]\nsteps = 1_000_000_000_000', r"training\.steps=1000000000000 is invalid"),
    "seed-over-63-bits": ('[training]\nseed = 9223372036854775808', r"training\.seed=9223372036854775808 is invalid"),
    "width-huge": ('[model]\nwidth = 100000\ndepth = 100', r"hidden weights per run; expected at most 268,435,456"),
    "depth-zero": ('[model]\ndepth = 0', r"model\.depth=0 is invalid"),
    "hostile-name": ('name = "../../etc/passwd"', r"name='\.\./\.\./etc/passwd' is invalid"),
    "unknown-claim": ('[claim]\nname = "always"', r"claim\.name='always' is invalid"),
    "claim-bad-params": ('[claim]\nname = "compare"\nparams = {metric = 3}', r"claim\.params"),
}


def _study_text(change):
    """STUDY with ``change`` (TOML) replacing the tables/keys it names."""
    if change.startswith("name ="):
        return STUDY.replace('name = "hostile"', change, 1)
    if change.startswith("bogus"):
        return change + "\n" + STUDY
    base = STUDY
    table = change.split("\n", 1)[0] if change.startswith("[") else ""
    if table in ("[dataset]", "[model]", "[training]"):
        start = base.index(table)
        end = base.find("\n[", start + 1)
        base = base[:start] + base[end + 1 :] if end >= 0 else base[:start]
    return base + "\n" + change + "\n"


@pytest.mark.parametrize("name", sorted(BAD_STUDIES))
def test_a_bad_study_is_refused_at_load_and_nothing_is_written(world, capsys, name):
    change, pattern = BAD_STUDIES[name]
    (world / "bad.toml").write_text(_study_text(change))
    _check(world, capsys, ["run", "{w}/bad.toml", "--store", "{w}/new.sqlite"], 2, pattern)
    assert not (world / "new.sqlite").exists()


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["run", "{w}/missing.toml"], r"missing\.toml: study file not found"),
        (["run", "{w}/folder.toml"], r"folder\.toml"),
        (["run", "{w}/binary.toml"], r"binary\.toml"),
        (["run", "{w}/notes.txt"], r"notes\.txt: not valid TOML"),
        (["run", "{w}/study.toml", "--executor", "slurm"], r"--executor='slurm' is invalid"),
        (["run", "{w}/study.toml", "--scheduler", "tcp://x:1"], r"--scheduler='tcp://x:1' is only valid with --executor dask"),
        (["run", "{w}/study.toml", "--executor", "dask", "--workers", "0"], r"invalid worker count '0'"),
        (["run", "{w}/study.toml", "--executor", "dask", "--workers", "-1"], r"invalid worker count '-1'"),
        (["run", "{w}/study.toml", "--workers", "100000"], r"invalid worker count '100000'"),
        (["run", "{w}/study.toml", "--store", "{w}/folder"], r"is a directory; expected a SQLite file"),
        (["run", "{w}/study.toml", "--store", "{w}/missing/s.sqlite"], r"the folder '.*missing' does not exist"),
        (["run", "{w}/study.toml", "--store", "{w}/foreign.sqlite"], r"is not an initlab store"),
        (["run", "{w}/study.toml", "--store", "{w}/notes.txt"], r"not a usable initlab store \(file is not a database\)"),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, list) else None,
)
def test_run_refuses_bad_files_and_options(world, capsys, argv, pattern):
    _check(world, capsys, argv, 2, pattern)


# ------------------------------------------------------------------ 2. stores (read commands)
def _corrupt_store(world):
    path = world / "corrupt.sqlite"
    data = bytearray((world / "runs.sqlite").read_bytes())
    data[4096:] = b"\xde\xad\xbe\xef" * ((len(data) - 4096) // 4)  # every page but the schema's
    path.write_bytes(bytes(data))


def _truncated_store(world):
    (world / "truncated.sqlite").write_bytes((world / "runs.sqlite").read_bytes()[:100])


def _newer_store(world):
    connection = sqlite3.connect(world / "newer.sqlite")
    connection.execute("PRAGMA user_version = 99")
    connection.commit()
    connection.close()


def _empty_store(world):
    (world / "empty.sqlite").write_bytes(b"")


SETUPS = {"corrupt": _corrupt_store, "truncated": _truncated_store, "newer": _newer_store, "empty": _empty_store}


@pytest.mark.parametrize(
    "setup, argv, pattern",
    [
        (None, ["runs", "list", "--store", "{w}/missing.sqlite"], r"--store='.*missing\.sqlite' is invalid"),
        (None, ["runs", "list", "--store", "{w}/folder"], r"--store='.*folder' is invalid"),
        (None, ["runs", "list", "--store", "{w}/foreign.sqlite"], r"is not an initlab store \(a SQLite file with tables \['notes'\]"),
        (None, ["runs", "show", "abc", "--store", "{w}/foreign.sqlite"], r"is not an initlab store"),
        (None, ["runs", "export", "--csv", "{w}/x.csv", "--store", "{w}/foreign.sqlite"], r"is not an initlab store"),
        (None, ["runs", "list", "--store", "{w}/notes.txt"], r"not a usable initlab store \(file is not a database\)"),
        ("empty", ["runs", "list", "--store", "{w}/empty.sqlite"], r"is an empty file, not an initlab store"),
        ("corrupt", ["runs", "list", "--store", "{w}/corrupt.sqlite"], r"store: .*corrupt\.sqlite"),
        ("truncated", ["runs", "list", "--store", "{w}/truncated.sqlite"], r"truncated\.sqlite"),
        ("newer", ["runs", "list", "--store", "{w}/newer.sqlite"], r"store schema version 99 is newer"),
        (None, ["runs", "show", "--store", "{w}/runs.sqlite"], r"runs show: RUN is missing"),
        (None, ["runs", "show", "zzz", "--store", "{w}/runs.sqlite"], r"RUN='zzz' matches no run"),
        (None, ["runs", "show", "%", "--store", "{w}/runs.sqlite"], r"RUN='%' matches no run"),
        (None, ["runs", "export", "--store", "{w}/runs.sqlite"], r"give exactly one of --csv PATH or --parquet PATH"),
        (None, ["runs", "export", "--csv", "{w}/missing/x.csv", "--store", "{w}/runs.sqlite"], r"does not exist"),
        (None, ["runs", "export", "--csv", "{w}/folder", "--store", "{w}/runs.sqlite"], r"it is a folder"),
        (None, ["runs", "list", "--status", "bogus", "--store", "{w}/runs.sqlite"], r"invalid choice: 'bogus'"),
        (None, ["report", "--store", "{w}/runs.sqlite"], r"give exactly one of STUDY or --tour"),
        (None, ["report", "nosuch", "--store", "{w}/runs.sqlite"], r"STUDY='nosuch' is invalid"),
        (None, ["report", "symmetry", "--store", "{w}/missing.sqlite"], r"expected an existing store file"),
        (None, ["report", "symmetry", "--size", "tiny", "--store", "{w}/runs.sqlite"], r"no stored runs of study 'symmetry\.tiny'"),
        (None, ["report", "--tour", "--store", "{w}/foreign.sqlite"], r"is not an initlab store"),
        (None, ["report", "--tour", "--size", "tiny", "--store", "{w}/runs.sqlite"], r"no stored runs of the tiny-size studies"),
        (None, ["report", "--tour", "--full", "--size", "tiny", "--store", "{w}/runs.sqlite"], r"contradicts --full"),
    ],
    ids=lambda value: "-".join(value[:3]) if isinstance(value, list) else value,
)
def test_read_commands_refuse_bad_stores_and_change_nothing(world, capsys, setup, argv, pattern):
    if setup:
        SETUPS[setup](world)
    _check(world, capsys, argv, 2, pattern)


def test_a_locked_store_is_a_named_error_after_the_busy_timeout(world, capsys, monkeypatch):
    monkeypatch.setattr(store_module, "_BUSY_TIMEOUT_MS", 50)
    holder = sqlite3.connect(world / "runs.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        _check(world, capsys, ["run", "{w}/study.toml", "--store", "{w}/runs.sqlite", "--quiet"], 2,
               r"the store is locked by another process \(waited 0 s\)")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


class _FullDisk:
    """A connection whose writes fail as SQLite's do on a full disk."""

    def __init__(self, connection):
        self.connection = connection

    def execute(self, sql, *args):
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            raise sqlite3.OperationalError("database or disk is full")
        return self.connection.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.connection, name)


def test_a_full_disk_while_storing_is_named_and_keeps_the_stored_runs(world):
    before = _snapshot(world)
    with Store(world / "runs.sqlite") as store:
        store.connection = _FullDisk(store.connection)
        with pytest.raises(InitlabError, match=r"store: writing .*runs\.sqlite failed: the disk is full"):
            store.record({"key": "new", "status": "done", "summary": {}, "history": {}}, {}, "v")
        store.connection = store.connection.connection
        assert [row["key"] for row in store.runs()] == ["abc123def456"]
    assert before.keys() <= _snapshot(world).keys()


def test_a_read_only_store_is_refused_for_writing_with_a_named_error(world):
    with Store(world / "runs.sqlite", read_only=True) as store:
        with pytest.raises(InitlabError, match=r"the store cannot be written \(read-only file or folder\)"):
            store.record({"key": "new", "status": "done", "summary": {}, "history": {}}, {}, "v")


# ------------------------------------------------------------------ 3. other commands' arguments
@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["theory", "tanh", "--sigma-w2", "1:2:100000000"], r"100000000 values; expected 1 to 10000"),
        (["theory", "nosuch"], r"nosuch"),
        (["theory", "tanh", "--sigma-w2", "a:b:c"], r"--sigma-w2"),
        (["theory", "tanh", "--sigma-b2", "nan"], r"sigma"),
        (["theory", "tanh", "--plot", "{w}/missing/p.png"], r"does not exist"),
        (["theory", "tanh", "--plot", "{w}/folder"], r"expected a file name ending in \.png or \.svg"),
        (["gain", "nosuch"], r"nosuch"),
        (["gain", "leaky_relu", "--param", "novalue"], r"--param='novalue' is invalid; expected KEY=VALUE"),
        (["port-check", "nosuch", "4", "4"], r"nosuch"),
        (["port-check", "he_normal", "-4", "4"], r"-4"),
        (["audit", "{w}/model.py:make", "--input-shape", "2,4", "--seed", str(2**64)], r"invalid seed"),
        (["audit", "{w}/model.py:make", "--input-shape", "2,4", "--seed", "-1"], r"invalid seed"),
        (["audit", "{w}/model.py:make", "--input-shape", "100000,100000,4"], r"--input-shape='100000,100000,4' is invalid"),
        (["audit", "{w}/model.py:make", "--input-shape", "a,b"], r"--input-shape"),
        (["audit", "{w}/model.py:make", "--input-shape", "0,4"], r"--input-shape"),
        (["audit", "{w}/model.py:make", "--input-shape", "2,4", "--html", "{w}/missing/r.html"], r"does not exist"),
        (["audit", "{w}/model.py:make", "--input-shape", "2,4", "--html", "{w}/folder"], r"it is a folder"),
        (["audit", "{w}/model.py:make", "--input-shape", "2,4", "--json", "{w}/missing/r.json"], r"does not exist"),
        (["audit", "{w}/model.py:make", "--input-shape", "2,4", "--json", "{w}/folder"], r"it is a folder"),
        (["audit", "{w}/missing.py:make", "--input-shape", "2,4"], r"missing\.py"),
        (["audit", "{w}/model.py:nosuch", "--input-shape", "2,4"], r"nosuch"),
        (["audit", "{w}/model.py", "--input-shape", "2,4"], r"FILE\.py:factory"),
        (["audit", "{w}/model.py:make", "--input-shape", "2,4", "--init", "nosuch"], r"nosuch"),
        (["plan", "{w}/model.py:make", "--input-shape", "x"], r"--input-shape"),
        (["tour", "--workers", "0", "--store", "{w}/t.sqlite"], r"--workers=0 is invalid"),
        (["tour", "--size", "huge"], r"invalid choice: 'huge'"),
    ],
    ids=lambda value: "-".join(part.replace("{w}/", "") for part in value[:4]) if isinstance(value, list) else None,
)
def test_commands_refuse_bad_arguments_with_exit_2(world, capsys, argv, pattern):
    _check(world, capsys, argv, 2, pattern)


def test_a_failing_audit_output_leaves_the_previous_file(world, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    _check(world, capsys, ["audit", "{w}/model.py:make", "--input-shape", "2,4", "--no-jacobian",
                           "--html", "{w}/existing.html"], 2, r"existing\.html")
    assert (world / "existing.html").read_text() == "<p>keep me</p>"
    assert sorted(path.name for path in world.iterdir() if "existing" in path.name) == ["existing.html"]


@pytest.mark.parametrize(
    "source, pattern",
    [
        ("def make(:\n", r"SyntaxError|syntax"),
        ("raise RuntimeError('import-time failure')\n", r"import-time failure"),
        ("def make():\n    return 3\n", r"nn\.Module|Module"),
        ("def make():\n    raise ValueError('factory failure')\n", r"factory failure"),
    ],
    ids=["syntax-error", "raises-on-import", "returns-a-number", "factory-raises"],
)
def test_a_broken_model_file_is_a_named_error(world, capsys, source, pattern):
    (world / "broken.py").write_text(source)
    _check(world, capsys, ["audit", "{w}/broken.py:make", "--input-shape", "2,4", "--no-jacobian"], 2, pattern)


def test_a_model_file_importing_a_module_beside_it_works(world, capsys):
    (world / "helper.py").write_text("import torch\n\ndef block():\n    return torch.nn.Linear(4, 2)\n")
    (world / "uses_helper.py").write_text("from helper import block\n\ndef make():\n    return block()\n")
    code, err = _cli(["audit", f"{world}/uses_helper.py:make", "--input-shape", "8,4", "--no-jacobian"], capsys)
    assert code in (0, 1) and "Traceback" not in err and "error:" not in err


def test_a_model_class_named_like_markup_is_printed_as_text(world, capsys):
    (world / "markup.py").write_text(
        "import torch\n\nclass Bad(torch.nn.Linear):\n    pass\n\nBad.__name__ = '[/]'\nBad.__qualname__ = '[/]'\n\n"
        "def make():\n    return Bad(4, 2)\n"
    )
    code, err = _cli(["audit", f"{world}/markup.py:make", "--input-shape", "8,4", "--no-jacobian"], capsys)
    assert code in (0, 1) and "Traceback" not in err and "error:" not in err


# ------------------------------------------------------------------ 4. datasets
def test_a_corrupt_mnist1d_cache_is_regenerated_atomically(tmp_path, monkeypatch):
    from initlab.lab import datasets

    monkeypatch.setenv("INITLAB_CACHE", str(tmp_path))
    first = datasets.mnist1d_arrays()
    (cache,) = tmp_path.glob("mnist1d-*.npz")
    cache.write_bytes(cache.read_bytes()[:1000])  # truncated: a BadZipFile
    again = datasets.mnist1d_arrays()
    assert all(np.array_equal(first[name], again[name]) for name in first)
    assert datasets._load_npz(cache) is not None and [p.name for p in tmp_path.iterdir()] == [cache.name]
    cache.write_bytes(b"not a zip at all")
    assert np.array_equal(datasets.mnist1d_arrays()["x"], first["x"])


def test_an_unwritable_cache_folder_falls_back_to_memory_with_a_warning(tmp_path, monkeypatch):
    from initlab.lab import datasets

    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    monkeypatch.setenv("INITLAB_CACHE", str(blocker / "cache"))
    with pytest.warns(RuntimeWarning, match=r"the dataset cache .* cannot be written .*using the data in memory"):
        arrays = datasets.mnist1d_arrays()
    assert arrays["x"].shape == (4000, 40) and blocker.read_text() == "in the way"


@pytest.mark.parametrize("fraction", [1e-6, 0.99999])
def test_digits_with_an_extreme_split_is_named(fraction):
    from initlab.lab.datasets import load_digits

    with pytest.raises(InitlabError, match=rf"load_digits: test_fraction={fraction!r} is invalid: it leaves"):
        load_digits(test_fraction=fraction)


@pytest.mark.parametrize(
    "name, content, pattern",
    [
        ("train-images-idx3-ubyte", b"\x00\x00\x08\x03" + (5).to_bytes(4, "big") * 3, r"truncated"),
        ("train-images-idx3-ubyte", b"\x01\x02\x03\x04", r"magic|expected"),
        ("train-images-idx3-ubyte.gz", b"\x1f\x8bnot gzip", r"train-images-idx3-ubyte\.gz"),
    ],
    ids=["idx-truncated", "idx-bad-magic", "idx-bad-gzip"],
)
def test_bad_dataset_files_name_the_file(tmp_path, name, content, pattern):
    from initlab.lab.datasets import load_idx

    (tmp_path / name).write_bytes(content)
    with pytest.raises(InitlabError, match=pattern):
        load_idx(tmp_path / name)


def test_a_missing_dataset_folder_is_named(tmp_path):
    from initlab.lab.datasets import load_dataset

    with pytest.raises(InitlabError, match=r"missing"):
        load_dataset("cifar10_binary", path=str(tmp_path / "missing"))


# ------------------------------------------------------------------ 5. tensors, schemes, nn
@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: initlab.schemes.normal(std=float("nan")), r"normal: std=nan is invalid"),
        (lambda: initlab.schemes.normal(std=-1.0), r"normal: std=-1\.0 is invalid"),
        (lambda: initlab.schemes.truncated_normal(bound=0.0), r"bound=0\.0 is invalid"),
        (lambda: initlab.schemes.truncated_normal(bound=1e-320, corrected=True), r"bound=1e-320 with corrected=True"),
        (lambda: initlab.schemes.uniform(low=float("inf")), r"uniform"),
        (lambda: initlab.schemes.uniform(low=1.0, high=0.0), r"uniform"),
        (lambda: initlab.schemes.normal().sample((-1, 3)), r"shape"),
        (lambda: initlab.lsuv_(nn.Linear(5, 3), torch.zeros(0, 5)), r"lsuv_: batch of shape \(0, 5\) is empty"),
        (lambda: initlab.lsuv_(nn.Linear(5, 3), torch.full((4, 5), float("nan"))), r"NaN or infinite"),
        (lambda: initlab.lsuv_(nn.ReLU(), torch.zeros(4, 5)), r"lsuv_"),
        (lambda: initlab.init_(nn.ReLU()), r"init_"),
    ],
    ids=["std-nan", "std-negative", "bound-zero", "bound-underflow", "uniform-inf", "uniform-reversed", "negative-shape",
         "lsuv-empty-batch", "lsuv-nan-batch", "lsuv-no-layer", "init-no-parameters"],
)
def test_bad_tensors_and_schemes_are_named(make, pattern):
    with pytest.raises(InitlabError, match=pattern):
        make()


def test_truncated_normal_with_a_tiny_bound_is_exact():
    scheme = initlab.schemes.truncated_normal(std=1.0, bound=1e-7, corrected=True)
    values = scheme.sample((200, 200), seed=0).astype(np.float64)
    assert scheme.target_std() == pytest.approx(1.0, rel=1e-12) and values.std() == pytest.approx(1.0, abs=0.01)


# ------------------------------------------------------------------ 6. JSON and claims without evidence
def test_run_json_is_valid_even_when_a_claim_has_no_evidence(world, capsys):
    (world / "claim.toml").write_text(
        STUDY + '[claim]\nname = "compare"\nparams = {metric = "test_mse", a = {"training.seed" = 5}, '
        'b = {"training.seed" = 0}}\n'
    )
    assert main(["run", f"{world}/claim.toml", "--store", f"{world}/c.sqlite", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out, parse_constant=lambda constant: pytest.fail(constant))
    assert report["claim"]["state"] == "no evidence"


# ------------------------------------------------------------------ 7. audit
@pytest.mark.parametrize(
    "source, shape, code",
    [
        pytest.param("class M(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                     "        self.l = torch.nn.Linear(4, 2)\n    def forward(self, x):\n"
                     "        return torch.log(self.l(x) - 100)\n\ndef make():\n    return M()\n", "8,4", 1,
                     id="nan-after-last-module-is-unhealthy"),
        pytest.param("def make():\n    return torch.nn.Linear(5, 0)\n", "8,5", 2,
                     id="linear-5-0"),
        pytest.param("def make():\n    return torch.nn.Linear(4, 2)\n", "0,4", 2, id="empty-batch"),
        pytest.param("def make():\n    return torch.nn.Linear(4, 2, device='meta')\n", "8,4", 2,
                     id="meta-model"),
    ],
)
def test_hostile_audits(world, capsys, source, shape, code):
    (world / "hostile_model.py").write_text("import torch\n\n" + source)
    status, err = _cli(["audit", f"{world}/hostile_model.py:make", "--input-shape", shape, "--no-jacobian"], capsys)
    assert status == code and "Traceback" not in err

