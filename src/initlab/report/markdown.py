"""Markdown summaries of the built-in studies and of the tour (rendered from stored results)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from initlab.report import study_text
from initlab.report.study_html import StudyPage


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells escaped)."""
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def study_markdown(page: StudyPage) -> str:
    """One study: claim, verdict, the conditions with their numbers, the explanation."""
    claim = page.claim
    conditions = claim.values.get("conditions", [])
    lines = [
        f"## {page.title}",
        "",
        f"**Claim.** {page.study.description}",
        "",
        f"**Verdict: the claim {'holds' if claim.holds else 'does NOT hold'}** "
        f"({len(page.rows)} stored runs of study `{page.stored_as}`). "
        f"{study_text.verdict_sentence(page.name, claim)}",
        "",
    ]
    lines += [f"- {'yes' if item['holds'] else 'NO '}: {item['condition']}" for item in conditions]
    observations = claim.values.get("observations", [])
    if observations:
        lines += ["", "Observations (not part of the verdict):", ""]
        lines += [f"- {item['observation']}" for item in observations]
    lines += ["", f"*Why.* {study_text.explanation(page.name)}", ""]
    return "\n".join(lines)


def claim_table_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The tour's claim table as Markdown."""
    return markdown_table(
        ["#", "study", "claim", "measured evidence", "verdict"],
        [[row["number"], row["study"], row["claim"], row["evidence"], row["verdict"]] for row in rows],
    )


def tour_markdown(
    pages: Sequence[StudyPage], table: Sequence[Mapping[str, Any]], heading: str, warning: str = ""
) -> str:
    """The tour summary: ``warning`` (if any), the claim table, then each study's section."""
    alert = [f"> **{warning}**", ""] if warning else []
    sections = [study_markdown(page) for page in pages]
    return "\n".join([f"# {heading}", "", *alert, claim_table_markdown(table), "", *sections])
