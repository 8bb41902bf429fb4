"""Exercises of notebook 04 (temporal sparsity: key frames, Algorithm 1)."""

from __future__ import annotations

from hba_lib.exercises import Exercise, choice, number, register

register(
    Exercise(
        id="04.1",
        question="How many queries does the frame importance of Algorithm 1 cost for one candidate of "
        "a 16-frame video?",
        checker=number(
            16,
            rel_tol=0,
            mistakes={
                1: "the 16 videos go in one batch, but the oracle counts videos, not calls.",
                15: "every frame is removed once, all 16 of them.",
                32: "one query per frame removed: the clean video and the candidate were queried before.",
            },
            explain="one query per removed frame, T = 16, answered in one batch.",
        ),
        reference=16,
        hint="Each frame is removed once, and each resulting video is one query.",
        wrong=(1, 15),
    )
)

register(
    Exercise(
        id="04.2",
        question="With omega = 0, can Algorithm 1 drop a frame? Answer 'yes' or 'no'.",
        checker=choice(
            "yes",
            {
                "no": "a deletion is also accepted when it lowers the MAP, whatever omega: the paper's "
                "Table 2 reports a sparsity of 17.69 % at omega = 0.",
            },
            explain="the rule accepts a deletion when MAP <= omega, or else when the MAP falls; "
            "omega = 0 leaves only the second half.",
        ),
        reference="yes",
        hint="Read the rule's second half: what else makes a deletion stay?",
        wrong=("no",),
    )
)

register(
    Exercise(
        id="04.3",
        question="Algorithm 1 kept 4 of 16 frames, each with every pixel. What is the sparsity S "
        "(a fraction between 0 and 1)?",
        checker=number(
            0.75,
            rel_tol=1e-6,
            mistakes={
                0.25: "that is the share of frames kept; S counts what may NOT change: 1 - 4/16.",
                75: "S is a fraction here (0.75); 75 is the same in percent.",
            },
            explain="S = 1 - (1/T) sum_t phi_t = 1 - (4 x 1 + 12 x 0) / 16 = 0.75.",
        ),
        reference=0.75,
        hint="phi_t is 1 for a kept frame and 0 for a dropped one.",
        wrong=(0.25,),
    )
)
