"""The exercise checkers: every reference answer is right, every listed mistake is told why."""

from __future__ import annotations

import pytest

from hba_lib import exercises, paths

ALL = exercises.all_exercises()


def test_every_notebook_module_is_discovered():
    modules = {p.stem for p in (paths.PACKAGE_DIR / "exercises").glob("nb[0-9][0-9].py")}
    assert modules and {f"nb{e.id[:2]}" for e in ALL} == modules


@pytest.mark.parametrize("ex", ALL, ids=lambda e: e.id)
def test_reference_answer_is_right(ex):
    fb = exercises.check(ex.id, ex.reference)
    assert fb.correct is True and fb.message, fb


@pytest.mark.parametrize("ex", ALL, ids=lambda e: e.id)
def test_wrong_answers_are_told_why(ex):
    assert ex.wrong, f"{ex.id}: list at least one common mistake"
    for answer in ex.wrong:
        fb = exercises.check(ex.id, answer)
        assert fb.correct is False, f"{ex.id}: {answer!r} should be wrong"
        assert len(fb.message) > 20 and "Hint:" in fb.message, fb
    assert ex.hint and ex.question


def test_no_answer_yet_and_unknown_ids():
    fb = exercises.check(ALL[0].id, None)
    assert fb.correct is None and not fb and ALL[0].question in fb.message
    with pytest.raises(KeyError, match="no exercise"):
        exercises.check("99.9", 1)
    assert exercises.check("03.1", "not a number").correct is False
    assert "03.1" in exercises.show("03") and exercises.hint("03.1")


def test_register_refuses_bad_or_duplicate_ids():
    ex = exercises.get("01.1")
    with pytest.raises(ValueError, match="id"):
        exercises.register(exercises.Exercise("1.1", "q", ex.checker, 1, "h"))
    with pytest.raises(ValueError, match="twice"):
        exercises.register(exercises.Exercise("01.1", "q", ex.checker, 1, "h"))
