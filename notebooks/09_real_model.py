# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · A real model on real clips
#
# Notebooks 01-08 attack this project's own small models on its own 32 x 32 synthetic clips.
# The obvious question is whether any of it holds on a real video classifier and real video.
# Here the target is **MoViNet-A0-Stream** (Kondratyuk et al., CVPR 2021): trained on
# Kinetics-600 (600 action classes), released by Google as an int8 TFLite file for phones, and
# run by the LiteRT runtime. It is a **streaming** model: it reads one frame at a time, carries
# its state from frame to frame, and the logits after the last frame are the clip's. To the
# attack it is a black box like any other (`build_model("movinet_a0")`: `[B, 3, T, H, W]` in
# [0, 1] in, 600 logits out), and it has no gradients at all. The clips are real action videos
# (UCF-101, Kinetics, NTU and other public clips), decoded as the data sets are: 16 frames
# sampled uniformly, centre-cropped.
#
# ## What you will learn
# - what a released video classifier says about real clips (its top-5), and that labels for an
#   attack come from what the model says, not from the truth;
# - where the spectral-residual saliency and the phi masks fall on real frames;
# - which frames a causal, streaming model needs: Algorithm 1's frame importance on a real clip
#   (one batch of T queries through the counting oracle);
# - the paper's three configurations on real clips at a small budget, the paper's Figure 2 on
#   real frames (with the model's answer before and after), and MAP, MAP\*, S and L2.
#
# **Time to run:** about 4 minutes on 2 CPU cores at the defaults (2 clips, 3 configurations,
# 300 queries each: 4 min 8 s measured while two other jobs shared the cores, less on free
# cores); each query is a 16-frame pass of the stream model (about 0.08 s on one core). At
# paper scale (`params/09_real_model_full.yaml`: 8 clips, 5,000 queries) a few hours on a CPU.
# It needs the model, the LiteRT runtime and a folder of real clips, not earlier notebooks:
# without them it says what is missing and how to get it, and skips the rest.

# %% tags=["parameters"]
clips_root = ""  # a folder of real videos ("": ../shared/real_data/action_clips beside the repository)
model_path = ""  # MoViNet-A0 .tflite file or folder ("": $HBA_MOVINET, ../shared/models, .cache/models)
size = 112  # frames are decoded to size x size (the model resizes them to 172 inside)
top = 5  # classes listed per clip
attack_clips = ["dunking_basketball_pexels.mp4", "hitting_baseball.mp4"]  # file names ([]: the n_clips the model is surest of)
n_clips = 2  # clips to attack when attack_clips is empty
num_candidates = 2  # clips of other classes tried as starting points (the paper: 10)
query_budget = 300  # per clip and configuration
configs = ["opt", "temporal", "temporal+spatial"]  # the paper's three configurations
optimizer = "opt"  # hba_lib.attacks.OPTIMIZERS ("sign-opt" needs budgets well over its 200 probes)
phis = [0.2, 0.6]  # salient area ratios drawn (the paper: 0.6 untargeted)
frames = [0, 5, 10, 15]  # frames drawn with their saliency
strip_frames = [0, 2, 4, 6, 8, 10, 12, 14]  # frames drawn in the Figure 2 strips
seed = 0
workers = 2  # interpreters (threads) answering a batch of clips
threads = 1

# %%
import pandas as pd
import torch

from hba_lib import exercises, metrics, paths, viz
from hba_lib.attacks import attack_set, drive, make_attack
from hba_lib.data import get_dataset
from hba_lib.data.clips import missing_clips
from hba_lib.heuristics.key_frames import frame_importance
from hba_lib.heuristics.saliency import saliency_maps, saliency_mask
from hba_lib.models import build_model, movinet, top_k
from hba_lib.oracle import Oracle
from hba_lib.oracle.goals import make_goal
from hba_lib.paths import resolve

