"""Every code block of README.md and docs/**/*.md runs as written.

* ```` ```python ```` blocks (also the ``exec="on"`` blocks the docs build executes) run
  in order, the blocks of one file in one namespace, with a fresh temporary directory
  as the working directory.
* ```` ```console ```` blocks: each ``$ initlab ...`` command runs through the command's
  entry point (``initlab.cli.main``, in this process) in that same directory, so it sees
  the files earlier blocks wrote, and must exit with status 0.
  Lines after a command, up to the next ``$``, are its expected output: compared line by
  line with runs of spaces collapsed, numbers within a relative 1e-6 (a solver's last
  digits), and a line ``...`` standing for any number of lines.
* A block is skipped only when the line right before its fence is
  ``<!-- skip: REASON -->`` with a reason; any console command other than ``initlab``
  (``make``, ``pip``) must be skipped that way, so nothing is silently not run.
* Files that README commands name as the reader's own (``model.py``, ``my-study.toml``)
  are copied from ``tests/docs/fixtures/`` into the directory first.

Runtime: about 30-50 s on a loaded 2-core machine (the tutorials train a few tiny
networks), hence the ``slow`` mark.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
SKIP = re.compile(r"^\s*<!--\s*skip:\s*(?P<reason>.*?)\s*-->\s*$")
NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")


@dataclass
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int
    language: str
    text: str
    skip: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass
class Command:
    """A ``$`` line of a console block and the output lines shown after it."""

    argv: list[str]
    line: int
    expected: list[str] = field(default_factory=list)


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def code_blocks(path: Path) -> list[Block]:
    """The fenced blocks of ``path`` in order, with their language and skip reason."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence = len(opening.group("indent")), opening.group("fence")
        language = (opening.group("info").split() or [""])[0].lower()
        end = index + 1
        while end < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[end]):
            end += 1
        body = "\n".join(line[indent:] if line[:indent].strip() == "" else line.lstrip()
                          for line in lines[index + 1:end])
        previous = lines[index - 1] if index else ""
        skipped = SKIP.match(previous)
        blocks.append(Block(path, index + 1, language, body + "\n", skipped.group("reason") if skipped else None))
        index = end + 1
    return blocks


def console_commands(block: Block) -> list[Command]:
    """The commands of a console block with their expected output."""
    commands: list[Command] = []
    lines = block.text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("$ "):
            text, start = line[2:], index
            while text.endswith("\\") and index + 1 < len(lines):
                index += 1
                text = text[:-1] + " " + lines[index]
            commands.append(Command(shlex.split(text, comments=True), block.line + 1 + start))
        elif commands:
            commands[-1].expected.append(line)
        elif line.strip():
            raise AssertionError(f"{block.where}: a console block must start with a '$ ' command line, not {line!r}")
        index += 1
    for command in commands:
        while command.expected and not command.expected[-1].strip():
            command.expected.pop()
    return commands


def same_token(expected: str, actual: str) -> bool:
    if expected == actual:
        return True
    if NUMBER.match(expected) and NUMBER.match(actual):
        return math.isclose(float(expected), float(actual), rel_tol=1e-6, abs_tol=1e-12)
    return False


def same_line(expected: str, actual: str) -> bool:
    left, right = expected.split(), actual.split()
    return len(left) == len(right) and all(same_token(a, b) for a, b in zip(left, right))


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Line-by-line comparison; an expected ``...`` line matches any run of lines."""
    if not expected:
        return not actual
    if expected[0].strip() == "...":
        return any(output_matches(expected[1:], actual[skip:]) for skip in range(len(actual) + 1))
    return bool(actual) and same_line(expected[0], actual[0]) and output_matches(expected[1:], actual[1:])


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``initlab ARGV`` through the command's entry point, in this process (no second torch import):
    ``(exit status, stdout, stderr)``. The thread count is restored afterwards."""
    from initlab.cli import main

    stdout, stderr, threads = io.StringIO(), io.StringIO(), torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = main(argv)
    except SystemExit as exit_:  # argparse: --help, --version, a usage error
        status = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 2
    finally:
        torch.set_num_threads(threads)
    return status, stdout.getvalue(), stderr.getvalue()


def run_console(block: Block) -> None:
    for command in console_commands(block):
        where = f"{block.path.relative_to(ROOT)}:{command.line}"
        assert command.argv and command.argv[0] == "initlab", (
            f"{where}: only `initlab` commands can be run; mark this block with "
            f"<!-- skip: REASON --> if it cannot run here: {command.argv}")
        status, stdout, stderr = run_cli(command.argv[1:])
        assert status == 0, f"{where}: `{shlex.join(command.argv)}` exited with {status}\n{stderr[-3000:]}"
        if command.expected:
            actual = stdout.rstrip("\n").splitlines()
            assert output_matches(command.expected, actual), (
                f"{where}: `{shlex.join(command.argv)}` printed\n" + "\n".join(actual)
                + "\nbut the block shows\n" + "\n".join(command.expected))


