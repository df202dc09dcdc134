"""Loading a user's model from FILE.py:factory, as `python FILE.py` would run the file."""

import sys

import pytest
from torch import nn

from initlab.cli import main
from initlab.errors import InitlabError
from initlab.nn.factory import load_factory


def test_a_model_file_imports_a_module_beside_it(tmp_path):
    (tmp_path / "helper_block_for_initlab.py").write_text(
        "from torch import nn\n\ndef block():\n    return nn.Linear(3, 2)\n")
    (tmp_path / "model.py").write_text(
        "from helper_block_for_initlab import block\n\ndef make():\n    return block()\n")
    model = load_factory(f"{tmp_path / 'model.py'}:make", "initlab plan")
    assert isinstance(model, nn.Linear)
    assert str(tmp_path) not in sys.path  # the folder is on the path only while the file runs


def test_an_error_in_the_users_factory_keeps_its_traceback(tmp_path):
    (tmp_path / "model.py").write_text("def make():\n    raise RuntimeError('no model today')\n")
    with pytest.raises(InitlabError, match=r"initlab plan: make\(\) raised RuntimeError: no model today") as error:
        load_factory(f"{tmp_path / 'model.py'}:make", "initlab plan")
    assert isinstance(error.value.__cause__, RuntimeError)
    frames = []
    traceback = error.value.__cause__.__traceback__
    while traceback is not None:
        frames.append(traceback.tb_frame.f_code.co_filename)
        traceback = traceback.tb_next
    assert frames[-1] == str(tmp_path / "model.py")


def test_debug_prints_the_users_traceback(tmp_path, capsys):
    (tmp_path / "model.py").write_text("def make():\n    raise RuntimeError('no model today')\n")
    status = main(["--debug", "plan", f"{tmp_path / 'model.py'}:make"])
    err = capsys.readouterr().err
    assert status == 2
    assert "Traceback" in err and "model.py" in err and "RuntimeError: no model today" in err
    assert err.rstrip().endswith("initlab plan: error: initlab plan: make() raised RuntimeError: no model today")


def test_without_debug_the_error_is_one_line(tmp_path, capsys):
    (tmp_path / "model.py").write_text("def make():\n    raise RuntimeError('no model today')\n")
    assert main(["plan", f"{tmp_path / 'model.py'}:make"]) == 2
    assert capsys.readouterr().err == "initlab plan: error: initlab plan: make() raised RuntimeError: no model today\n"