torch.set_num_threads(threads)
clips_dir = resolve(clips_root) if clips_root else paths.REAL_DATA / "action_clips"
needs = movinet.missing(model_path or None)
if (clip_need := missing_clips(clips_dir)) is not None:
    needs.append(clip_need)
available = not needs
if available:
    model = build_model("movinet_a0", path=model_path or None, workers=workers)
    data = get_dataset("clips", root=clips_dir, model=model, size=size)
    print(f"MoViNet-A0-Stream ({model.path}): {len(model.classes)} classes; "
          f"{len(data)} clips from {clips_dir}, each {tuple(data.videos.shape[1:])} (T, H, W, C)")  # fmt: skip
else:
    print("This notebook needs the following; without it, every cell below skips its work:\n"
          + "\n".join(f"- {need}" for need in needs))  # fmt: skip

# %% [markdown]
# ## The clips, and what the model says about them
#
# One frame of each clip (the middle one), and below it the model's **top-1** class and its
# softmax probability. The model has never seen these clips; some come from its own training
# distribution (Kinetics), others from other data sets, where its 600 classes may not hold the
# true action at all. The table lists the top 5 of each clip.

# %%
if available:
    xs_all = torch.stack([data[i][0] for i in range(len(data))])
    probs, classes = top_k(model, xs_all, k=top)

    def said(i: int, j: int = 0) -> str:
        """The model's j-th answer for clip i, with its probability."""
        return f"{model.classes[int(classes[i, j])]} ({float(probs[i, j]):.2f})"

    viz.show(viz.clip_grid(xs_all, [f"{n}\n{said(i)}" for i, n in enumerate(data.names)],
                           title=f"{len(data)} real clips and MoViNet-A0's top-1"),  # fmt: skip
             "09_clips")
    top_table = pd.DataFrame([[said(i, j) for j in range(top)] for i in range(len(data))],
                             index=data.names, columns=[f"top-{j + 1}" for j in range(top)])  # fmt: skip
else:
    top_table = None
top_table

# %% [markdown]
# For an attack, what counts is not the true action but what the model says: the clip set
# labels each clip with the model's own top-1 (`get_dataset("clips", model=...)`), and an
# untargeted attack succeeds when the model stops saying it. A clip the model already gets
# "wrong" is attacked the same way. The attack set below takes the clips named in
# `attack_clips` (or the `n_clips` the model is most sure of), and as starting points
# `num_candidates` clips the model puts in other classes.

# %%
if available:
    names = attack_clips or [data.names[i] for i in data.surest(n_clips)]
    unknown = [n for n in names if n not in data.names]
    if unknown:
        raise ValueError(f"attack_clips {unknown} are not in {clips_dir}: choose among {data.names}")
    chosen = attack_set(data, model, len(names), num_candidates, seed=seed,
                        indices=[data.names.index(n) for n in names])  # fmt: skip
    for i, y in zip(chosen.indices, chosen.labels):
        print(f"attack {data.names[i]}: the model says {model.classes[y]} "
              f"(p = {data.confidences[i]:.2f})")  # fmt: skip

# %% [markdown]
# ## Saliency on real frames
#
# The spatial heuristic of notebook 05: the spectral residual of each frame (bright: salient)
# and the mask that keeps the most salient share **phi** of each frame's pixels. On the
# synthetic clips the salient region was the one moving object; on real frames look at where
# it falls: on the people and the ball, or on edges and text in the background. The mask is
# computed from the clean clip: no query.

# %%
if available:
    x, y = chosen.xs[0], chosen.labels[0]
    sal = saliency_maps(x)
    masks = {phi: saliency_mask(x, phi) for phi in phis}
    viz.show(viz.saliency_panels(x, sal, masks, frames, f"{data.names[chosen.indices[0]]}: "
                                 "spectral-residual saliency and phi masks"),  # fmt: skip
             "09_saliency_masks")

