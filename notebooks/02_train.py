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

# %%

# %% [markdown]
# # 02 · Target models: C3D and LRCN, trained by the project
#
# The paper attacks two video classifiers:
# - **"C3D"**: in the authors' code a **3D-ResNeXt-101** (Hara et al., CVPR 2018) that sees a
#   16 x 112 x 112 snippet as one 3-D volume. (ResNeXt: residual blocks whose middle
#   convolution is split into 32 parallel groups, the *cardinality*; "shortcut B": where a
#   block changes the number of channels, its skip connection is a 1 x 1 x 1 convolution,
#   elsewhere the identity.)
# - **LRCN** (Donahue et al., 2015): an **Inception-v3** reads every frame on its own, an
#   **LSTM** reads the 16 frame features in order, and the logits are averaged over time.
#
# ## What you will learn
# - that every model in `hba_lib.models` has one interface: a float batch `[B, C, T, H, W]` in
#   `[0, 1]` in, `[B, K]` logits out, normalisation inside (an attack never sees a mean or std);
# - how a model is trained here (seeded, checkpointed every epoch, resumable) and what its
#   loss measures;
# - **Table 1** (clip accuracy on each test split) and the **shuffled-frame control**, which
#   shows whether a model reads motion or only appearance.
#
# **Time to run:** about 2-3 minutes on 2 CPU cores at the defaults (2 epochs of the small C3D;
# Table 1 from the committed checkpoints). At paper scale (`params/02_train_full.yaml`) hours,
# on a GPU. **Needs:** nothing (the data set is generated when missing).
#
# On a CPU the attacks make about 10^4 queries per video, so the project also ships **small**
# C3D and LRCN variants, trained on the synthetic data set and committed as the **embedded
# default checkpoints** that the attack notebooks query. Terms in bold are defined in
# [`docs/glossary.md`](../docs/glossary.md).

# %% tags=["parameters"]
size = 32  # frame size (112 at paper scale)
train_models = ["c3d_small"]  # trained here, on each of train_datasets
train_datasets = ["synthetic"]  # "synthetic" | "ucf101" | "hmdb51" (real ones when present)
epochs = 2  # a short demonstration run; the committed checkpoints trained for longer
batch_size = 32
lr = 0.003
seed = 0
resume = True  # continue runs/<model>_<dataset>_<size>px_seed<seed>/last.pt if present
max_minutes = 0.0  # 0 = no time limit per run
table_from_defaults = True  # Table 1 rows from the committed checkpoints (else: runs above)
table_datasets = ["synthetic"]
threads = 2

# %%
import math

import torch

from hba_lib import exercises, viz
from hba_lib.data import get_dataset
from hba_lib.models import (
    MODEL_NAMES,
    build_model,
    count_parameters,
    default_checkpoint_info,
    load_default_model,
)
from hba_lib.models.train import predict, save_table1, table1, train

torch.set_num_threads(threads)
torch.manual_seed(seed)
device = "cuda" if torch.cuda.is_available() else "cpu"
print("device:", device)

# %% [markdown]
# ## 1 · One interface for every model
# The paper-scale models and torchvision's video ResNets sit behind the same call. Their sizes
# (for 12 classes):

# %%
for name in MODEL_NAMES:
    m = build_model(name, 12)
    print(f"{name:12s} {count_parameters(m) / 1e6:7.2f} M parameters  ({type(m.net).__name__})")
    del m

# %% [markdown]
# One synthetic test video through the small C3D: `[1, 3, 16, H, W]` in `[0, 1]` in,
# 12 logits out. A video on the 0-255 scale (or in the wrong layout) is refused loudly.

# %%
test_set = get_dataset("synthetic", "test", size=size, seed=seed)
video, label = test_set[0]
model = build_model("c3d_small", len(test_set.classes)).eval()
with torch.no_grad():
    print("logits shape:", tuple(model(video[None]).shape), "true class:", test_set.classes[label])
try:
    model(video[None] * 255)
except ValueError as err:
    print("0-255 input ->", err)

# %% [markdown]
# ## 2 · Training
# `train(model_name, dataset, ...)` uses the GPU with mixed precision when there is one and the
# CPU otherwise. Every epoch's shuffle, augmentation (a random shift of the whole clip) and
# dropout are drawn from `(seed, epoch)`, and the run is checkpointed after each epoch, so an
# interrupted run resumes to exactly the weights of an uninterrupted one (`tests/test_train.py`
# checks this by interrupting a run). The curves of this run are drawn thick, over the
# recorded runs of the two committed checkpoints.

# %%
runs = {}
for dname in train_datasets:
    for mname in train_models:
        try:
            runs[(mname, dname)] = train(
                mname,
                dname,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                seed=seed,
                size=size,
                resume=resume,
                device=device,
                max_minutes=max_minutes or None,
            )
        except FileNotFoundError as err:  # a real data set that is not on this machine
            print(f"skipping {mname} on {dname}: {err}")

this_run = [f"{m} / {d} (this run)" for m, d in runs]
curves = dict(zip(this_run, (r.history for r in runs.values())))
if table_from_defaults:  # the committed checkpoints' own training runs, as recorded
    for name in ("c3d", "lrcn"):
        curves[f"default {name} (recorded)"] = default_checkpoint_info(name)["history"]
viz.show(viz.plot_history(curves, highlight=this_run), "02_training_curves")

