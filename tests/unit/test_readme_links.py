"""Every link of the READMEs leads somewhere: a file that exists, a heading that exists.

Anchors follow GitHub's rules: the heading's text lowercased, punctuation
dropped (letters, digits, spaces, '-' and '_' kept), spaces turned to '-', and
"-1", "-2", ... added to repeated ones. Headings inside fenced code blocks are
not headings.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ["README.md", "benchmarks/README.md", "sql/README.md"]
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(?P<text>.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading (before de-duplication)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").strip().lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def anchors(path: Path) -> set[str]:
    """Every anchor of the headings of a Markdown file."""
    seen: Counter[str] = Counter()
    found = set()
    for line in prose_lines(path.read_text()):
        match = HEADING.match(line)
        if match:
            base = slug(match["text"])
            found.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
    return found


def links(path: Path) -> list[str]:
    """The targets of the links of a Markdown file, code excluded."""
    targets = []
    for line in prose_lines(path.read_text()):
        prose = re.sub(r"`[^`]*`", "", line)  # inline code is not a link
        targets += [m["target"] for m in LINK.finditer(prose)]
    return targets


def test_slugs_follow_githubs_rules() -> None:
    assert slug("Inspecting with psql") == "inspecting-with-psql"
    assert slug("`queue_stats`' failed count") == "queue_stats-failed-count"
    assert slug("What a worker costs") == "what-a-worker-costs"
    assert slug("Heartbeats, stalls and the reaper") == "heartbeats-stalls-and-the-reaper"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_link_resolves(document: str) -> None:
    path = ROOT / document
    broken = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no file {file_part}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with anchor #{anchor} in {linked.name}")
    assert not broken, f"broken links in {document}:\n" + "\n".join(broken)
