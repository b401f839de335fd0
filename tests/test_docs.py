"""The README and docs/ hold together: every relative link names a file that
exists, and docs/api.md is the shared HTTP contract (../shared/API.md beside
the repository, as CI has it) under one line saying so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHARED_CONTRACT = ROOT.parent / "shared" / "API.md"

# [text](target) outside code spans; a target up to its first space or ")".
LINK = re.compile(r"(?<!`)\[[^\]]*\]\(([^)\s]+)[^)]*\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)


def relative_links(document: Path) -> list[str]:
    """The document's links that point into the repository, anchors cut off."""
    text = CODE.sub("", document.read_text(encoding="utf-8"))
    targets = (match.group(1) for match in LINK.finditer(text))
    external = ("http://", "https://", "mailto:", "#")
    return [t.split("#")[0] for t in targets if not t.startswith(external)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_relative_links_point_at_files_that_exist(document: Path) -> None:
    missing = [link for link in relative_links(document) if not (document.parent / link).exists()]
    assert missing == [], f"{document.name} links to files that do not exist: {missing}"


def test_docs_api_is_the_shared_contract() -> None:
    if not SHARED_CONTRACT.exists():
        pytest.skip(f"no shared contract beside the repository: {SHARED_CONTRACT}")
    first_line, _, copy = (ROOT / "docs" / "api.md").read_text(encoding="utf-8").partition("\n")
    assert "kept in step" in first_line.lower()
    assert copy.lstrip("\n") == SHARED_CONTRACT.read_text(encoding="utf-8")
