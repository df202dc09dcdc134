"""The package's shape: one version, the command's entry points, extras named when missing."""

import subprocess
import sys

import pytest

import initlab
from initlab import _extras
from initlab._version import __version__
from initlab.cli import main
from initlab.errors import InitlabError


def test_version_has_one_source():
    assert initlab.__version__ == __version__


def test_cli_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"initlab {__version__}"


def test_python_m_initlab_cli_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "initlab.cli", "--version"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"initlab {__version__}"


def test_missing_extra_is_a_named_error():
    with pytest.raises(InitlabError) as error:
        _extras.require_installed(["initlab_no_such_module"], "lab", "initlab.lab (studies)")
    assert str(error.value) == (
        "initlab.lab (studies) needs the optional dependency 'initlab_no_such_module', which is not "
        "installed; install it with `pip install 'initlab[lab]'`."
    )


def test_require_chains_the_import_error():
    with pytest.raises(InitlabError, match=r"initlab\[report\]") as error:
        _extras.require("initlab_no_such_module.pyplot", "report", "figures")
    assert isinstance(error.value.__cause__, ModuleNotFoundError)


def test_require_does_not_hide_a_broken_installed_module(tmp_path, monkeypatch):
    (tmp_path / "initlab_broken_dep.py").write_text("import initlab_missing_inner_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="initlab_missing_inner_dependency"):
        _extras.require("initlab_broken_dep", "lab", "the lab")


def test_importing_initlab_does_not_import_the_extras():
    code = ("import sys, initlab; "
            "print(sorted(m for m in ('matplotlib', 'pydantic', 'sklearn', 'mnist1d', 'dask') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
