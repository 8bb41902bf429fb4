"""The documentation holds together: every relative link resolves, and the README stays short.

For README.md, CONTRIBUTING.md and every page under docs/, each relative Markdown link or image
(``[text](path)``, ``![alt](path)``, ``[text]: path``, with or without ``#anchor``) must name a
file or folder that exists, relative to the file that holds it. Web and mail links and links to
an anchor of the same page are skipped; links inside code (fenced blocks, inline spans) are not
links.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hba_lib import paths

ROOT = paths.REPO_ROOT
README_LIMIT = 12_500
"""The README is the front door: at most this many bytes; the rest lives in docs/."""

_FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]+)>?(?:\s+[\"'(][^)]*)?\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
_SKIP = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#|//)", re.IGNORECASE)


def markdown_files() -> list[Path]:
    """README.md, CONTRIBUTING.md and every Markdown page under docs/."""
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
    files += sorted((ROOT / "docs").rglob("*.md"))
    return [f for f in files if f.exists()]


def links(text: str) -> list[str]:
    """The link targets of a Markdown text, in order, code blocks and code spans left out."""
    text = _FENCE.sub("", text)
    text = _CODE_SPAN.sub(lambda m: "x" * len(m.group(2)), text)
    found = [(m.start(), m.group(1)) for m in _INLINE.finditer(text)]
    found += [(m.start(), m.group(1)) for m in _REFERENCE.finditer(text)]
    return [target for _, target in sorted(found)]


def broken_links(text: str, folder: Path) -> list[str]:
    """The relative links of ``text`` that name nothing on disk, seen from ``folder``."""
    broken = []
    for target in links(text):
        if _SKIP.match(target):
            continue
        path = target.split("#", 1)[0].split("?", 1)[0]
        if not path or not (folder / path).exists():
            broken.append(target)
    return broken


def test_the_extractor_finds_links_and_reports_a_broken_one(tmp_path):
    (tmp_path / "real.md").write_text("x")
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(b"")
    sample = (
        "See [the real page](real.md#part), ![a picture](pics/a.png) and [a folder](pics/),\n"
        '[`code` in the text](real.md "a title"), [the web](https://example.org/x.md),\n'
        "[mail](mailto:someone@example.org), [here](#anchor) and [gone](missing/page.md).\n"
        "`[not a link](in_a_code_span.md)`\n"
        "```\n[not a link](in_a_fence.md)\n```\n"
        "[ref]: nowhere.md\n"
    )
    assert links(sample) == [
        "real.md#part",
        "pics/a.png",
        "pics/",
        "real.md",
        "https://example.org/x.md",
        "mailto:someone@example.org",
        "#anchor",
        "missing/page.md",
        "nowhere.md",
    ]
    assert broken_links(sample, tmp_path) == ["missing/page.md", "nowhere.md"]


def test_there_are_pages_to_check():
    names = {f.relative_to(ROOT).as_posix() for f in markdown_files()}
    assert {"README.md", "CONTRIBUTING.md", "docs/algorithm.md", "docs/glossary.md"} <= names
    assert links((ROOT / "README.md").read_text()), "README.md has no links: the extractor broke"


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    broken = broken_links(page.read_text(encoding="utf-8"), page.parent)
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {', '.join(broken)}"


def test_readme_is_a_front_door():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_LIMIT, (
        f"README.md is {size:,} bytes, over {README_LIMIT:,}: move detail to a page under docs/"
    )


def test_every_docs_page_is_linked_from_the_front_door_or_the_index():
    reachable = set()
    for page in (ROOT / "README.md", ROOT / "docs" / "README.md"):
        if page.exists():
            for target in links(page.read_text(encoding="utf-8")):
                if not _SKIP.match(target):
                    reachable.add((page.parent / target.split("#", 1)[0]).resolve())
    pages = sorted((ROOT / "docs").glob("*.md"))
    unlinked = [p.name for p in pages if p.resolve() not in reachable]
    assert not unlinked, f"docs pages no one links to (README.md or docs/README.md): {unlinked}"


_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a Markdown text's headings (code blocks left out; repeats get -1, -2)."""
    seen: dict[str, int] = {}
    out = set()
    for m in _HEADING.finditer(_FENCE.sub("", text)):
        s = slug(m.group(1))
        out.add(s if s not in seen else f"{s}-{seen[s]}")
        seen[s] = seen.get(s, 0) + 1
    return out


def broken_anchors(text: str, page: Path) -> list[str]:
    """The links of ``text`` (in ``page``) to ``#anchor`` of a Markdown page that has no such
    heading."""
    broken = []
    for target in links(text):
        if target.startswith("#"):
            path, anchor = "", target[1:]
        elif "#" in target and not _SKIP.match(target):
            path, anchor = target.split("#", 1)
        else:
            continue
        file = page if not path else page.parent / path
        if file.suffix == ".md" and file.is_file():
            if anchor not in anchors(file.read_text(encoding="utf-8")):
                broken.append(target)
    return broken


def test_the_anchor_check_knows_a_heading_from_a_missing_one(tmp_path):
    (tmp_path / "b.md").write_text("# Title\n## A real target: MoViNet-A0\n## Step (2), `g`\n")
    page = tmp_path / "a.md"
    page.write_text("## Here\n")
    text = (
        "[x](b.md#a-real-target-movinet-a0) [y](b.md#step-2-g) [z](#here) "
        "[gone](b.md#a-real-target) [lost](#there)"
    )
    assert broken_anchors(text, page) == ["b.md#a-real-target", "#there"]


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_anchors_resolve(page):
    broken = broken_anchors(page.read_text(encoding="utf-8"), page)
    assert not broken, f"{page.relative_to(ROOT)}: links to missing headings: {', '.join(broken)}"
