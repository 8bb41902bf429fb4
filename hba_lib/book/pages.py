"""The book's source tree, generated at build time into ``runs/book/src`` (never into the
repository): the landing page, the notebooks (executed copies with a header and the exercise
answers behind toggles), the docs pages, the README, CONTRIBUTING, the exercises page and the
printable handout. Every text comes from one source: the notebooks' own headings, the docs
files, and :mod:`hba_lib.exercises`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from hba_lib import exercises, paths
from hba_lib.book.notebooks import Notebook

BOOK_DIR = paths.REPO_ROOT / "book"
"""The committed part of the book: ``conf.py`` and ``index.md`` (the landing page's prose)."""
SESSIONS_MARK = "<!-- sessions -->"
NOTEBOOK_FILES = "_notebook_files"
"""Folder of the source tree holding the committed (output-free) ``.ipynb`` for download."""
PAGES = ("README.md", "CONTRIBUTING.md")
"""Repository pages besides ``docs/*.md`` that the book renders."""
_LINK = re.compile(r"(!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?)([^()\s<>]+)(>?(?:\s+[\"'(][^)]*)?\))")
_FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", re.MULTILINE | re.DOTALL)
_SCHEME = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#|//)", re.IGNORECASE)


def fmt_answer(value) -> str:
    """A reference answer as a reader would write it (floats to 4 significant figures)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple) and all(isinstance(v, float) for v in value):
        return "[" + ", ".join(f"{v:.4g}" for v in value) + "]"
    return repr(value)


def exercise_block(ex: exercises.Exercise, heading: bool = True) -> str:
    """MyST for one exercise: the question visible, the hint and the answer behind toggles."""
    ok, why = ex.checker(ex.reference)
    if not ok:  # the tests hold every reference to its checker; never print a wrong answer
        raise ValueError(f"exercise {ex.id}: its reference answer fails its own checker ({why})")
    lines = [f"**{ex.id}** {ex.question}", ""] if heading else []
    lines += [
        f":::{{dropdown}} Hint ({ex.id})",
        ex.hint,
        ":::",
        "",
        f":::{{dropdown}} Answer ({ex.id})",
        f"`{fmt_answer(ex.reference)}`: {why}",
        "",
        f'In the notebook: `exercises.check("{ex.id}", {fmt_answer(ex.reference)})`.',
        ":::",
        "",
    ]
    return "\n".join(lines)


def exercises_page(notebooks: list[Notebook]) -> str:
    """Every exercise of the course, by notebook, each question visible and its hint and
    reference answer behind toggles."""
    out = [
        "# Exercises",
        "",
        "Every exercise of the course, by session. Each question is visible; its **hint** and "
        "its **reference answer** open when you click them. In a notebook, "
        '`exercises.check("NN.k", answer)` says right or not yet, and why; '
        '`exercises.hint("NN.k")` gives the hint. The text here is generated from '
        "`hba_lib.exercises`, the same checkers the notebooks use. A printable sheet of the "
        "questions alone: [the handout](handout.md).",
        "",
    ]
    for nb in notebooks:
        exs = exercises.exercises_for(nb.number)
        if not exs:
            continue
        out += [
            f"## {nb.number} · {nb.title}",
            "",
            f"From [{nb.stem}](notebooks/{nb.stem}.ipynb).",
            "",
        ]
        out += [exercise_block(ex) for ex in exs]
    return "\n".join(out)


def handout_page(notebooks: list[Notebook]) -> str:
    """Every question, by session, without answers: a sheet to print (``exercises.show()``)."""
    out = [
        "# Handout: the exercises",
        "",
        "The questions of every session, without hints or answers, to print and hand out "
        "(`exercises.show()` prints the same list). Answers: [the exercises page](exercises.md).",
        "",
    ]
    for nb in notebooks:
        text = exercises.show(nb.number)
        if not text:
            continue
        out += [f"## {nb.number} · {nb.title}", ""]
        for line in text.splitlines():
            ex_id, _, question = line.partition(": ")
            out += [f"**{ex_id}** {question}", ""]
    return "\n".join(out)


def session_time(nb: Notebook) -> str:
    """The time at the defaults, the first clause of the notebook's ``**Time to run:**``."""
    text = nb.time_to_run
    m = re.match(r"(.*?at the defaults)", text)
    return (m.group(1) if m else re.split(r"[;(]", text)[0]).strip()


def sessions_markdown(notebooks: list[Notebook]) -> str:
    """The landing page's list of sessions, from each notebook's own headings."""
    out = []
    for nb in notebooks:
        out += [
            f"**[{nb.number} · {nb.title}](notebooks/{nb.stem}.ipynb)** ({session_time(nb)})",
            "",
        ]
        out += [f"- {b}" for b in nb.learn] + [""]
    return "\n".join(out)


def landing_page(notebooks: list[Notebook], template: Path | None = None) -> str:
    """``book/index.md`` with the sessions list in place of its ``<!-- sessions -->`` mark."""
    text = (template or BOOK_DIR / "index.md").read_text(encoding="utf-8")
    if SESSIONS_MARK not in text:
        raise ValueError(f"{template or BOOK_DIR / 'index.md'} has no {SESSIONS_MARK} line")
    return text.replace(SESSIONS_MARK, sessions_markdown(notebooks)) + toctrees(notebooks)


def docs_order() -> list[str]:
    """The docs pages in the order of the table of ``docs/README.md``, then any others."""
    index = (paths.DOCS / "README.md").read_text(encoding="utf-8")
    named = re.findall(r"^\|\s*\[`?([a-z_]+\.md)`?\]\(([a-z_]+\.md)\)", index, re.M)
    order = [target for _, target in named if (paths.DOCS / target).is_file()]
    rest = [p.name for p in sorted(paths.DOCS.glob("*.md")) if p.name not in order]
    return [n for n in order + rest if n != "README.md"]


def toctrees(notebooks: list[Notebook]) -> str:
    """The book's tables of contents: the sessions, the exercises, the reference pages."""

    def tree(caption: str, entries: list[str]) -> str:
        return "\n".join(
            ["", "```{toctree}", ":hidden:", f":caption: {caption}", "", *entries, "```", ""]
        )

    reference = ["docs/README", *[f"docs/{n[:-3]}" for n in docs_order()], "README", "CONTRIBUTING"]
    return (
        tree("Sessions", [f"notebooks/{nb.stem}" for nb in notebooks])
        + tree("Exercises", ["exercises", "handout"])
        + tree("Reference", reference)
    )


def book_path(repo_path: str) -> str:
    """Where a repository file lives in the book's source (a notebook's ``.py`` is its page)."""
    m = re.fullmatch(r"notebooks/(\d\d_[a-z0-9_]+)\.(py|ipynb)", repo_path)
    return f"notebooks/{m.group(1)}.ipynb" if m else repo_path


def rewrite_links(text: str, repo_file: str, src: Path, root: Path = paths.REPO_ROOT) -> str:
    """Point the relative links of a Markdown text (of ``repo_file``) at the book's pages: a
    notebook's ``.py`` at its page; a file that is not a page is copied into ``src`` at the
    same place (a download, or an image). A link into a folder becomes its path in code."""
    here = (root / repo_file).parent

    def fix(m: re.Match) -> str:
        target = m.group(2)
        if _SCHEME.match(target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        full = (here / path).resolve()
        try:
            rel = full.relative_to(root.resolve()).as_posix()
        except ValueError:
            return m.group(0)
        if full.is_dir():
            label = re.sub(r"^!?\[|\]\($", "", m.group(1)).strip()
            return (
                f"{label} (`{rel}/`)"
                if label and label.strip("`") != rel.rstrip("/")
                else f"`{rel}/`"
            )
        new = book_path(rel)
        if new == rel and full.is_file() and not (src / rel).exists():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(full, src / rel)
            if full.suffix == ".md":  # a Markdown file that is no page of its own (a table)
                (src / rel).write_text("---\norphan: true\n---\n\n" + full.read_text("utf-8"))
        start = Path(repo_file).parent
        up = "../" * len(start.parts)
        return f"{m.group(1)}{up}{new}{'#' + anchor if anchor else ''}{m.group(3)}"

    parts, last = [], 0
    for fence in _FENCE.finditer(text):  # links inside code blocks are not links
        parts.append(_LINK.sub(fix, text[last : fence.start()]))
        parts.append(fence.group(0))
        last = fence.end()
    parts.append(_LINK.sub(fix, text[last:]))
    return "".join(parts)


def _md_cell(source: str, cell_id: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": source}


def notebook_header(nb: Notebook, needs: list[str] | None = None) -> str:
    """The note at the top of a notebook page: download it, run it, at paper scale."""
    full = paths.PARAMS / f"{nb.stem}_full.yaml"
    lines = [
        ":::{note}",
        f"**Run this session yourself.** Download {{download}}`{nb.stem}.ipynb "
        f"<../{NOTEBOOK_FILES}/{nb.stem}.ipynb>` (without outputs; its source is "
        f"`notebooks/{nb.stem}.py`). In a clone of the repository, after `make setup`, read and "
        "run it cell by cell, or run it whole at its defaults"
        + (", or at paper scale:" if full.is_file() else ":"),
        "",
        "```bash",
        f".venv/bin/jupyter lab notebooks/{nb.stem}.ipynb",
        f".venv/bin/papermill notebooks/{nb.stem}.ipynb runs/{nb.number}.ipynb",
    ]
    if full.is_file():
        lines.append(
            f".venv/bin/papermill notebooks/{nb.stem}.ipynb runs/{nb.number}_full.ipynb "
            f"-f params/{full.name}"
        )
    lines += [
        "```",
        "",
        "The outputs below come from one run at the defaults (`make book`).",
        ":::",
    ]
    if needs:
        lines += [
            "",
            ":::{warning}",
            "**This page was built without this session's inputs**, so its attack cells below "
            "say what is missing instead of drawing. It needs:",
            "",
            *[f"- {n}" for n in needs],
            ":::",
        ]
    return "\n".join(lines)


def _figure_alt(name: str, section: str) -> str:
    """A figure's alt text from its name (``03_g_theta_search``, or an f-string's
    ``07_{vary}_{goal}``) and the section it is drawn in."""
    name = re.sub(r"[{}]", "", name)
    pretty = name.split("_", 1)[1].replace("_", " ") if "_" in name else name
    return f"Figure {name}: {pretty}" + (f" (section: {section})" if section else "")


def book_notebook(nb: Notebook, executed: Path, needs: list[str] | None = None) -> dict:
    """The executed notebook as the book shows it: a header after its first cell; alt text on
    every figure (from its name and section); each exercise's hint and answer behind toggles
    after its check cell; links fixed as in :func:`rewrite_links`; no widget state."""
    book = json.loads(Path(executed).read_text(encoding="utf-8"))
    cells_out = []
    section = ""
    titled = False
    for i, cell in enumerate(book["cells"]):
        src = "".join(cell.get("source", ""))
        if cell["cell_type"] == "code" and not src.strip() and not cell.get("outputs"):
            continue  # an empty cell (jupytext leaves one before the title) shows nothing
        cell["source"] = src
        cell.setdefault("id", f"cell-{i}")  # nbformat 4.5: every cell has an id
        if cell["cell_type"] == "markdown":
            for m in re.finditer(r"^#{2,3}\s+(.+)$", src, re.M):
                section = m.group(1).strip()
        elif cell["cell_type"] == "code":
            names = [
                m.group(1)
                for call in src.split("viz.show(")[1:]
                for m in [re.search(r"f?[\"'](\d\d_[^\"'\n]+)[\"']\s*,?\s*\)", call)]
                if m
            ]
            if names:  # myst-nb's alt text of the cell's images (else their file name)
                meta = cell.setdefault("metadata", {}).setdefault("mystnb", {})
                alt = "; ".join(_figure_alt(n, section) for n in dict.fromkeys(names))
                meta.setdefault("image", {})["alt"] = alt
            for o in cell.get("outputs", []):  # tqdm widgets: keep their text, drop the widget
                o.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)
        cells_out.append(cell)
        if cell["cell_type"] == "markdown" and not titled:  # after the title and introduction
            cells_out.append(_md_cell(notebook_header(nb, needs), "book-header"))
            titled = True
        m = re.search(r"exercises\.check\(\s*[\"'](\d\d\.\d+)[\"']", src)
        if cell["cell_type"] == "code" and m:
            ex = exercises.get(m.group(1))
            cells_out.append(_md_cell(exercise_block(ex, heading=False), f"book-{ex.id}"))
    book["cells"] = cells_out
    book["nbformat"], book["nbformat_minor"] = 4, max(5, book.get("nbformat_minor", 5))
    book.get("metadata", {}).pop("widgets", None)
    return book


def write_source(
    src: Path, notebooks: list[Notebook], executed: dict[str, Path], needs: dict[str, list[str]]
) -> list[Path]:
    """Lay out the book's source tree in ``src`` (emptied first); return the files written."""
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    written = []

    def put(rel: str, text: str) -> None:
        f = src / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text, encoding="utf-8")
        written.append(f)

    put("index.md", rewrite_links(landing_page(notebooks), "index.md", src))
    put("exercises.md", exercises_page(notebooks))
    put("handout.md", handout_page(notebooks))
    for rel in PAGES + tuple(f"docs/{p.name}" for p in sorted(paths.DOCS.glob("*.md"))):
        text = (paths.REPO_ROOT / rel).read_text(encoding="utf-8")
        put(rel, rewrite_links(text, rel, src))
    for nb in notebooks:
        book = book_notebook(nb, executed[nb.stem], needs.get(nb.stem))
        for cell in book["cells"]:
            if cell["cell_type"] == "markdown":
                cell["source"] = rewrite_links(cell["source"], f"notebooks/{nb.stem}.py", src)
        put(f"notebooks/{nb.stem}.ipynb", json.dumps(book, indent=1))
        dl = src / NOTEBOOK_FILES / nb.ipynb.name
        dl.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(nb.ipynb, dl)
    return written
