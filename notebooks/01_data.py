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
# # 01 · Data and 16-frame snippets
#
# Everything in this repository attacks **snippets**: a video cut down to `T = 16` frames,
# each `H x W` pixels with `C = 3` colour channels. The paper (Wei et al., AAAI 2020) follows
# the C3D / 3D-ResNets protocol: 16 frames **uniformly sampled over the whole clip**, resized
# and centre-cropped to 112 x 112. A snippet is therefore a `16 x 112 x 112 x 3` array, and
# an attack searches a space of 602,112 numbers per video.
#
# This notebook shows
# 1. the **embedded synthetic action data set**, which lets the whole project run on a fresh
#    machine with no download: 12 classes that only **motion** can tell apart;
# 2. the **real-data path** (UCF-101 / HMDB-51): how 16 frames are sampled from a real clip.
#
# Conventions used everywhere (see `CONTRIBUTING.md`): stored snippets are `uint8
# [T, H, W, C]`; models and attacks see `float [C, T, H, W]` in `[0, 1]`.

# %% tags=["parameters"]
dataset = "synthetic"  # "synthetic" | "ucf101" | "hmdb51"
size = 32  # frame size in pixels (112 at paper scale)
n_per_class_train = 100
n_per_class_test = 30
seed = 0
real_clip = ""  # a video file or jpg-frame folder to sample; "" = a real clip from ../shared if present

# %%
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from hba_lib import paths, synthetic, video_io, viz
from hba_lib.datasets import get_dataset

# %% [markdown]
# ## The synthetic action data set
#
# Each clip shows one textured object of random shape, colour, size, position and speed
# over a cluttered textured background, with pixel noise and a little camera jitter.
# The class is **how the object moves**: left, right, up, down, rotating either way,
# growing, shrinking, oscillating, orbiting. Positions, angles and sizes are drawn so that
# any *single* frame looks alike for every class: only the change over time carries the
# label. That is what makes key frames (notebook 04) meaningful on this data, and the
# cluttered background is what makes saliency masks (notebook 05) meaningful.

# %%
start = time.perf_counter()
train = synthetic.SyntheticActions("train", size=size, n_per_class=n_per_class_train, seed=seed)
test = synthetic.SyntheticActions("test", size=size, n_per_class=n_per_class_test, seed=seed)
print(f"loaded in {time.perf_counter() - start:.1f} s (generated on first use, then cached)")
print(train)
print(test)
video, label = test[0]
print("one stored snippet:", test.videos[0].shape, test.videos.dtype,
      "| one model input:", tuple(video.shape), video.dtype, "label", train.classes[label])

# %% [markdown]
# One test clip of every class, every frame. Read each row left to right: the motion is
# the class.

# %%
first = [int(np.flatnonzero(test.labels == k)[0]) for k in range(len(test.classes))]
fig = viz.frame_strip([test.videos[i] for i in first], row_labels=list(test.classes),
                      title="Synthetic action classes (one test clip each, 16 frames)", frame_size=0.7)
viz.savefig(fig, "01_synthetic_classes")
plt.show()

# %% [markdown]
# The same clips as animations: one GIF with all classes tiled
# (`figures/01_synthetic_classes.gif`) and one small GIF per class (`figures/01_class_<name>.gif`).

