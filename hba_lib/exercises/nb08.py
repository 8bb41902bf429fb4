"""Exercises of notebook 08 (Table 6, success-rate curves, the paper's Figure 2)."""

from __future__ import annotations

from hba_lib.exercises import Exercise, choice, number, register, word

register(
    Exercise(
        id="08.1",
        question="In the paper's Table 6, C3D on UCF-101 untargeted: Opt-attack MQ 17,997.5, "
        "+Temporal+Spatial MQ 12,940.0. By what share did the heuristics cut the median "
        "queries? (a fraction)",
        checker=number(
            1 - 12940.0 / 17997.5,
            abs_tol=0.006,
            mistakes={
                0.72: "that is the ratio of the two MQ (docs/algorithm.md's 'ratio'): the cut is 1 "
                "minus it.",
                0.39: "that is the increase relative to the smaller MQ; the cut is relative to "
                "Opt-attack's.",
            },
            explain="1 - 12940.0 / 17997.5 = 0.28: 'more than 28 %', as the paper says.",
        ),
        reference=round(1 - 12940.0 / 17997.5, 2),
        hint="cut = (MQ_opt - MQ_heuristic) / MQ_opt.",
        wrong=(0.72, 0.39),
    )
)

register(
    Exercise(
        id="08.2",
        question="Two attacks on the same 10 videos and budget: A fools 10 videos, with MAP between "
        "5 and 9; B fools 8, all with MAP under 2. At a MAP bound of 4, which one's "
        "success-rate curve ends higher? Answer 'A' or 'B'.",
        checker=word(
            ["b"],
            mistakes={
                "a": "A fools more videos (FR 100 %), but none within MAP 4: its curve at that bound "
                "stays at 0.",
            },
            explain="At MAP <= 4, A counts 0 of 10 and B 8 of 10: the curve weighs the fooled videos "
            "by how small their perturbation is, which FR alone does not.",
        ),
        reference="B",
        hint="A video counts only when its MAP is under the bound.",
        wrong=("A",),
    )
)

register(
    Exercise(
        id="08.3",
        question="The paper's targeted rows: C3D UCF-101 Opt-attack MQ 207,944.5, +Temporal "
        "313,229.0. Why can adding key frames raise the queries of a targeted attack? (a) "
        "the key-frame search costs queries and the sparser start needs more optimisation "
        "to reach the target class; (b) key frames make the video larger; (c) the targeted "
        "attack does not use key frames.",
        checker=choice(
            "a",
            {
                "b": "the video keeps its shape; the mask only restricts which values may change.",
                "c": "it does, with omega = 30 (docs/algorithm.md); that is what the +Temporal row "
                "measures.",
            },
            explain="Algorithm 1 queries for frame importance and for every tentative deletion; the "
            "paper reports 39.75 % of the targeted queries spent there.",
        ),
        reference="a",
        hint="Which queries does Algorithm 1 add, and in which phase are they counted?",
        wrong=("b", "c"),
    )
)
