"""Exercises at the end of every notebook, with checkers that say right or wrong, and why.

In a notebook::

    from hba_lib import exercises
    answer = ...                        # the reader's answer
    exercises.check("03.2", answer)     # -> "right: ..." or "not yet: <why>"
    exercises.hint("03.2")              # a nudge, without the answer

Each notebook ``NN_name`` has one module ``hba_lib/exercises/nbNN.py`` that registers its
exercises with :func:`register`; modules named ``nbNN.py`` are found and imported on first use,
so a new notebook adds its module and touches nothing here. Exercise ids are ``"NN.k"``
(notebook number, exercise number). Every exercise carries a reference answer; the tests check
that it passes its own checker and that each listed wrong answer is told why.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Exercise",
    "Feedback",
    "all_exercises",
    "check",
    "choice",
    "exercises_for",
    "get",
    "hint",
    "number",
    "register",
    "show",
    "word",
]


@dataclass(frozen=True)
class Feedback:
    """The verdict on one answer: ``correct`` and a message that says why."""

    exercise: str
    correct: bool | None  # None: no answer given yet
    message: str

    def __bool__(self) -> bool:
        return bool(self.correct)

    def __repr__(self) -> str:
        mark = {True: "right", False: "not yet", None: "no answer yet"}[self.correct]
        return f"[{self.exercise}] {mark}: {self.message}"

    _repr_pretty_ = lambda self, p, cycle: p.text(repr(self))  # noqa: E731


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``checker(answer) -> (correct, why)``; ``reference`` passes it; each of
    ``wrong`` (common mistakes) fails it with a reason."""

    id: str
    question: str
    checker: Callable[[Any], tuple[bool, str]]
    reference: Any
    hint: str
    wrong: tuple[Any, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, Exercise] = {}
_loaded = False
_ID = re.compile(r"^\d\d\.\d+$")


def register(exercise: Exercise) -> Exercise:
    """Add ``exercise`` to the registry (ids ``"NN.k"``, each once)."""
    if not _ID.match(exercise.id):
        raise ValueError(f"exercise id must look like '03.2', got {exercise.id!r}")
    if exercise.id in _REGISTRY and _REGISTRY[exercise.id] is not exercise:
        raise ValueError(f"exercise {exercise.id} is registered twice")
    _REGISTRY[exercise.id] = exercise
    return exercise


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if re.fullmatch(r"nb\d\d", mod.name):
            importlib.import_module(f"{__name__}.{mod.name}")
    _loaded = True


def _key(ex_id: str) -> tuple[int, int]:
    nb, k = ex_id.split(".")
    return int(nb), int(k)


def all_exercises() -> list[Exercise]:
    """Every registered exercise, in notebook order."""
    _load()
    return [_REGISTRY[k] for k in sorted(_REGISTRY, key=_key)]


def exercises_for(notebook: str | int) -> list[Exercise]:
    """The exercises of one notebook (``3``, ``"03"`` or ``"03_opt_attack"``)."""
    nb = f"{int(str(notebook)[:2]):02d}"
    return [e for e in all_exercises() if e.id.startswith(nb + ".")]


def get(ex_id: str) -> Exercise:
    """One exercise by id, with a clear error for an unknown id."""
    _load()
    if ex_id not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY, key=_key)) or "none"
        raise KeyError(f"no exercise {ex_id!r}; known: {known}")
    return _REGISTRY[ex_id]


def check(ex_id: str, answer: Any) -> Feedback:
    """Check ``answer`` to exercise ``ex_id``: right or wrong, and why. ``None`` = not answered."""
    ex = get(ex_id)
    if answer is None or answer is Ellipsis:
        return Feedback(ex_id, None, f"replace the placeholder with your answer; {ex_id} asks: "
                        f"{ex.question}  (exercises.hint({ex_id!r}) gives a hint)")  # fmt: skip
    try:
        ok, why = ex.checker(answer)
    except (TypeError, ValueError) as err:
        return Feedback(ex_id, False, f"could not read the answer {answer!r}: {err}")
    if not ok:
        why = f"{why} Hint: {ex.hint}".strip()
    return Feedback(ex_id, bool(ok), why)


def hint(ex_id: str) -> str:
    """A hint for exercise ``ex_id`` (not the answer)."""
    return get(ex_id).hint


def show(notebook: str | int | None = None) -> str:
    """The questions (of one notebook, or all), one per line, for a course handout."""
    exs = all_exercises() if notebook is None else exercises_for(notebook)
    return "\n".join(f"{e.id}: {e.question}" for e in exs)


# -- checker builders ------------------------------------------------------------------------------
def number(
    expected: float,
    rel_tol: float = 0.01,
    abs_tol: float = 0.0,
    mistakes: Mapping[float, str] | None = None,
    explain: str = "",
) -> Callable[[Any], tuple[bool, str]]:
    """A checker for a number: right within the tolerance; a known mistake gets its reason."""

    def checker(answer: Any) -> tuple[bool, str]:
        value = float(answer)
        if math.isclose(value, expected, rel_tol=rel_tol, abs_tol=abs_tol):
            return True, explain or f"{expected:g}"
        for wrong, why in (mistakes or {}).items():
            if math.isclose(value, wrong, rel_tol=rel_tol, abs_tol=abs_tol):
                return False, why
        return False, f"{value:g} is {'too large' if value > expected else 'too small'}."

    return checker


def word(
    accepted: Iterable[str], mistakes: Mapping[str, str] | None = None, explain: str = ""
) -> Callable[[Any], tuple[bool, str]]:
    """A checker for a name or word (case, spaces, '-' and '_' ignored)."""

    def norm(s: Any) -> str:
        return re.sub(r"[\s_\-]+", "", str(s).strip().lower())

    ok = {norm(a) for a in accepted}
    bad = {norm(k): v for k, v in (mistakes or {}).items()}

    def checker(answer: Any) -> tuple[bool, str]:
        a = norm(answer)
        if a in ok:
            return True, explain
        if a in bad:
            return False, bad[a]
        return False, f"{answer!r} is not it."

    return checker


def choice(
    correct: str, reasons: Mapping[str, str], explain: str
) -> Callable[[Any], tuple[bool, str]]:
    """A checker for a multiple-choice letter; every wrong letter has its reason."""

    def checker(answer: Any) -> tuple[bool, str]:
        a = str(answer).strip().lower().strip("()")
        if a == correct.lower():
            return True, explain
        if a in reasons:
            return False, reasons[a]
        return False, f"choose one of {', '.join(sorted([correct, *reasons]))}"

    return checker
