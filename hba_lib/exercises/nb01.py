"""Exercises of notebook 01 (data and 16-frame snippets)."""

from __future__ import annotations

from typing import Any

import numpy as np

from hba_lib.data.video_io import uniform_indices
from hba_lib.exercises import Exercise, number, register, word

register(
    Exercise(
        id="01.1",
        question="How many numbers does one paper-scale snippet hold (16 frames of 112 x 112 RGB pixels)?",
        checker=number(
            16 * 112 * 112 * 3,
            rel_tol=0,
            mistakes={
                16
                * 112
                * 112: "that counts pixels, not numbers: each pixel has 3 colour channels.",
                112 * 112 * 3: "that is one frame; a snippet has T = 16 of them.",
                112
                * 112: "that is one frame of one channel; multiply by T = 16 frames and C = 3 channels.",
            },
            explain="T x H x W x C = 16 x 112 x 112 x 3 = 602,112: the space an attack searches per video.",
        ),
        reference=602_112,
        hint="Multiply the four sizes of the array [T, H, W, C].",
        wrong=(200_704, 37_632),
    )
)


def _sampling(answer: Any) -> tuple[bool, str]:
    want = uniform_indices(40, 16).tolist()
    got = [int(v) for v in np.asarray(answer).ravel()]
    if got == want:
        return True, (
            "the middle frame of each of 16 equal segments of 40 frames: "
            "floor((2i + 1) * 40 / 32) for i = 0..15."
        )
    if len(got) != 16:
        return False, f"a snippet has 16 frames; your list has {len(got)}."
    if got == list(range(16)):
        return (
            False,
            "those are the first 16 frames: they cover only the clip's start, not the whole clip.",
        )
    if got[0] == 0 and got[-1] == 39:
        return False, (
            "spreading from the first to the last frame is close, but the project takes the "
            "middle frame of each of 16 equal segments, so neither end is taken."
        )
    return False, "not the indices video_io takes."


register(
    Exercise(
        id="01.2",
        question="A clip has 40 decoded frames. Which 16 frame indices (0-based) does uniform sampling take?",
        checker=_sampling,
        reference=uniform_indices(40, 16).tolist(),
        hint="Cut the 40 frames into 16 equal segments of 2.5 frames and take each segment's middle frame "
        "(rounded down); or read hba_lib.data.video_io.uniform_indices.",
        wrong=(list(range(16)), np.linspace(0, 39, 16).round().astype(int).tolist()),
    )
)

register(
    Exercise(
        id="01.3",
        question="Play a synthetic `move_right` clip backwards in time (`clip[::-1]`). "
        "Which class of the synthetic data set does it show?",
        checker=word(
            ["move_left"],
            mistakes={
                "move_right": "reversed in time the object travels from right to left: the motion, "
                "and so the class, is reversed.",
                "move_up": "the direction is reversed, not rotated.",
            },
            explain="every frame is the same, only their order changed, and order is all that tells "
            "move_right from move_left: the label lives in time.",
        ),
        reference="move_left",
        hint="Every frame is unchanged; only the direction of motion flips. Class names are in "
        "hba_lib.data.synthetic.CLASSES.",
        wrong=("move_right",),
    )
)