# %% [markdown]
# ## Which frames does a streaming model need?
#
# A 3D CNN sees all 16 frames at once. MoViNet-Stream reads them in order and answers after
# the last one, from a state it has carried through the clip: does it weigh the late frames
# more, or does every frame count? Algorithm 1 (notebook 04) asks the same question of the
# black box. Start from a candidate clip `x_hat` that the model puts in another class: the
# perturbation `p = x_hat - x` is adversarial by construction. Then restore one frame at a
# time, querying
#
# $$x + p \odot M_t, \qquad M_t = 1 \text{ everywhere except on frame } t ,$$
#
# where `M_t` is the mask that leaves frame `t` clean. If the answer is still adversarial, its
# top-1 probability says how little the model needed frame `t` of `x_hat`; a missing bar means
# that restoring frame `t` alone gives the clean class back. One batch of T = 16 queries, each a
# full 16-frame pass, counted by the oracle.

# %%
if available:
    oracle = Oracle(model)
    goal = make_goal(y)
    x_hat = chosen.candidates[0][0]
    imp, order = drive(frame_importance(x, x_hat - x, goal), oracle)
    print(f"queries: {oracle.counts['init']} (phase init), one request of {x.shape[1]} clips; "
          f"deletion order: {order}")  # fmt: skip
    viz.show(viz.frame_importance(imp, order, f"{data.names[chosen.indices[0]]} "
                                  f"({model.classes[y]}): frame importance, untargeted"),  # fmt: skip
             "09_frame_importance")

# %% [markdown]
# Read the bars from left to right: a tall bar at frame `t` means the candidate's
# perturbation stays adversarial, and confident, with frame `t` clean, so frame `t` is among
# the first Algorithm 1 tries to drop (the numbers give the order). Whether the tall bars sit
# early or late in the clip is what the stream's memory does with this clip; it changes from
# clip to clip and candidate to candidate.
#
# ## The three configurations at a small budget
#
# `make_attack(config, optimizer=...)` builds Algorithm 2 with the paper's untargeted
# defaults (omega 3, phi 0.6), and `run_many` attacks the clips in lockstep, one oracle fork
# and `query_budget` queries per clip, every query counted by phase (init: candidates, frame
# importance, key-frame searches; optimisation; check). A budget of a few hundred queries is
# all a CPU affords here; the paper spends 10^4 to 10^5.

# %%
results = {}
if available:
    for config in configs:
        attack = make_attack(config, optimizer=optimizer, query_budget=query_budget, seed=seed)
        results[attack.name] = attack.run_many(Oracle(model), chosen.xs, chosen.labels,
                                               candidates=chosen.candidates)  # fmt: skip
        print(f"{attack.name:<28} " + " | ".join(r.summary() for r in results[attack.name][:1]))

# %% [markdown]
# ## MAP, MAP*, S and L2
#
# As in notebook 06: **FR**, the share of clips whose returned video the oracle found
# adversarial; **MQ**, the median queries (here the budget); **MAP**, the mean absolute
# perturbation over the whole video (0-255); **MAP\***, the same mean over the mask only; **S**,
# the share of the video the attack may not touch,
#
# $$S = 1 - \frac{1}{T}\sum_{t=1}^{T} \phi_t ,$$
#
# with `phi_t` the share of frame t's pixels in the final mask; and **L2**, the Euclidean norm
# of the perturbation in [0, 1] units (what HopSkipJump and Sign-OPT minimise), with
# **L-inf**, its largest pixel change (0-255).

# %%
if available:
    print(f"MoViNet-A0, {len(chosen.indices)} real clips, untargeted, optimizer {optimizer}, "
          f"budget {query_budget} queries a clip, {num_candidates} candidates, seed {seed}")  # fmt: skip
    table = metrics.results_table(results)
    table = table[["videos", "FR %", "MQ", "MQ init", "MQ opt", "MAP", "MAP*", "S %", "L2",
                   "Linf"]].round(2)  # fmt: skip
else:
    table = None
table

