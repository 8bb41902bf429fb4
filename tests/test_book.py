"""The course as a book (``make book``, :mod:`hba_lib.book`): its pages come from one source
each, and the built site passes a check in headless Chromium that fails on a broken image, a
dead internal link or anchor, and a console error.

The browser tests check ``runs/book/html`` when ``make book`` built it (``make test`` does,
before pytest, from the notebooks executed at their defaults); else they build a book from
the committed notebooks without outputs into a temporary folder (Sphinx only, about 20 s).
They skip only where Debian's ``chromium`` / ``chromium-driver`` are missing and cannot be
installed (not root); as root (CI) a missing browser fails, since ``make setup`` installs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from hba_lib import exercises, paths
from hba_lib.book import build, check, pages
from hba_lib.book import notebooks as nbs


# -- one source for every page -------------------------------------------------------------------
def _fake_notebook(folder: Path, stem: str, title: str = "A title") -> None:
    (folder / f"{stem}.py").write_text(
        f"# %% [markdown]\n# # {stem[:2]} · {title}\n#\n# ## What you will learn\n"
        "# - one thing,\n#   on two lines;\n# - another.\n#\n"
        "# **Time to run:** about 1 minute on 2 CPU cores at the defaults; more at paper scale.\n"
    )
    (folder / f"{stem}.ipynb").write_text("{}")


def test_notebooks_are_discovered_from_the_folder_not_listed(tmp_path):
    _fake_notebook(tmp_path, "01_first")
    _fake_notebook(tmp_path, "10_tenth", "The tenth")
    (tmp_path / "helper.py").write_text("x = 1\n")  # not a notebook of the course
    found = nbs.discover(tmp_path)
    assert [nb.stem for nb in found] == ["01_first", "10_tenth"]
    tenth = found[1]
    assert (tenth.number, tenth.title) == ("10", "The tenth")
    assert tenth.learn == ["one thing, on two lines;", "another."]
    assert pages.session_time(tenth) == "about 1 minute on 2 CPU cores at the defaults"
    assert "10_tenth.ipynb" in pages.sessions_markdown(found)
    assert "notebooks/10_tenth" in pages.toctrees(found)


def test_a_notebook_without_its_pair_or_headings_is_a_clear_error(tmp_path):
    _fake_notebook(tmp_path, "01_first")
    (tmp_path / "02_lonely.py").write_text("# %% [markdown]\n# # 02 · Lonely\n")
    with pytest.raises(FileNotFoundError, match="02_lonely.py has no paired 02_lonely.ipynb"):
        nbs.discover(tmp_path)
    (tmp_path / "02_lonely.ipynb").write_text("{}")
    lonely = nbs.discover(tmp_path)[1]
    with pytest.raises(ValueError, match="Time to run"):
        _ = lonely.time_to_run
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        nbs.discover(tmp_path / "empty")


def test_every_real_notebook_gives_the_landing_page_its_title_time_and_bullets():
    found = nbs.discover()
    assert [nb.stem for nb in found] == [
        p.stem for p in sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.py"))
    ]
    for nb in found:
        assert nb.title and nb.learn, nb.stem
        when = pages.session_time(nb)  # the clause up to "at the defaults" (the convention)
        assert when and nb.time_to_run.startswith(when) and len(when) < 120, (nb.stem, when)
    landing = pages.landing_page(found)
    assert pages.SESSIONS_MARK not in landing
    for nb in found:
        assert f"{nb.number} · {nb.title}" in landing


def test_an_executed_copy_is_current_only_for_the_source_it_was_run_from(tmp_path):
    _fake_notebook(tmp_path, "01_first")
    nb = nbs.discover(tmp_path)[0]
    cache = tmp_path / "cache"
    cache.mkdir()
    copy = cache / "01_first.ipynb"
    copy.write_text("{}")
    assert nbs.cached_copy(nb, cache) is None  # no sidecar: never taken
    nbs.mark_current(nb, copy)
    assert nbs.cached_copy(nb, cache) == copy
    log = []  # a current copy elsewhere (make demo's) is taken, not run again
    got = nbs.executed_notebooks([nb], cache=tmp_path / "book", reuse=(cache,), log=log.append)
    assert got["01_first"] == tmp_path / "book" / "01_first.ipynb" and "reused" in log[0]
    assert nbs.cached_copy(nb, tmp_path / "book") == got["01_first"]
    nb.source.write_text(nb.source.read_text() + "# %%\nx = 2\n")  # the source changed
    assert nbs.cached_copy(nb, cache) is None
    assert nbs.cached_copy(nb, tmp_path / "book") is None


def test_exercises_pages_come_from_the_registry():
    found = nbs.discover()
    page, handout = pages.exercises_page(found), pages.handout_page(found)
    for ex in exercises.all_exercises():
        assert ex.question in page and ex.question in handout, ex.id
        assert ex.hint in page and ex.hint not in handout, ex.id
        assert ex.checker(ex.reference)[1] in page, ex.id
    assert page.count(":::{dropdown} Answer") == len(exercises.all_exercises())


def test_a_reference_answer_that_fails_its_checker_is_never_printed():
    ex = exercises.Exercise("99.1", "q?", exercises.number(3.0), reference=4.0, hint="h", wrong=())
    with pytest.raises(ValueError, match="99.1: its reference answer fails its own checker"):
        pages.exercise_block(ex)


def test_links_point_at_the_book_pages(tmp_path):
    text = (
        "[nb](../notebooks/03_opt_attack.py#exercises), [doc](glossary.md#omega), "
        "[dir](../hba_lib/attacks/), [bench](../benchmarks/results/cpu_bench_serve.txt), "
        "[web](https://example.org)\n```\n[code](../notebooks/03_opt_attack.py)\n```\n"
    )
    out = pages.rewrite_links(text, "docs/x.md", tmp_path)
    assert "[nb](../notebooks/03_opt_attack.ipynb#exercises)" in out
    assert "[doc](../docs/glossary.md#omega)" in out
    assert "dir (`hba_lib/attacks/`)" in out
    assert (tmp_path / "benchmarks/results/cpu_bench_serve.txt").is_file()
    assert "[web](https://example.org)" in out
    assert "[code](../notebooks/03_opt_attack.py)" in out  # code is not rewritten


# -- the built site in a real browser -----------------------------------------------------------
def _browser_or_skip() -> None:
    try:
        check.browser_paths()
    except check.BrowserMissing as err:
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            pytest.fail(f"{err} (as root, make setup installs them)")
        pytest.skip(f"{err}; not root, so it cannot be installed here")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    _browser_or_skip()
    built = build.HTML
    if (built / "index.html").is_file() and (built / build.INFO).is_file():
        return built
    out = tmp_path_factory.mktemp("book")
    executed = {nb.stem: nb.ipynb for nb in nbs.discover()}  # no outputs: Sphinx only
    build.build(out / "html", src=out / "src", executed=executed, log=lambda s: None)
    return out / "html"


def test_the_book_passes_the_browser_check_on_every_page(site):
    shots = paths.RUNS / "book" / "shots"
    problems = check.check_site(site, shots=shots)
    assert not problems, "\n".join(problems)
    names = {p.relative_to(site).as_posix() for p in check.pages_of(site)}
    expected = {"index.html", "exercises.html", "handout.html", "docs/glossary.html"}
    expected |= {f"notebooks/{nb.stem}.html" for nb in nbs.discover()}
    expected |= {f"docs/{p.stem}.html" for p in paths.DOCS.glob("*.md")}
    assert expected <= names, sorted(expected - names)
    for name in ("book_landing.png", "book_notebook.png", "book_exercise_open.png"):
        assert (shots / name).stat().st_size > 10_000, name
    info = json.loads((site / build.INFO).read_text())
    for stem, executed in info["executed"].items():  # a built book shows every figure
        page = (site / "notebooks" / f"{stem}.html").read_text()
        if executed and not info["needs"].get(stem):
            assert re.search(r"<img [^>]*alt=\"Figure \d\d_", page), f"{stem}: no figure"


@pytest.fixture()
def broken(site, tmp_path) -> Path:
    copy = tmp_path / "html"
    shutil.copytree(site, copy)
    return copy


def _only(problems: list[str], needle: str) -> None:
    assert problems, f"the check found nothing; expected {needle!r}"
    assert all(needle in p for p in problems), problems


def test_the_check_fails_on_a_broken_image(broken):
    page = broken / "docs" / "README.html"
    page.write_text(
        page.read_text().replace(
            "</main>", '<img src="../_static/x.png" alt="a picture"></main>', 1
        )
    )
    (broken / "_static" / "x.png").write_bytes(b"not a png at all")
    _only(check.check_site(broken, pages=[page]), "docs/README.html: image not decoded")


def test_the_check_fails_on_a_dead_internal_link(broken):
    page = broken / "docs" / "README.html"
    page.write_text(page.read_text().replace("</main>", '<a href="nowhere.html">x</a></main>', 1))
    _only(check.check_site(broken, pages=[page]), "dead link")


def test_the_check_fails_on_a_dead_anchor(broken):
    page = broken / "docs" / "README.html"
    html = page.read_text().replace(
        "</main>", '<a href="glossary.html#no-such-term">x</a></main>', 1
    )
    page.write_text(html)
    _only(check.check_site(broken, pages=[page]), "dead anchor")


def test_the_check_fails_on_a_console_error(broken):
    page = broken / "docs" / "README.html"
    html = page.read_text().replace(
        "</body>", '<script>console.error("injected");</script></body>', 1
    )
    page.write_text(html)
    _only(check.check_site(broken, pages=[page]), "console error")


def test_the_check_fails_when_the_search_or_a_toggle_breaks(broken):
    index = broken / "searchindex.js"  # the word left out of the index, as if never indexed
    index.write_text(re.sub(r'"omega(s?)"', r'"omegx\1"', index.read_text()))
    exercises_page = broken / "exercises.html"
    exercises_page.write_text(exercises_page.read_text().replace("Answer (", "Reply ("))
    problems = check.check_site(broken, pages=[])
    assert any("search for 'omega' does not list docs/glossary.html" in p for p in problems), (
        problems
    )
    assert any("no answer toggle" in p for p in problems), problems


def test_a_page_built_without_its_inputs_says_what_it_needs(tmp_path):
    nb = next(n for n in nbs.discover() if n.stem.startswith("09_"))
    book = pages.book_notebook(nb, nb.ipynb, needs=["the model file: put it in ../shared/models"])
    text = "\n".join(c["source"] for c in book["cells"] if c["cell_type"] == "markdown")
    assert "built without this session's inputs" in text
    assert "- the model file: put it in ../shared/models" in text
    book = pages.book_notebook(nb, nb.ipynb, needs=[])
    assert "built without" not in "\n".join(c["source"] for c in book["cells"])


def test_each_notebook_page_links_its_ipynb_and_the_commands_and_toggles_its_exercises():
    for nb in nbs.discover():
        book = pages.book_notebook(nb, nb.ipynb)
        header = book["cells"][1]["source"]
        assert book["cells"][0]["source"].startswith(f"# {nb.number} · ")
        assert f"<../{pages.NOTEBOOK_FILES}/{nb.stem}.ipynb>" in header
        assert f"papermill notebooks/{nb.stem}.ipynb" in header
        text = "\n".join(c["source"] for c in book["cells"])
        for ex in exercises.exercises_for(nb.number):
            assert f":::{{dropdown}} Answer ({ex.id})" in text, ex.id
        assert all(c.get("id") for c in book["cells"])


def test_make_demo_marks_its_copies_for_the_book(tmp_path):
    from hba_lib import demo

    nb = nbs.discover()[0]
    out = tmp_path / nb.ipynb.name
    out.write_text("{}")
    demo._mark_for_book(nb.ipynb, out)
    assert nbs.cached_copy(nb, tmp_path) == out
    other = tmp_path / "renamed.ipynb"  # not the notebook's own name: not taken
    other.write_text("{}")
    demo._mark_for_book(nb.ipynb, other)
    assert not (tmp_path / "renamed.sha256").exists()


def test_a_sphinx_warning_fails_the_build(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "index.md").write_text("# A page\n\nSee [the glossary](glossary.md) and $x^2$.\n")
    (src / "glossary.md").write_text("---\norphan: true\n---\n# Glossary\n\nomega.\n")
    build.sphinx(src, tmp_path / "html", log=lambda s: None)  # a clean page builds
    assert (tmp_path / "html" / "_static" / "mathjax" / "tex-chtml.js").is_file()
    (src / "index.md").write_text("# A page\n\nSee [a page that is not there](nowhere.md).\n")
    with pytest.raises(RuntimeError, match="nowhere"):
        build.sphinx(src, tmp_path / "html2", log=lambda s: None)
    build.sphinx(src, tmp_path / "html3", strict=False, log=lambda s: None)  # warned, not failed


def test_the_check_fails_on_a_request_to_a_cdn(broken):
    page = broken / "docs" / "README.html"
    cdn = '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>'
    page.write_text(page.read_text().replace("</body>", cdn + "</body>", 1))
    problems = check.check_site(broken, pages=[page])
    assert any(
        "requests a resource from outside the site: https://cdn.jsdelivr.net" in p for p in problems
    ), problems
