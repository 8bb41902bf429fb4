"""Exercises of notebook 10 (beyond the paper: MAP against L2, low-frequency probes, the edge
prior, HopSkipJump's boundary step)."""

from __future__ import annotations

import math

from hba_lib.exercises import Exercise, number, register
from hba_lib.oracle.priors import DEFAULT_FLOOR

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

_FLOOR = DEFAULT_FLOOR  # the priors' floor F, 0.01

# 10.4: set A (10 % of the pixels) has a luminance edge the colour map sees too; set B (another
# 10 %) a hue-only outline; the colour map is the same value on A and B. lcedge:3, floor 0.01:
# w_l = 1 / 0.1 = 10 on A, 0 elsewhere; w_c = 1 / 0.2 = 5 on A and B; s^2 = (w_l + w_c) / 2 + F.
_A = _B = 0.1
_W_L, _W_C = 1 / _A, 1 / (_A + _B)


def _share_b(on_a: float, on_b: float, off: float) -> float:
    """Percent of sum(s^2) on B, given s^2 on A, on B and elsewhere."""
    return 100 * _B * on_b / (_A * on_a + _B * on_b + (1 - _A - _B) * off)


_LC = _share_b((_W_L + _W_C) / 2 + _FLOOR, _W_C / 2 + _FLOOR, _FLOOR)
_WRONG_LC = {
    round(_share_b(_W_L + _FLOOR, _FLOOR, _FLOOR), 1): "that is edge:3's share: the luminance "
    "map does not see the hue-only outline, so only the floor reaches it.",
    round(_share_b(_W_C + _FLOOR, _W_C + _FLOOR, _FLOOR), 1): "that is cedge:3's share, the colour "
    "map alone; lcedge gives each map half of the energy.",
    round(_share_b((_W_L + _W_C) / 2, _W_C / 2, 0.0), 1): "that forgets the floor F = 0.01 on "
    "every pixel, outside A and B too.",
    50.0: "that splits the energy half and half between A and B; A gets both maps' weight, B only "
    "the colour map's.",
}

register(
    Exercise(
        id="10.4",
        question="A video's luminance edge map is the same c > 0 on a set A of 10 % of its pixels "
        "and 0 elsewhere; its colour edge map is the same c' > 0 on A and on another 10 %, B (an "
        "outline in hue only), and 0 elsewhere. With the prior lcedge:3 (floor F = 0.01) and no "
        "mask, what share of a probe's expected energy lies on B, in percent (to one decimal)?",
        checker=number(
            _LC,
            rel_tol=3e-3,  # 24.9 passes, 25.0 (the floor forgotten) does not
            mistakes=_WRONG_LC,
            explain=f"w = e^3 / mean(e^3): the luminance map's is 10 on A, the colour map's 5 on "
            f"A and B; s^2 = (w_l + w_c) / 2 + F is 7.51 on A, 2.51 on B, 0.01 elsewhere, so B "
            f"holds 0.1 x 2.51 / (0.1 x 7.51 + 0.1 x 2.51 + 0.8 x 0.01) = {_LC:.1f} % (edge:3: "
            f"0.1 %, cedge:3: 49.6 %).",
        ),
        reference=round(_LC, 1),
        hint="Normalise each map's e^3 by its own mean, average the two, add F; then the share "
        "is B's sum of s^2 over the whole video's.",
        wrong=tuple(_WRONG_LC),
    )
)
