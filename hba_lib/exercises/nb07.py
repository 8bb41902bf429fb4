"""Exercises of notebook 07 (the omega / phi grid search, the paper's Tables 2-5)."""

from __future__ import annotations

from hba_lib.exercises import Exercise, choice, number, register

register(
    Exercise(
        id="07.1",
        question="Table 2 reports S = 83.75 % at omega = inf on 16-frame videos with phi = 1. About "
        "how many frames did Algorithm 1 keep per video, on average? (to one decimal)",
        checker=number(
            2.6,
            abs_tol=0.05,
            mistakes={
                13.4: "that is the number of frames dropped: S counts what the attack may not touch.",
                0.16: "S is a share of the video; turn the kept share (1 - S) into frames: x 16.",
            },
            explain="With phi = 1 a kept frame counts 1 and a dropped one 0: kept = 16 x (1 - 0.8375) "
            "= 2.6 frames (the paper says the same).",
        ),
        reference=2.6,
        hint="S = 1 - (1/T) sum_t phi_t with phi_t = 1 on a kept frame and 0 on a dropped one.",
        wrong=(13.4, 0.16),
    )
)

register(
    Exercise(
        id="07.2",
        question="A sweep is interrupted after 40 of its 60 jobs. You run run_sweep again with the "
        "same sweep and store. How many jobs does it run?",
        checker=number(
            20,
            abs_tol=0,
            mistakes={
                60: "finished jobs are committed to the store under their key and skipped on a rerun.",
                40: "the 40 are the finished ones, which the store already holds.",
            },
            explain="Only the 20 jobs without a finished row run; the report says '40 already done'. "
            "(A job that was running when the process died has no finished row: it reruns.)",
        ),
        reference=20,
        hint="What does the store hold for a job that finished?",
        wrong=(60, 40),
    )
)

register(
    Exercise(
        id="07.3",
        question="In Table 3, phi falls from 1.0 to 0.2 and MAP* rises from 3.97 to 8.72 while MAP "
        "falls from 3.69 to 1.59. Which explains both? (a) the attack gets worse at small "
        "phi; (b) the perturbation is concentrated on fewer pixels: larger on each (MAP*), "
        "smaller averaged over the whole video (MAP); (c) MAP* counts the dropped frames.",
        checker=choice(
            "b",
            {
                "a": "a worse attack would raise MAP too; here the whole video's MAP falls.",
                "c": "MAP* is the mean over the masked region only: dropped frames are outside it.",
            },
            explain="MAP = MAP* x (share of the video in the mask): fewer pixels, each moved more, "
            "can still add up to less.",
        ),
        reference="b",
        hint="Write MAP in terms of MAP* and the share of the video the mask covers.",
        wrong=("a", "c"),
    )
)
