"""Exercises of notebook 03 (the black-box oracle and the Opt-attack baseline)."""

from __future__ import annotations

import math

from hba_lib.attacks.opt_attack import bisect
from hba_lib.exercises import Exercise, choice, number, register


def _bisection_queries(lo: float, hi: float, tol: float) -> int:
    search, n = bisect(lo, hi, tol), 0
    try:
        next(search)
        while True:
            n += 1
            search.send(n % 2 == 0)
    except StopIteration:
        return n


register(
    Exercise(
        id="03.1",
        question="The binary search for g(theta) starts from the bracket [0, 4.0] (0 not adversarial, "
        "4.0 adversarial) and stops when the bracket is narrower than tol = 0.01. How many "
        "queries does it make?",
        checker=number(
            _bisection_queries(0.0, 4.0, 0.01),
            rel_tol=0,
            mistakes={
                400: "that is a scan in steps of tol; halving the bracket needs far fewer queries.",
                8: "after 8 halvings the bracket is 4 / 256 = 0.0156 wide, still wider than 0.01.",
                10: "one too many: after 9 halvings the bracket is 4 / 512 = 0.0078 < 0.01.",
            },
            explain="each query halves the bracket: 4 / 2^9 = 0.0078 < 0.01, so ceil(log2(4 / 0.01)) = 9.",
        ),
        reference=9,
        hint="After k queries the bracket is 4 / 2^k wide.",
        wrong=(400, 8),
    )
)

_N = 16 * 32 * 32 * 3
register(
    Exercise(
        id="03.2",
        question="A perturbation of L2 norm 2.0 (in [0, 1] units) is spread evenly over all values of a "
        "16 x 32 x 32 x 3 video. What is its MAP on the 0-255 scale?",
        checker=number(
            2.0 / math.sqrt(_N) * 255,
            rel_tol=0.01,
            mistakes={
                2.0
                / _N
                * 255: "that divides the norm by the number of values; an even spread gives each "
                "value |d| with N d^2 = L2^2, so |d| = L2 / sqrt(N).",
                2.0
                / math.sqrt(
                    _N
                ): "that is on the [0, 1] scale; MAP is reported on 0-255: multiply by 255.",
                2.0 * 255: "MAP is a mean per value, not the norm of the whole video.",
            },
            explain="|d| = 2 / sqrt(49,152) = 0.0090 per value, x 255 = 2.30: the same L2 norm gives a "
            "smaller MAP on a larger video.",
        ),
        reference=2.0 / math.sqrt(_N) * 255,
        hint="If every one of N values moves by d, the L2 norm is sqrt(N) * d.",
        wrong=(2.0 / _N * 255, 2.0 / math.sqrt(_N)),
    )
)

register(
    Exercise(
        id="03.3",
        question="Why does the untargeted Opt-attack fool 100 % of the videos whose initialisation "
        "finishes, at any budget? (a) the small models are weak; (b) every candidate direction "
        "starts at a video of another class, already adversarial, and the attack only ever "
        "keeps adversarial points while it shrinks the distance; (c) the query budget is large.",
        checker=choice(
            "b",
            {
                "a": "the model's strength changes how small the perturbation gets (MAP), not whether one "
                "is found: the start point is adversarial for any model.",
                "c": "FR stays 100 % at a tiny budget too; the budget changes MAP and MQ.",
            },
            explain="the initial point is another class's video, adversarial by construction, and g(theta) "
            "is always an adversarial distance: FR 100 % is guaranteed, so MAP at a given number "
            "of queries is the measure that tells attacks apart (targeted attacks can fail).",
        ),
        reference="b",
        hint="Where does the attack start, and can a step of the attack leave the adversarial side?",
        wrong=("a", "c"),
    )
)

register(
    Exercise(
        id="03.4",
        question="An untargeted attack with 10 candidate videos first checks the clean video, then asks "
        "the oracle the class of every candidate. How many queries is that, before any search?",
        checker=number(
            11,
            rel_tol=0,
            mistakes={
                10: "the clean video's check is a query too: every evaluation of the model counts.",
                1: "a batch of 10 videos costs 10 queries, not one: the oracle counts videos, not calls.",
                2: "a batch of 10 videos costs 10 queries, not one: the oracle counts videos, not calls.",
            },
            explain="1 check + 10 candidates = 11: MQ init in the results table starts there.",
        ),
        reference=11,
        hint="The oracle counts every video it evaluates, alone or in a batch.",
        wrong=(10, 2),
    )
)
