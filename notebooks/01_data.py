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
# # 01 · Data and 16-frame snippets
#
# Everything in this repository attacks **snippets**: a video cut down to `T = 16` frames,
# each `H x W` pixels with `C = 3` colour channels. The paper (Wei et al., AAAI 2020) follows
# the C3D / 3D-ResNets protocol: 16 frames **uniformly sampled over the whole clip**, resized
# and centre-cropped to 112 x 112.
#
# ## What you will learn
# - what a snippet is, as an array, and the two layouts the project uses for it;
# - the **embedded synthetic action data set**: 12 classes that only **motion** tells apart,
#   so the whole project runs on a fresh machine with no download;
# - how 16 frames are sampled **uniformly** from a real UCF-101 / HMDB-51 clip.
#
# **Time to run:** about 20 s on 2 CPU cores at the defaults (32 x 32 frames); the first run
# also generates the data set (about 20 s more). At paper scale (`params/01_data_full.yaml`,
# 112 x 112) about 1 minute. **Needs:** nothing from earlier notebooks.
#
# Terms in bold are defined in [`docs/glossary.md`](../docs/glossary.md).
#
# Conventions used everywhere (`CONTRIBUTING.md`): stored snippets are `uint8 [T, H, W, C]`;
# models and attacks see `float [C, T, H, W]` in `[0, 1]`.

# %% tags=["parameters"]
dataset = "synthetic"  # "synthetic" | "ucf101" | "hmdb51"
size = 32  # synthetic frame size in pixels (112 at paper scale)
n_per_class_train = 100  # synthetic clips per class
n_per_class_test = 30
seed = 0
real_clip = ""  # a video file or jpg-frame folder to sample; "" = a real clip from ../shared if present

# %%
import tempfile
import time
from pathlib import Path

import numpy as np

from hba_lib import exercises, paths, viz
from hba_lib.data import get_dataset, synthetic, video_io


def load(split: str, n_per_class: int):
    """The ``dataset`` parameter's split (the synthetic one generated on first use, then cached)."""
    extra = {"size": size, "n_per_class": n_per_class, "seed": seed} if dataset == "synthetic" else {}
    return get_dataset(dataset, split, **extra)


# %% [markdown]
# ## The data set: one snippet
#
# A snippet is stored as `uint8 [T, H, W, C]` (what a video decoder gives) and handed to a
# model as `float [C, T, H, W]` in `[0, 1]` (the layout of torchvision's video models). At
# paper scale one snippet holds 16 x 112 x 112 x 3 = 602,112 numbers: that is the space an
# attack searches for every video.

# %%
start = time.perf_counter()
test = load("test", n_per_class_test)
try:
    train = load("train", n_per_class_train)
except FileNotFoundError as err:  # a real data set cached with `--split test` only
    train = None
    print("no training split here:", err)
print(f"loaded in {time.perf_counter() - start:.1f} s")
print(test)
video, label = test[0]
print("one stored snippet:", test.videos[0].shape, test.videos[0].dtype,
      "| one model input:", tuple(video.shape), video.dtype, "| class:", test.classes[label])

# %% [markdown]
# One test clip of each class (up to 12), every frame. Read each row left to right: on the
# synthetic data set the motion is the class.

# %%
viz.show(viz.class_strip(test), f"01_{dataset}_classes")

# %% [markdown]
# The same clips as animations: one GIF with the classes tiled and one small GIF per class,
# written to this run's figures folder (printed above; for the default run, `figures/`).

# %%
gifs = viz.class_gifs(test, tiled=f"01_{dataset}_classes", each="01_class_")
print(f"wrote {len(gifs)} GIFs, e.g. {gifs[0].name}")

# %% [markdown]
# ### Class balance
#
# The synthetic labels are `index % K`, so every split is exactly balanced; a real data set's
# official split is nearly so.

# %%
splits = {"train": train, "test": test} if train is not None else {"test": test}
viz.show(viz.class_balance(splits), "01_class_balance")
counts = {name: np.bincount(ds.labels, minlength=len(ds.classes)) for name, ds in splits.items()}
print({name: f"{c.min()}-{c.max()} clips per class" for name, c in counts.items()})

# %% [markdown]
# ### One frame is not enough
#
# Averaged over a class's clips, a single frame (here frame 8) looks nearly the same in every
# class; the mean difference between the last and the first frame does not: it is where the
# motion is. On the synthetic data set positions, sizes and angles are drawn so that one frame
# tells little about the class. The *set* of frames still tells something (an object that
# moves right passes through the same places as one that moves left, but not the places of
# one that moves up), which is why notebook 02's shuffled-frame control lands above chance;
# the *order* of the frames carries the rest.

# %%
viz.show(viz.one_frame_is_not_enough(train if train is not None else test), "01_one_frame_is_not_enough")

# %% [markdown]
# ### How the synthetic clips are made
#
# Each synthetic clip shows one textured object of random shape, colour, size, position and
# speed over a cluttered textured background, with pixel noise and a little camera jitter.
# The class is **how the object moves**. The generator can return the object's state in every
# frame; its centre over time draws each class as a trajectory. (This picture shows the
# synthetic generator whatever `dataset` is.)

