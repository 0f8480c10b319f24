"""The newcomer's pages stay usable (issue 26): the README is short, and no relative link leads nowhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 300
# A Markdown link or image: [text](target) or ![alt](target); the target ends at a space or the closing bracket.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# Targets that are not files of this repository.
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", re.IGNORECASE)


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every page of docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def relative_links(text: str) -> list[str]:
    """The link targets of a Markdown page that name a file of the repository (anchors dropped), in order."""
    targets = (target.split("#", 1)[0] for target in LINK.findall(text) if not EXTERNAL.match(target))
    return list(dict.fromkeys(target for target in targets if target))


def broken_links(page: Path) -> list[str]:
    """Each relative link of `page` whose file (resolved from the page's own folder) does not exist."""
    return [link for link in relative_links(page.read_text()) if not (page.parent / link).exists()]


def test_the_readme_is_under_300_lines() -> None:
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; move detail to docs/"


def test_every_relative_link_in_the_readme_and_docs_points_to_an_existing_file() -> None:
    assert (ROOT / "docs" / "architecture.md") in pages()
    found = {page.relative_to(ROOT).as_posix(): broken_links(page) for page in pages()}
    assert {page: links for page, links in found.items() if links} == {}


def test_the_readme_links_the_docs_pages() -> None:
    links = relative_links((ROOT / "README.md").read_text())
    for page in ("docs/architecture.md", "docs/operations.md", "docs/research.md", "docs/development.md"):
        assert page in links, page


def test_the_link_check_reads_links_images_and_anchors_and_catches_a_missing_file(tmp_path: Path) -> None:
    # Given a page with a good link, an image, an anchor-only link, a URL, a link with an anchor and a broken link
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n")
    (tmp_path / "docs" / "shot.png").write_bytes(b"png")
    page = tmp_path / "docs" / "b.md"
    page.write_text(
        "[a](a.md) ![shot](shot.png) [top](#top) [web](https://example.com/x.md) [sec](a.md#a) "
        "[up](../README.md) [gone](missing.md#x)\n"
    )
    # When / Then: only the link to a file that does not exist is reported, resolved from the page's folder
    assert relative_links(page.read_text()) == ["a.md", "shot.png", "../README.md", "missing.md"]
    assert broken_links(page) == ["../README.md", "missing.md"]