# %% [markdown]
# The left panel is the **training loss**, the mean **cross-entropy** over the training clips
# of an epoch. For a clip `x` of class `y`, with `p(y | x)` the model's softmax probability of
# the true class,
#
# $$\ell(x, y) = -\ln p(y \mid x), \qquad p(k \mid x) = \frac{e^{z_k}}{\sum_j e^{z_j}},$$
#
# where `z` are the model's `K` logits. A model that gives every class the same probability
# scores `ln K` (2.48 for 12 classes); a sure and right model scores 0. The right panel is the
# **clip accuracy**, the share of clips whose top-1 class is right. A couple of epochs only
# start the climb; the committed defaults trained for 30 (C3D) and 40 (LRCN) epochs with the
# commands recorded beside them. The small LRCN also feeds its LSTM the change of the frame
# features between steps: without it, it sat at chance for many epochs, since one frame says
# little about these classes.

# %%
for key, r in runs.items():
    h = r.history[-1]
    print(f"{key}: epoch {h['epoch']}, train loss {h['train_loss']:.3f} (ln 12 = {math.log(12):.3f}), "
          f"test accuracy {h['test_acc']:.3f}")

# %% [markdown]
# ## 3 · Table 1: clip accuracy, and the shuffled-frame control
# The paper's Table 1 reports C3D 85.88 % / 59.57 % and LRCN 64.92 % / 37.42 % on UCF-101 /
# HMDB-51. The control puts each test clip's frames in a random order and measures again.
# Two extremes help to read it: a model that looked only at appearance (what is in the frames)
# would lose nothing, since every frame is still there; a model that read only the order would
# fall to **chance** (8.3 % for 12 balanced classes). By default the rows come from the
# committed checkpoints.

# %%
if table_from_defaults:
    models = {
        "c3d_small (default)": load_default_model("c3d", device),
        "lrcn_small (default)": load_default_model("lrcn", device),
    }
    for name in ("c3d", "lrcn"):
        info = default_checkpoint_info(name)
        print(
            f"{name}: recorded test accuracy {info['test_acc']:.4f}, shuffled "
            f"{info['shuffled_acc']:.4f}; reproduce with\n  {info['command']}"
        )
else:
    models = {f"{m} ({d})": r.model for (m, d), r in runs.items()}

datasets = {}
for dname in table_datasets:
    try:
        datasets[dname] = get_dataset(
            dname, "test", size=size, **({"seed": seed} if dname == "synthetic" else {})
        )
    except FileNotFoundError as err:
        print(f"no {dname} test split here: {err}")

df = table1(models, datasets, seed=seed)
save_table1(df, "table1")
viz.show(viz.plot_table1(df), "02_table1")

# %% [markdown]
# Read the table against the two extremes: shuffling costs each model most of its accuracy,
# so both read motion; what is left above chance is what the *set* of frames tells without
# their order (notebook 01: an object moving right passes through other places than one
# moving up, but the same places as one moving left).

# %%
for _, row in df.iterrows():
    print(f"{row['model']} on {row['dataset']}: {row['accuracy_%']:.1f} % in order, "
          f"{row['shuffled_frames_%']:.1f} % shuffled, chance {row['chance_%']:.1f} %")

# %% [markdown]
# ## 4 · What the control does, on one video
# The same clip in order and with its frames shuffled: every frame is still there, only the
# motion is gone. The default C3D's answer in each case:

# %%
c3d = load_default_model("c3d", device) if table_from_defaults else next(iter(models.values()))
gen = torch.Generator().manual_seed(seed)
perm = torch.randperm(video.shape[1], generator=gen)
shuffled = video[:, perm]
with torch.no_grad():
    probs = torch.softmax(c3d(torch.stack([video, shuffled]).to(device)), 1).cpu()
names = [
    f"{kind}: {test_set.classes[int(p.argmax())]} ({float(p.max()):.2f})"
    for kind, p in zip(["in order", "shuffled"], probs)
]
viz.show(viz.frame_strip([video, shuffled], row_labels=names,
                         title=f"true class: {test_set.classes[label]}"), "02_shuffled_frames")
pred = predict(c3d, test_set)
print(f"this C3D: {(pred == test_set.labels).mean():.4f} of {len(test_set)} synthetic test clips")

# %% [markdown]
# ## Summary
# - Every model takes `float [B, 3, T, H, W]` in `[0, 1]` and returns `[B, K]` logits; it
#   normalises inside, so the attacks only ever see videos.
# - Training minimises the cross-entropy `-ln p(y | x)`; runs are seeded, checkpointed every
#   epoch and resumable. The embedded defaults (`load_default_model("c3d" | "lrcn")`) are the
#   models the attack notebooks query.
# - Table 1 with the shuffled-frame control: both defaults lose most of their accuracy when the
#   frames are shuffled, so they read motion.
#
# Next: notebook 03 attacks the default C3D through a black box.
#
# ## Exercises
# Write your answer in place of `None` and run the cell: `exercises.check` says whether it is
# right, and why. `exercises.hint("02.1")` gives a hint.
#
# **02.1** What accuracy, in %, does guessing give on the 12 balanced synthetic classes?

# %%
answer = None
exercises.check("02.1", answer)

# %% [markdown]
# **02.2** On UCF-101 single frames say a lot (a pool means swimming). A model that looks at
# one frame only scores 60 % on clips in order. With each clip's frames shuffled in time it
# scores: (a) about 60 %, (b) about chance, (c) 0 %? Answer with a letter.

# %%
answer = None
exercises.check("02.2", answer)

# %% [markdown]
# **02.3** Before any training, a model that gives every one of the 12 classes the same
# probability has what cross-entropy loss (natural log)? Compare with the first point of the
# training-loss curves.

# %%
answer = None
exercises.check("02.3", answer)
