"""Exercises of notebook 10 (beyond the paper: MAP against L2, low-frequency probes, the edge
prior, HopSkipJump's boundary step)."""

from __future__ import annotations

import math

from hba_lib.exercises import Exercise, number, register

_N = 3 * 16 * 32 * 32  # values of a 3 x 16 x 32 x 32 video
_L2 = math.sqrt(_N) * 2.0 / (255 * math.sqrt(0.1))

register(
    Exercise(
        id="10.1",
        question="A perturbation changes 10 % of the values of a 3 x 16 x 32 x 32 video, each by "
        "the same amount, and its MAP is 2.0 (0-255). What is its L2 in [0, 1] units?",
        checker=number(
            _L2,
            rel_tol=2e-3,
            mistakes={
                round(math.sqrt(_N) * 2.0 / 255, 3): "that spreads the MAP over every value "
                "(rho = 1); on 10 % of them each change is 10 times larger, and L2 grows by "
                "1 / sqrt(0.1).",
                round(math.sqrt(_N) * 2.0 * math.sqrt(0.1) / 255, 3): "that multiplies by "
                "sqrt(rho); a sparser perturbation of the same MAP has the larger L2: divide.",
                round(math.sqrt(_N) * 2.0 / math.sqrt(0.1), 1): "MAP is on the 0-255 scale and "
                "L2 in [0, 1] units: divide by 255.",
            },
            explain=f"N = {_N}, L2 = sqrt(N) MAP / (255 sqrt(rho)) = 221.7 x 2.0 / (255 x "
            f"0.316) = {_L2:.3f}.",
        ),
        reference=round(_L2, 3),
        hint="Each changed value moves by a = MAP / (255 rho); L2 = sqrt(rho N) a.",
        wrong=(
            round(math.sqrt(_N) * 2.0 / 255, 3),
            round(math.sqrt(_N) * 2.0 * math.sqrt(0.1) / 255, 3),
            round(math.sqrt(_N) * 2.0 / math.sqrt(0.1), 1),
        ),
    )
)

register(
    Exercise(
        id="10.2",
        question="What is the dimension k of the dct:4 subspace for a 3 x 16 x 32 x 32 video "
        "(every temporal frequency, a 4 times lower band in H and in W)?",
        checker=number(
            3 * 16 * 8 * 8,
            rel_tol=0,
            abs_tol=0.5,
            mistakes={
                1024: "that forgets the 3 colour channels: each has its own coefficients.",
                192: "that forgets the 16 frames: dct:4 keeps every temporal frequency (dct:4:R "
                "would reduce T too).",
                3 * 16 * 32 * 32 / 4: "the band is 4 times lower in H and in W: 16 times fewer "
                "values per frame, not 4.",
            },
            explain="k = C x T x (H/4) x (W/4) = 3 x 16 x 8 x 8 = 3072, 16 times fewer than "
            "the 49,152 values of the video.",
        ),
        reference=3072,
        hint="Count the coefficients: channels x frames x (H / 4) x (W / 4).",
        wrong=(1024, 192, 3 * 16 * 32 * 32 / 4),
    )
)

register(
    Exercise(
        id="10.3",
        question="At HopSkipJump's iteration t = 4 the boundary point is at ||x_b - x|| = 3.0. "
        "What is the first step size eps it tries?",
        checker=number(
            1.5,
            rel_tol=1e-3,
            mistakes={
                0.75: "that divides by t; the geometric step size divides by sqrt(t).",
                3.0: "that is the first iteration's step (t = 1); it shrinks as sqrt(t) grows.",
                6.0: "the step shrinks with t: divide by sqrt(t), do not multiply.",
            },
            explain="eps = ||x_b - x|| / sqrt(t) = 3.0 / 2 = 1.5, halved until the step is "
            "adversarial.",
        ),
        reference=1.5,
        hint="eps_t = ||x_b - x|| / sqrt(t).",
        wrong=(0.75, 3.0, 6.0),
    )
)

# 10.4: an edge map that is c > 0 on a share 0.1 of the pixels and 0 elsewhere, prior edge:3,
# floor 0.01. e^P / mean(e^P) = 1 / 0.1 = 10 on the edges (whatever c and P), 0 elsewhere.
_EDGES, _FLOOR = 0.1, 0.01
_S2_EDGE, _S2_FLAT = 1 / _EDGES + _FLOOR, _FLOOR  # s^2 on an edge pixel, on a flat one


def _share(on: float, off: float) -> float:
    """Percent of sum(s^2) on the edges, ``on`` / ``off`` the per-pixel weights."""
    return 100 * _EDGES * on / (_EDGES * on + (1 - _EDGES) * off)


_SHARE = _share(_S2_EDGE, _S2_FLAT)
_WRONG = {
    round(100 * _EDGES, 1): "that is the flat probes' share, 10 % of the energy on 10 % of the "
    "pixels; the prior gives every edge pixel s^2 = 10 + 0.01 and the others only the floor.",
    100.0: "that forgets the floor: the other 90 % of the pixels keep s^2 = F = 0.01 each, so "
    "a little of the energy stays off the edges (every pixel stays reachable).",
    round(_share(_S2_EDGE**0.5, _S2_FLAT**0.5), 1): "that adds up s, the standard deviation; a "
    "probe's expected energy on a pixel is its variance s^2.",
    round(_share(1 / _EDGES, _FLOOR**0.5), 1): "that gives the flat pixels s^2 = 0.1; the floor "
    "F = 0.01 is added to s^2 itself (s = 0.1 there).",
}

register(
    Exercise(
        id="10.4",
        question="A video's edge map e is the same c > 0 on 10 % of its pixels and 0 on the other "
        "90 %. With the prior edge:3 (floor F = 0.01) and no mask, what share of a probe's "
        "expected energy (the sum over pixels of s^2) lies on those 10 %, in percent?",
        checker=number(
            _SHARE,
            rel_tol=1e-3,
            mistakes=_WRONG,
            explain=f"e^3 / mean(e^3) = 1 / 0.1 = 10 on the edges (whatever c) and 0 elsewhere, "
            f"so s^2 = 10.01 there and 0.01 elsewhere: 0.1 x 10.01 / (0.1 x 10.01 + 0.9 x 0.01) "
            f"= {_SHARE:.1f} %, against 10 % for the flat probes.",
        ),
        reference=round(_SHARE, 1),
        hint="s^2 = e^P / mean(e^P) + F per pixel; the share is the edges' sum of s^2 over the "
        "whole video's.",
        wrong=tuple(_WRONG),
    )
)