def run_python(block: Block, namespace: dict) -> None:
    code = compile(block.text, block.where, "exec")
    exec(code, namespace)  # noqa: S102 - running the documentation's own examples is the point


def documented_files() -> list[Path]:
    return [path for path in markdown_files()
            if any(block.language in ("python", "console") for block in code_blocks(path))]


@pytest.fixture
def one_torch_thread():
    """The blocks train and audit tiny networks, dominated by per-operation overhead: on a busy
    2-core machine two intra-op threads made one tutorial's training 5-16 s instead of 0.4 s
    with one (as in the docs build, docs/_ext/build_hooks.py). Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("path", documented_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_code_blocks_run(path, tmp_path, monkeypatch, one_torch_thread):
    import matplotlib

    matplotlib.use("Agg")
    for fixture in FIXTURES.iterdir():
        shutil.copy(fixture, tmp_path / fixture.name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {"__name__": "__docs__"}
    for block in code_blocks(path):
        if block.language not in ("python", "console"):
            continue
        if block.skip is not None:
            assert block.skip, f"{block.where}: a skipped block must say why (<!-- skip: REASON -->)"
            continue
        if block.language == "python":
            run_python(block, namespace)
        else:
            run_console(block)


def test_skipped_blocks_are_few_and_give_a_reason():
    skipped = [block for path in markdown_files() for block in code_blocks(path)
               if block.skip is not None and block.language in ("python", "console")]
    assert all(len(block.skip) >= 10 for block in skipped), [block.where for block in skipped]
    runnable = [block for path in markdown_files() for block in code_blocks(path)
                if block.skip is None and block.language in ("python", "console")]
    assert len(skipped) <= len(runnable) // 3, [block.where for block in skipped]


def test_the_extractor_reads_fences_skips_and_outputs(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n```python exec=\"on\" session=\"s\"\nx = 1\n```\n\n<!-- skip: needs a GPU here -->\n"
        "```console\n$ make demo\n```\n\n- item\n\n    ```console\n    $ initlab gain relu   # a comment\n"
        "    relu\n      torch 1.4142135623730951\n    ```\n", encoding="utf-8")
    blocks = code_blocks(page)
    assert [(block.language, block.skip) for block in blocks] == [
        ("python", None), ("console", "needs a GPU here"), ("console", None)]
    assert blocks[0].text == "x = 1\n"
    (command,) = console_commands(blocks[2])
    assert command.argv == ["initlab", "gain", "relu"]
    assert command.expected == ["relu", "  torch 1.4142135623730951"]
    assert output_matches(["a", "...", "z  1.0000001"], ["a", "b", "c", "z 1.0"])
    assert not output_matches(["a", "z 1.1"], ["a", "z 1.0"])
    assert not output_matches(["a"], ["a", "b"])


def api_directives() -> dict[str, list[str]]:
    """``{page: [object paths]}`` of the ``::: path`` directives of docs/api/*.md."""
    return {path.name: re.findall(r"(?m)^:::\s+(\S+)", path.read_text(encoding="utf-8"))
            for path in sorted((ROOT / "docs" / "api").glob("*.md"))}


def test_the_api_reference_loads_statically_and_covers_the_public_api():
    griffe = pytest.importorskip("griffe")
    package = griffe.load("initlab", search_paths=[str(ROOT / "src")], allow_inspection=False)
    import initlab

    for name in initlab.__all__:
        if name != "__version__":
            assert name in package.members, f"griffe does not see initlab.{name} without importing initlab"
    directives = api_directives()
    assert directives.pop("initlab.md") == ["initlab"]
    documented = {target for targets in directives.values() for target in targets}
    for module in ("initlab.schemes", "initlab.fans", "initlab.gains", "initlab.activations", "initlab.random",
                   "initlab.theory", "initlab.nn", "initlab.nn.init", "initlab.lab", "initlab.errors",
                   "initlab.keras", "initlab.jax", "initlab.conventions"):
        assert module in documented, f"no API page documents {module}"
    (audit,) = directives["audit.md"]   # the one place that names the audit subpackage
    for page, targets in directives.items():
        for target in targets:
            found = package[target.removeprefix("initlab.")]
            assert found.is_module, (
                f"docs/api/{page} documents {target}, which griffe reads as a {found.kind.value}, not a module")
    assert audit.startswith("initlab.")
