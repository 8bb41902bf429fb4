"""The one shape of an option's name, ``"kind:v1[:v2]"``, shared by the probe subspace
(``"dct:4"``), the probe prior (``"edge:3"``), the narrowed support (``"top:0.3:0.7"``) and
HopSkipJump's screened options (``"step:2:0.5"``, ``"fade:0.3:1"``, ``"nb:7"``); and the one
way every such option is read (:func:`named_option`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def split_spec(spec: str, what: str, kinds: tuple[str, ...], counts: tuple[int, ...],
               expected: str, number: Callable[[str], float | int] = float,
               not_numbers: str = "the values must be numbers") -> tuple[str, list]:  # fmt: skip
    """``(kind, values)`` of ``spec``: its head one of ``kinds``, then ``counts`` values each
    read by ``number``. A ``ValueError`` that names ``what`` and ``spec`` otherwise: ``expected``
    (what a right name looks like) for a wrong head or count, ``not_numbers`` for a value
    ``number`` cannot read."""
    head, *values = spec.split(":")
    if head not in kinds or len(values) not in counts:
        raise ValueError(f"{what} {spec!r}: expected {expected}")
    try:
        return head, [number(v) for v in values]
    except ValueError:
        raise ValueError(f"{what} {spec!r}: {not_numbers}") from None


def named_option(kind: type, what: str, example: str, off: tuple[str, ...] = ("", "none"),
                 off_value: Any = None) -> Callable[[Callable[[str], Any]], Callable[[Any], Any]]:  # fmt: skip
    """Decorate ``parse(name) -> kind`` into the reader every option shares: a ``kind`` passes
    through; ``None`` and the names in ``off`` give ``off_value`` (the option is off); any
    other string goes to ``parse``; anything else (a number, a list) is a ``TypeError`` that
    names ``what`` and a right name, ``example`` (quoted as it should read). The decorated
    function keeps its name, docstring and annotations (those of the reader it becomes)."""

    def wrap(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
        @functools.wraps(parse)
        def read(spec: Any) -> Any:
            if isinstance(spec, kind):
                return spec
            if spec is None or (isinstance(spec, str) and spec in off):
                return off_value
            if not isinstance(spec, str):
                raise TypeError(f"{what} must be a string like {example}, got {spec!r}")
            return parse(spec)

        return read

    return wrap
