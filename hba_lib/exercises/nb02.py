"""Exercises of notebook 02 (the target models and Table 1)."""

from __future__ import annotations

import math

from hba_lib.exercises import Exercise, choice, number, register

register(
    Exercise(
        id="02.1",
        question="What accuracy, in %, does guessing give on the 12 balanced synthetic classes?",
        checker=number(
            100 / 12,
            abs_tol=0.05,
            mistakes={
                1 / 12: "that is a fraction; the question asks for a percentage.",
                12: "12 is the number of classes; a guess is right once in 12.",
                50: "right or wrong are not equally likely: there are 12 classes.",
            },
            explain="100 / 12 = 8.3 %: the dotted line of Table 1.",
        ),
        reference=8.33,
        hint="One class in how many is right by luck, when every class has the same number of clips?",
        wrong=(0.0833, 12),
    )
)

register(
    Exercise(
        id="02.2",
        question="On UCF-101 single frames say a lot (a pool means swimming). A model that looks at one "
        "frame only scores 60 % on clips in order. With each clip's frames shuffled in time it "
        "scores: (a) about 60 %, (b) about chance, (c) 0 %?",
        checker=choice(
            "a",
            {
                "b": "chance is what a model reading only the order of frames would drop to; this one never "
                "used the order.",
                "c": "shuffling keeps every frame, so whatever the frame shows is still there.",
            },
            explain="shuffling puts another frame of the same clip in its place, and the model never used "
            "the order: its accuracy stays. A drop under shuffling is the sign that a model reads "
            "motion; that is what the control measures.",
        ),
        reference="a",
        hint="What changes in the frame the model looks at when the frames are put in random order?",
        wrong=("b", "c"),
    )
)

register(
    Exercise(
        id="02.3",
        question="Before any training, a model that gives every one of the 12 classes the same "
        "probability has what cross-entropy loss (natural log)?",
        checker=number(
            math.log(12),
            rel_tol=0.005,
            mistakes={
                math.log2(
                    12
                ): "that is log base 2 (bits); PyTorch's cross-entropy uses the natural log.",
                math.log10(
                    12
                ): "that is log base 10; PyTorch's cross-entropy uses the natural log.",
                1 / 12: "that is the probability of the right class; the loss is minus its log.",
            },
            explain="-ln(1/12) = ln 12 = 2.48: where the training-loss curves start.",
        ),
        reference=math.log(12),
        hint="Cross-entropy is -ln(probability given to the true class).",
        wrong=(math.log2(12), 1 / 12),
    )
)
