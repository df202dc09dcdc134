"""A griffe extension for the docs build: initlab's docstrings use a few reStructuredText
constructs that Markdown does not know; this rewrites them in the loaded docstrings only
(the source files are untouched).

* ``:class:`~initlab.x.Y``` (any Sphinx role: class, func, meth, mod, attr, data, exc,
  obj, const) becomes an optional cross-reference: a link where the target is documented
  in the site, plain code where it is not (so a role never breaks the strict build).
  A relative target (``:class:`Row```) is resolved in the docstring owner's scope.
* ``:math:`...``` becomes inline code (the site loads no math renderer).
* A paragraph ending in ``::`` (a literal block follows) ends in ``:``; the indented
  block after it is already a Markdown code block.
* A "simple table" (rows framed by ``===  ===`` rules) is shown verbatim in a text block.
* An ``Args:`` entry naming several parameters (``seed, name: the random stream``) becomes
  one entry per parameter, the later ones pointing at the first, so griffe still checks
  every documented name against the signature.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

MATH = re.compile(r":math:`(?P<body>[^`]+)`")
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(?P<body>[^`]+)`")
TABLE_RULE = re.compile(r"^\s*=+(?:\s+=+)+\s*$")
TITLED = re.compile(r"^(?P<title>.*?)\s*<(?P<target>[^>]+)>$")
ARGS_HEADER = re.compile(r"^(?P<indent>\s*)(?:Args|Arguments|Parameters|Keyword Args|Keyword Arguments):\s*$")
JOINED_ENTRY = re.compile(r"^(?P<indent>\s+)(?P<names>\**\w+(?:\s*,\s*\**\w+)+):(?P<rest>\s.*|)$")


def _target(obj: griffe.Object, name: str) -> str:
    """The full path of ``name`` as seen from ``obj``'s scope (``name`` itself if unknown)."""
    if name.startswith("initlab."):
        return name
    head = name.split(".", 1)[0]
    for scope in (obj, *_parents(obj)):
        try:
            resolved = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError, KeyError):
            continue
        return resolved + name[len(head):]
    return name


def _parents(obj: griffe.Object):
    parent = obj.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def _role(obj: griffe.Object, match: re.Match) -> str:
    body = match.group("body").strip()
    titled = TITLED.match(body)
    if titled:
        title, name = titled.group("title"), titled.group("target")
    else:
        short = body.startswith("~")
        name = body.lstrip("~").rstrip("()")
        title = name.rsplit(".", 1)[-1] if short else name
        if body.endswith("()") or match.group(0).startswith((":func:", ":meth:")):
            title = f"{title}()" if not title.endswith("()") else title
    target = _target(obj, name)
    return f'<autoref identifier="{target}" optional><code>{title}</code></autoref>'


def _fence_tables(text: str) -> str:
    """Wrap each reST simple table (three ``===`` rules, or two for a headless one) in a text fence."""
    lines, out, index = text.split("\n"), [], 0
    while index < len(lines):
        if TABLE_RULE.match(lines[index]):
            rules, end = 0, index
            while end < len(lines) and (lines[end].strip() or rules < 2):
                rules += bool(TABLE_RULE.match(lines[end]))
                end += 1
                if rules == 3:
                    break
            indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
            table = [re.sub(r"``([^`]+)``", r"\1  ", line) for line in lines[index:end]]   # keep the columns
            out += ["", f"{indent}```text", *table, f"{indent}```", ""]
            index = end
            continue
        out.append(lines[index])
        index += 1
    return "\n".join(out)


def _split_joined_parameters(text: str) -> str:
    """``a, b: text`` in an Args section -> ``a: text`` and ``b: see `a`.`` (after ``a``'s lines)."""
    lines, out, section_indent, pending = text.split("\n"), [], None, []
    entry_indent = None
    for line in lines:
        stripped, indent = line.strip(), len(line) - len(line.lstrip())
        if section_indent is not None and stripped and indent <= section_indent:
            blanks = len(out) - len("\n".join(out).rstrip("\n").split("\n"))
            out[len(out) - blanks:len(out) - blanks] = pending
            pending, section_indent, entry_indent = [], None, None
        header = ARGS_HEADER.match(line)
        if header:
            section_indent = len(header.group("indent"))
            out.append(line)
            continue
        if section_indent is not None and stripped:
            entry_indent = indent if entry_indent is None else entry_indent
            if indent == entry_indent:
                out += pending
                pending = []
                joined = JOINED_ENTRY.match(line)
                if joined:
                    names = [name.strip() for name in joined.group("names").split(",")]
                    pad = joined.group("indent")
                    out.append(f"{pad}{names[0]}:{joined.group('rest')}")
                    pending = [f"{pad}{name}: see `{names[0].lstrip('*')}`." for name in names[1:]]
                    continue
        out.append(line)
    return "\n".join(out + pending)


def rewrite(obj: griffe.Object, text: str) -> str:
    """The Markdown form of one docstring."""
    text = _split_joined_parameters(text)
    text = ROLE.sub(lambda match: _role(obj, match), text)
    text = MATH.sub(lambda match: f"`{match.group('body')}`", text)
    text = re.sub(r"(?m)(\S)::$", r"\1:", text)
    text = re.sub(r"(?m)^(\s*)::$", "", text)
    return _fence_tables(text)


class RstRoles(griffe.Extension):
    """Rewrites every docstring of the loaded package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        seen: set[int] = set()
        self._walk(pkg, seen)

    def _walk(self, obj: griffe.Object, seen: set[int]) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj, obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)
