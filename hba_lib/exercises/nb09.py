"""Exercises of notebook 09 (a real model on real clips: MoViNet-A0 on real action videos)."""

from __future__ import annotations

from hba_lib.exercises import Exercise, number, register, word

register(
    Exercise(
        id="09.1",
        question="MoViNet-A0-Stream reads a clip one frame at a time, one interpreter call a frame. "
        "How many interpreter calls does the frame importance of Algorithm 1 cost on one "
        "16-frame clip?",
        checker=number(
            256,
            rel_tol=0,
            mistakes={
                16: "16 is the number of queries (one clip per frame left out); each query is a whole "
                "16-frame clip, which the stream model reads frame by frame.",
                1: "the T clips go in one batch, one request; the model still reads each of them "
                "frame by frame.",
                15: "one query per frame t of the clip: 16 queries, each of 16 frames.",
            },
            explain="16 queries (one per frame left out) x 16 frames each = 256 interpreter calls: "
            "on a stream model a query costs T calls, whatever the batch.",
        ),
        reference=256,
        hint="Count the queries first, then what one query costs a model that reads frame by frame.",
        wrong=(16, 1),
    )
)

register(
    Exercise(
        id="09.2",
        question="The attack holds 16 frames of 112 x 112 RGB pixels; the model resizes them to "
        "172 x 172 inside. How many values does plain Opt-attack (phi = 1, no key frames) "
        "search over for one clip?",
        checker=number(
            3 * 16 * 112 * 112,
            rel_tol=0,
            mistakes={
                3
                * 16
                * 172
                * 172: "the resizing happens inside the black box: the attack only ever "
                "changes the 112 x 112 clip it holds.",
                16
                * 112
                * 112: "each pixel has three colour values, and the attack may change each.",
                3 * 112 * 112: "the perturbation covers all 16 frames, not one.",
            },
            explain="3 x 16 x 112 x 112 = 602,112 values: the video the attacker holds, whatever "
            "the model does to it inside.",
        ),
        reference=3 * 16 * 112 * 112,
        hint="What does the attacker hold and change: the clip it passes in, or what the model makes "
        "of it?",
        wrong=(3 * 16 * 172 * 172, 16 * 112 * 112),
    )
)

register(
    Exercise(
        id="09.3",
        question="A clip shows yoga, but MoViNet answers 'contorting'. An untargeted attack on it "
        "succeeds when the model stops answering which class?",
        checker=word(
            ["contorting"],
            mistakes={
                "yoga": "the model never said yoga: its clean answer, the one the attack has to "
                "change, is 'contorting' (the clip set labels each clip by the model's own "
                "prediction).",
            },
            explain="its clean prediction, 'contorting': a black-box attack changes what the model "
            "says (get_dataset('clips', model=...) labels each clip that way).",
        ),
        reference="contorting",
        hint="What does the attack have to change: the truth, or the model's answer?",
        wrong=("yoga",),
    )
)

register(
    Exercise(
        id="09.4",
        question="A query costs about 0.08 s on one core (a 16-frame pass of the stream model). "
        "About how many minutes does a 10,000-query attack on one clip take on one core?",
        checker=number(
            10_000 * 0.08 / 60,
            rel_tol=0.05,
            mistakes={
                800: "that is seconds: 800 s is about 13 minutes.",
                0.8: "10,000 x 0.08 s = 800 s, not 0.8 minutes.",
            },
            explain="10,000 x 0.08 s = 800 s, about 13 minutes: paper-scale budgets (10^4-10^5 "
            "queries) on a real model need many cores or a GPU-served model.",
        ),
        reference=10_000 * 0.08 / 60,
        hint="queries x seconds per query, then divide by 60.",
        wrong=(800, 0.8),
    )
)
