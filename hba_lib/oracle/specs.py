"""The one shape of an option's name, ``"kind:v1[:v2]"``, shared by the probe subspace
(``"dct:4"``), the probe prior (``"edge:3"``) and the narrowed support (``"top:0.3:0.7"``)."""

from __future__ import annotations

from collections.abc import Callable


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
