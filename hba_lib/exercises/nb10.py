"""Exercises of notebook 10 (beyond the paper: MAP against L2, low-frequency probes, HopSkipJump's
boundary step)."""

from __future__ import annotations

import math

from hba_lib.exercises import Exercise, choice, number, register

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

register(
    Exercise(
        id="10.4",
        question="Two attacks on the same video reach the same MAP. A changes every value; B "
        "only 4 % of them. (a) their L2 is the same, since their MAP is; (b) B's L2 is at least "
        "5 times sqrt(N) MAP / 255, the smallest L2 A can have at that MAP; (c) B's L2 is "
        "smaller, since it changes fewer values.",
        checker=choice(
            "b",
            {
                "a": "MAP averages |x_adv - x| over every value; L2 squares them, so the same "
                "MAP concentrated on fewer values has a larger L2.",
                "c": "fewer values at the same MAP means each changes more: 25 times more on "
                "average, and L2 grows as 1 / sqrt(rho).",
            },
            explain="L2 >= sqrt(N) MAP / (255 sqrt(rho)); with rho = 0.04, 1 / sqrt(rho) = 5. "
            "A sparse mask wins MAP and must earn its L2.",
        ),
        reference="b",
        hint="Write MAP and L2 for a change of a on a share rho of N values.",
        wrong=("a", "c"),
    )
)