# %%
tiles = np.stack([test.videos[i] for i in first])  # [K, T, H, W, C]
rows = 3
grid = np.concatenate(
    [np.concatenate(list(tiles[r * 4:(r + 1) * 4]), axis=2) for r in range(rows)], axis=1
)  # [T, 3H, 4W, C]
gif = viz.save_gif(grid, "01_synthetic_classes", fps=6, scale=max(1, 96 // size))
print("wrote", gif.relative_to(paths.REPO_ROOT))
for k, i in enumerate(first):
    viz.save_gif(test.videos[i], f"01_class_{test.classes[k]}", fps=6, scale=max(1, 64 // size))
print("and one GIF per class:", ", ".join(f"01_class_{c}.gif" for c in test.classes))

# %% [markdown]
# ### What moves: the object's track in each class
#
# The generator can return the object's state in every frame. Plotting the centre over
# time shows the classes as trajectories; the start of each is a dot.

# %%
rng = np.random.default_rng(seed)
fig, axes = plt.subplots(2, 6, figsize=(12, 4.4), sharex=True, sharey=True)
for k, ax in enumerate(axes.flat):
    for _ in range(6):
        _, track = synthetic.generate_clip(k, rng, size=size, return_track=True)
        ax.plot(track.cx, track.cy, lw=1)
        ax.scatter(track.cx[:1], track.cy[:1], s=8)
    ax.set_title(synthetic.CLASSES[k], fontsize=8)
    ax.set_xlim(0, size)
    ax.set_ylim(size, 0)
    ax.set_aspect("equal")
fig.suptitle("object centre over 16 frames (rotate, grow and shrink stay in place)", fontsize=9)
viz.savefig(fig, "01_synthetic_tracks")
plt.show()

# %% [markdown]
# ### Class balance
#
# Labels are `index % K`, so every split is exactly balanced.

# %%
counts = {
    "train": np.bincount(train.labels, minlength=len(train.classes)),
    "test": np.bincount(test.labels, minlength=len(test.classes)),
}
fig, ax = plt.subplots(figsize=(8, 2.8))
width = 0.4
x = np.arange(len(train.classes))
for j, (name, c) in enumerate(counts.items()):
    ax.bar(x + (j - 0.5) * width, c, width, label=name, color=sns.color_palette()[j])
ax.set_xticks(x, train.classes, rotation=45, ha="right", fontsize=7)
ax.set_ylabel("clips")
ax.legend()
ax.set_title("clips per class")
viz.savefig(fig, "01_class_balance")
plt.show()
assert len(set(counts["train"])) == 1 and len(set(counts["test"])) == 1

# %% [markdown]
# ### One frame is not enough
#
# Averaged over many clips, a single frame of one class looks like a single frame of any
# other: the mean image of frame 8 is nearly the same for every class. The mean
# *difference* between the last and first frames is not: it is where the motion lives.

# %%
fig, axes = plt.subplots(2, 12, figsize=(12, 2.4))
for k in range(len(train.classes)):
    sel = train.videos[train.labels == k]  # uint8 [n, T, H, W, C]
    frame8 = sel[:, 8].mean(axis=(0, -1)) / 255
    motion = (sel[:, -1].astype(np.float32) - sel[:, 0]).mean(axis=(0, -1)) / 255
    axes[0, k].imshow(frame8, cmap="gray", vmin=0.3, vmax=0.7)
    axes[1, k].imshow(motion, cmap="coolwarm", vmin=-0.06, vmax=0.06)
    axes[0, k].set_title(train.classes[k], fontsize=6)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
axes[0, 0].set_ylabel("mean\nframe 8", fontsize=7)
axes[1, 0].set_ylabel("mean\nlast-first", fontsize=7)
viz.savefig(fig, "01_one_frame_is_not_enough")
plt.show()

# %% [markdown]
# ## Real data: 16 frames uniformly sampled from a clip
#
# For UCF-101 and HMDB-51 the clip is decoded to the frames that are **really there**
# (container headers lie: the UCF clip below claims one frame more than it holds), then 16
# indices are spread uniformly over the whole clip, each frame is resized on its short side
# and centre-cropped to 112 x 112. `data_scripts/` builds a cache of such snippets for a
# whole data set once; see the README section *Using UCF-101 / HMDB-51*.

# %%
candidates = [Path(real_clip)] if real_clip else [
    paths.REAL_DATA / "ucf101_avi" / "v_ApplyEyeMakeup_g01_c01.avi",
    paths.REAL_DATA / "hmdb51_avi" / "RATRACE_wave_f_nm_np1_fr_goo_37.avi",
]
source = next((p for p in candidates if p.exists()), None)
if source is None:  # no ../shared here: sample a long synthetic clip written to a real video file
    long_clip = synthetic.generate_clip(0, np.random.default_rng(seed), size=112, num_frames=90)
    source = Path(tempfile.mkdtemp()) / "synthetic_long.avi"
    video_io.write_video(source, long_clip)
snippet, info = video_io.read_snippet(source, num_frames=16, size=112)
print(f"{source.name}: header says {info.n_header} frames, decoded {info.n_decoded}, "
      f"source {info.source_hw}, looped={info.looped}")
print("sampled frame indices:", list(info.indices))
print("snippet:", snippet.shape, snippet.dtype)

# %%
fig = plt.figure(figsize=(12, 1.9))
ax = fig.add_axes([0.03, 0.74, 0.94, 0.14])
ax.vlines(np.arange(info.n_decoded), 0, 1, color="0.8", lw=0.6)
ax.vlines(info.indices, 0, 1, color="C3", lw=2)
ax.set_xlim(-1, info.n_decoded)
ax.set_yticks([])
ax.set_title(f"{source.name}: {info.n_decoded} decoded frames (grey), the 16 sampled (red)", fontsize=9)
for i in range(16):
    a = fig.add_axes([0.03 + i * 0.94 / 16, 0.0, 0.94 / 16 - 0.004, 0.5])
    a.imshow(snippet[i])
    a.set_xticks([])
    a.set_yticks([])
    a.set_title(f"#{info.indices[i]}", fontsize=7)
viz.savefig(fig, "01_uniform_sampling")
plt.show()

# %% [markdown]
# The same clip as the C3D authors' extracted jpg frames (the 3D-ResNets layout): the folder
# holds one frame more than the video decodes to, so sampled indices can differ by one.

# %%
jpg_folder = paths.REAL_DATA / "ucf101_frames" / "v_ApplyEyeMakeup_g01_c01"
if jpg_folder.exists():
    from_jpg, jinfo = video_io.read_snippet(jpg_folder, num_frames=16, size=112)
    print(f"jpg folder: {jinfo.n_decoded} frames; indices {list(jinfo.indices)}")
else:
    print("../shared/real_data is not here: skipping the jpg-folder comparison")

# %% [markdown]
# ## The data set a notebook attacks
#
# Every notebook takes the same `dataset` parameter and calls
# `hba_lib.datasets.get_dataset(dataset, split)`; UCF-101 and HMDB-51 need their snippet
# cache built once (README, *Using UCF-101 / HMDB-51*).

# %%
kwargs = {"size": size, "n_per_class": n_per_class_test, "seed": seed} if dataset == "synthetic" else {}
ds = get_dataset(dataset, "test", **kwargs)
print(ds)
print("classes:", len(ds.classes), "| clips:", len(ds), "| one clip:", tuple(ds[0][0].shape))