# %% [markdown]
# With the same queries, compare the MAP and L2 of the three rows: the heuristics spend most of
# the budget on initialisation (the key-frame search) and leave the optimizer little, yet what
# they find is concentrated on fewer frames (S) and, with saliency, fewer pixels. When a
# key-frame search keeps every frame, the temporal rows start where `opt` starts.
#
# ## The paper's Figure 2 on real frames
#
# The clean frames, the perturbation the last configuration found (amplified; grey is zero)
# and the adversarial frames, with what the model answers for each: before, from the clean
# clip; after, from the returned video itself, by a direct call to the model (a check by the
# experimenter, outside the attack's budget; the attack's own counted check agrees, as its
# `success` says).

# %%
if available:
    best = results[list(results)[-1]][0]
    p_adv, c_adv = top_k(model, best.x_adv[None], k=1)
    before = said(chosen.indices[0])
    after = f"{model.classes[int(c_adv[0, 0])]} ({float(p_adv[0, 0]):.2f})"
    print(f"{list(results)[-1]}: before {before}, after {after}; attack's check: "
          f"{'adversarial' if best.success else 'not adversarial'}; MAP {best.map:.2f}, "
          f"S {100 * best.sparsity:.0f} %")  # fmt: skip
    viz.show(viz.adversarial_strip(x, best.x_adv, strip_frames, before, after,
                                   f"{data.names[chosen.indices[0]]}: {list(results)[-1]}, "
                                   f"{best.queries} queries"),  # fmt: skip
             "09_figure2")
    strips = {name: rs[0] for name, rs in results.items()}
    viz.show(viz.perturbation_strips(x, strips, strip_frames, f"{data.names[chosen.indices[0]]}: the "
                                     f"perturbation of each configuration ({optimizer})"),  # fmt: skip
             "09_perturbation_strips")

# %% [markdown]
# In the second picture each row is one configuration's perturbation on the same clip, with one
# gain for all rows: `opt` spreads it over every pixel of every frame, `temporal` leaves the
# frames Algorithm 1 dropped grey, and `temporal+spatial` keeps it on the salient pixels of the
# key frames. `benchmarks/heuristic_attack.py` and [docs/peers.md](../docs/peers.md) hold the
# comparison at equal budgets with the ART peers.
#
# ## Summary
# - A released, query-only video classifier (MoViNet-A0-Stream, int8 TFLite) is one more
#   model behind `build_model`; the oracle counts its queries like any other, and each query
#   is a 16-frame pass of a streaming network.
# - For an attack, a clip's label is the model's own answer, right or wrong; the attack
#   succeeds when that answer changes.
# - Saliency and key frames need nothing new on real video: the mask comes from the clean
#   frames (no query), frame importance from one batch of T queries.
# - At a budget of a few hundred queries the key-frame search takes most of the queries, and
#   what it finds is sparse; compare MAP and L2 at equal queries, and expect paper-scale
#   budgets to need hours on a CPU.
#
# ## Exercises

# %% [markdown]
# **09.1** MoViNet-A0-Stream reads a clip one frame at a time, one interpreter call a frame.
# How many interpreter calls does the frame importance of Algorithm 1 cost on one 16-frame
# clip?

# %%
answer = None
exercises.check("09.1", answer)

# %% [markdown]
# **09.2** The attack holds 16 frames of 112 x 112 RGB pixels; the model resizes them to
# 172 x 172 inside. How many values does plain Opt-attack (phi = 1, no key frames) search
# over for one clip?

# %%
answer = None
exercises.check("09.2", answer)

# %% [markdown]
# **09.3** A clip shows yoga, but MoViNet answers 'contorting'. An untargeted attack on it
# succeeds when the model stops answering which class?

# %%
answer = None
exercises.check("09.3", answer)

# %% [markdown]
# **09.4** A query costs about 0.08 s on one core (a 16-frame pass of the stream model). About
# how many minutes does a 10,000-query attack on one clip take on one core?

# %%
answer = None
exercises.check("09.4", answer)
