"""Exercises of notebook 05 (spatial sparsity: spectral-residual saliency masks)."""

from __future__ import annotations

from hba_lib.exercises import Exercise, number, register

register(
    Exercise(
        id="05.1",
        question="With phi = 0.6, how many pixels of a 32 x 32 frame may the attack change?",
        checker=number(
            614,
            rel_tol=0,
            mistakes={
                1843: "that counts values over three channels; the mask is the same 2-D mask on every "
                "channel: count pixels.",
                410: "that is the share left out (0.4); phi is the share kept.",
                615: "round(0.6 x 1024) = round(614.4) = 614.",
            },
            explain="round(phi x H x W) = round(0.6 x 1024) = 614 pixels, in all three channels.",
        ),
        reference=614,
        hint="phi is the share of each frame's pixels kept.",
        wrong=(1843, 410),
    )
)

register(
    Exercise(
        id="05.2",
        question="How many queries does computing the saliency masks of one 16-frame video cost?",
        checker=number(
            0,
            rel_tol=0,
            mistakes={
                16: "saliency is computed on the clean video, which the attacker holds: the model is "
                "never asked.",
                1: "no query at all: the model is never asked.",
            },
            explain="zero: saliency is a function of the clean frames alone.",
        ),
        reference=0,
        hint="Does the saliency map need the model's answer?",
        wrong=(16, 1),
    )
)

register(
    Exercise(
        id="05.3",
        question="With the saliency mask alone (phi = 0.6, no key-frame search), what is the sparsity "
        "S (a fraction)?",
        checker=number(
            0.4,
            rel_tol=1e-6,
            mistakes={
                0.6: "phi_t = 0.6 is the share each frame may change; S is one minus its mean.",
                40: "S is a fraction here; 40 is the same in percent.",
            },
            explain="S = 1 - (1/T) sum_t phi_t = 1 - 0.6 = 0.4.",
        ),
        reference=0.4,
        hint="S = 1 - mean over frames of the share of pixels in the mask.",
        wrong=(0.6,),
    )
)