# %%
viz.show(viz.synthetic_tracks(size=size, seed=seed), "01_synthetic_tracks")

# %% [markdown]
# ## Real data: 16 frames uniformly sampled from a clip
#
# For UCF-101 and HMDB-51 a clip is decoded to the frames that are **really there**: a
# container's header can claim more frames than it holds, so its count is never trusted.
# Then 16 indices are spread over the whole clip, and each frame is resized on its short side
# and centre-cropped to 112 x 112. The picture shows which frames are taken; `data_scripts/`
# builds a cache of such snippets for a whole data set once ([docs/data.md](../docs/data.md),
# *Using UCF-101 / HMDB-51*). Without `../shared` (or a `real_clip`), a long synthetic clip written to a video
# file stands in for a real one.

# %%
candidates = [Path(real_clip)] if real_clip else [
    paths.REAL_DATA / "ucf101_avi" / "v_ApplyEyeMakeup_g01_c01.avi",
    paths.REAL_DATA / "hmdb51_avi" / "RATRACE_wave_f_nm_np1_fr_goo_37.avi",
]
source = next((p for p in candidates if p.exists()), None)
if source is None:  # no ../shared here: a long synthetic clip written to a real video file
    long_clip = synthetic.generate_clip(0, np.random.default_rng(seed), size=112, num_frames=90)
    source = Path(tempfile.mkdtemp()) / "synthetic_long.avi"
    video_io.write_video(source, long_clip)
snippet, info = video_io.read_snippet(source, num_frames=16, size=112)
agree = "agrees" if not info.header_mismatch else f"is off by {info.n_header - info.n_decoded}"
print(f"{source.name}: the header says {info.n_header} frames, {info.n_decoded} decoded "
      f"(the header {agree}); source {info.source_hw}, looped={info.looped}")
print("sampled frame indices:", list(info.indices))
print("snippet:", snippet.shape, snippet.dtype)
viz.show(viz.uniform_sampling(snippet, info.indices, info.n_decoded, source.name), "01_uniform_sampling")

# %% [markdown]
# The picture first, the rule second. With `N` decoded frames, snippet frame `i`
# (`i = 0, ..., 15`) is the middle frame of the `i`-th of 16 equal segments:
#
# $$t_i = \left\lfloor \frac{(2i + 1)\,N}{2 \cdot 16} \right\rfloor, \qquad i = 0, \dots, 15,$$
#
# all distinct and increasing when `N >= 16`; a clip shorter than 16 frames is looped
# (`0, 1, ..., N-1, 0, 1, ...`), as 3D-ResNets does.

# %%
n = info.n_decoded
print("by the formula:", [((2 * i + 1) * n) // 32 for i in range(16)])
assert [((2 * i + 1) * n) // 32 for i in range(16)] == list(info.indices)

# %% [markdown]
# When `../shared` holds the same UCF clip as the C3D authors' extracted jpg frames (the
# 3D-ResNets layout), the folder may hold a different number of frames than the video decodes
# to, and the sampled indices then differ by one here and there.

# %%
jpg_folder = paths.REAL_DATA / "ucf101_frames" / "v_ApplyEyeMakeup_g01_c01"
if jpg_folder.exists():
    from_jpg, jinfo = video_io.read_snippet(jpg_folder, num_frames=16, size=112)
    print(f"jpg folder: {jinfo.n_decoded} frames; indices {list(jinfo.indices)}")
else:
    print("../shared/real_data is not here: skipping the jpg-folder comparison")

# %% [markdown]
# ## Summary
# - A snippet is `T = 16` frames: `uint8 [T, H, W, C]` stored, `float [C, T, H, W]` in `[0, 1]`
#   for models and attacks; 602,112 numbers at 112 x 112.
# - The synthetic data set has 12 balanced classes of motion; one frame says little about the
#   class, the order of the frames says the rest. `get_dataset(dataset, split)` gives it, or
#   UCF-101 / HMDB-51 once their cache is built.
# - Real clips are decoded in full and sampled at the middle frames of 16 equal segments.
#
# Next: notebook 02 trains the models that the attacks will query.
#
# ## Exercises
# Write your answer in place of `None` and run the cell: `exercises.check` says whether it is
# right, and why. `exercises.hint("01.1")` gives a hint.
#
# **01.1** How many numbers does one paper-scale snippet hold (16 frames of 112 x 112 RGB pixels)?

# %%
answer = None
exercises.check("01.1", answer)

# %% [markdown]
# **01.2** A clip has 40 decoded frames. Which 16 frame indices (0-based) does uniform sampling
# take? Give a list of 16 integers.

# %%
answer = None
exercises.check("01.2", answer)

# %% [markdown]
# **01.3** Play a synthetic `move_right` clip backwards in time (`clip[::-1]`). Which class of
# the synthetic data set does it show? (Try it: `viz.show(viz.frame_strip([clip, clip[::-1]]))`.)

# %%
answer = None
exercises.check("01.3", answer)
