"""Exercises of notebook 06 (the full attack: Algorithm 2, configurations, optimizers)."""

from __future__ import annotations

from hba_lib.exercises import Exercise, choice, number, register

register(
    Exercise(
        id="06.1",
        question="Which of the three configurations leaves the attack the fewest pixels to change "
        "(the highest S)? Answer with its name.",
        checker=choice(
            "temporal+spatial",
            {
                "opt": "plain Opt-attack may change every pixel: S = 0.",
                "temporal": "key frames alone keep every pixel of a key frame; the saliency mask narrows "
                "them further.",
            },
            explain="temporal+spatial keeps only salient pixels of key frames: both heuristics shrink "
            "the mask.",
        ),
        reference="temporal+spatial",
        hint="Each heuristic can only remove pixels from the mask.",
        wrong=("opt", "temporal"),
    )
)

register(
    Exercise(
        id="06.2",
        question="Attack A stops after 700 queries at MAP 5.3; attack B spends its whole budget of "
        "10,000 and ends at MAP 0.1. Which comparison is fair? (a) A is better, it needed "
        "fewer queries; (b) compare the MAP each reached within the same number of queries; "
        "(c) B is better, its MAP is lower.",
        checker=choice(
            "b",
            {
                "a": "A's stopping rule ended it, not a small perturbation: a stopping rule can make a "
                "weak attack look cheap.",
                "c": "B spent 14 times the queries; at 700 queries it may have been worse than A.",
            },
            explain="MAP against queries, at equal budgets, is the fair measure; each attack's trace "
            "gives it.",
        ),
        reference="b",
        hint="What would each attack have reached with the other's number of queries?",
        wrong=("a", "c"),
    )
)

register(
    Exercise(
        id="06.3",
        question="A video has 16 frames of 32 x 32 pixels. Algorithm 2 keeps 2 key frames with "
        "phi = 0.6 of their pixels. What is the sparsity S (a fraction)?",
        checker=number(
            1 - 2 * 614 / 1024 / 16,
            rel_tol=1e-3,
            mistakes={
                0.875: "that counts whole key frames; on each, only 60 % of the pixels are in the mask.",
                0.4: "that is the saliency mask alone; the dropped frames add to S.",
            },
            explain="phi_t = 614 / 1024 on the 2 key frames and 0 elsewhere: "
            "S = 1 - 2 x 0.5996 / 16 = 0.925.",
        ),
        reference=1 - 2 * 614 / 1024 / 16,
        hint="S = 1 - (1/T) sum_t phi_t, phi_t = 0 for a dropped frame.",
        wrong=(0.875, 0.4),
    )
)
