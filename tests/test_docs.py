"""The README and docs/ hold together: every relative link names a file that
exists (and a heading in it, when it names one), and docs/api.md is the
shared HTTP contract (../shared/API.md beside the repository, as CI has it)
under one line saying so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "bench" / "RESULTS.md",
]
SHARED_CONTRACT = ROOT.parent / "shared" / "API.md"

# [text](target): the target up to its first space or ")".
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)[^)]*\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)
EXTERNAL = ("http://", "https://", "mailto:")


def without_code(document: Path) -> str:
    return CODE.sub("", document.read_text(encoding="utf-8"))


def relative_links(document: Path) -> list[str]:
    """The document's links into the repository, anchors kept (`page.md#part`)."""
    targets = (match.group(1) for match in LINK.finditer(without_code(document)))
    return [target for target in targets if not target.startswith(EXTERNAL)]


def anchors(document: Path) -> set[str]:
    """The anchors GitHub gives the document's headings: lower case, spaces as
    hyphens, punctuation other than hyphens and underscores dropped."""
    text = re.sub(r"```.*?```", "", document.read_text(encoding="utf-8"), flags=re.DOTALL)
    titles = (heading.replace("`", "").lower() for heading in HEADING.findall(text))
    return {re.sub(r"[^\w\- ]", "", title).replace(" ", "-") for title in titles}


def broken(document: Path, link: str) -> bool:
    path, _, anchor = link.partition("#")
    target = (document.parent / path) if path else document
    if not target.exists():
        return True
    return bool(anchor) and target.suffix == ".md" and anchor not in anchors(target)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_relative_links_point_at_files_that_exist(document: Path) -> None:
    missing = [link for link in relative_links(document) if broken(document, link)]
    assert missing == [], f"{document.name} links to files or headings that do not exist: {missing}"


def test_docs_api_is_the_shared_contract() -> None:
    if not SHARED_CONTRACT.exists():
        pytest.skip(f"no shared contract beside the repository: {SHARED_CONTRACT}")
    first_line, _, copy = (ROOT / "docs" / "api.md").read_text(encoding="utf-8").partition("\n")
    assert "kept in step" in first_line.lower()
    assert copy.lstrip("\n") == SHARED_CONTRACT.read_text(encoding="utf-8")
