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
# # 05 · Spatial sparsity: perturb only the salient regions
#
# The paper's second heuristic works inside each frame: a person looking at a frame is drawn
# to a few **salient** regions (the actor, the moving object), and the model's decision is
# likely to rest there too. So the attack perturbs only the most salient share **phi** of
# each frame's pixels. Saliency is computed on the clean video, which the attacker holds:
# it costs **no query**.
#
# ## What you will learn
# - what a saliency map is, and the spectral residual method of Hou & Zhang (2007) that the
#   paper uses, written out step by step;
# - how a map becomes a mask: the top `phi` of each frame's pixels, the same mask on all
#   three colour channels;
# - that this project's batched torch version reproduces OpenCV's reference masks, on
#   synthetic clips and on real UCF-101 / HMDB-51 frames.
#
# **Time to run:** under a minute on 2 CPU cores at the defaults; the same at paper scale
# (`params/05_spatial_saliency_full.yaml`, 112 x 112). It needs nothing from earlier
# notebooks; the real clips come from `../shared/real_data/` when it is there.

# %% tags=["parameters"]
dataset = "synthetic"  # "synthetic" | "ucf101" | "hmdb51" (its test split)
size = 32  # synthetic frame size
video_index = 0  # which test video to show
phis = [0.2, 0.4, 0.6, 0.8]  # salient area ratios to draw (the paper: 0.6 untargeted, 0.8 targeted)
frames = [0, 5, 10, 15]  # frames to draw
method = "spectral_residual"  # or "fine_grained" (OpenCV only)
real_clips = True  # also show the real clips of ../shared/real_data when present
threads = 1

# %%
import pandas as pd
import torch

from hba_lib import exercises, paths, viz
from hba_lib.data import get_dataset
from hba_lib.data.video import to_model_layout
from hba_lib.data.video_io import read_snippet
from hba_lib.heuristics.saliency import mask_overlap, saliency_maps, saliency_mask

torch.set_num_threads(threads)
data = get_dataset(dataset, "test", **({"size": size} if dataset == "synthetic" else {}))
x, y = data[video_index]
backend = "torch" if method == "spectral_residual" else "opencv"
print(f"{dataset} test video {video_index} ({data.classes[y]}), shape {tuple(x.shape)}")

# %% [markdown]
# ## A saliency map, then its masks
#
# Below: four frames of the video, their saliency maps (bright: salient) and the masks for
# each phi (the pixels kept; black: never perturbed).

# %%
sal = saliency_maps(x, method=method, backend=backend)
masks = {phi: saliency_mask(x, phi, method=method, backend=backend) for phi in phis}
viz.show(viz.saliency_panels(x, sal, masks, frames, f"{dataset}: {method} saliency and phi masks"),
         "05_saliency_masks")  # fmt: skip

# %% [markdown]
# ## The spectral residual, step by step
#
# Hou & Zhang observed that the log amplitude spectrum of natural images is smooth on
# average; what sticks out of it (the **residual**) is what draws the eye. For a grey frame
# `I` (resized to 64 x 64, as OpenCV does), with `F` the 2-D Fourier transform:
#
# $$A(f) = \log\left|\mathcal{F}[I](f)\right|, \qquad P(f) = \arg \mathcal{F}[I](f),$$
#
# $$R(f) = A(f) - (h_3 * A)(f),$$
#
# $$S = g * \left|\mathcal{F}^{-1}\left[e^{R(f) + iP(f)}\right]\right|^2,$$
#
# where `h_3` is a 3 x 3 averaging filter (the smooth "expected" spectrum), `R` the spectral
# residual, `P` the phase (kept as it is) and `g` a Gaussian blur. `S` is resized back to
# the frame and normalised to [0, 1]. The mask keeps, in every frame, the `round(phi H W)`
# pixels of highest `S` (no threshold), and the same pixels in all three channels.

# %%
h, w = x.shape[-2:]
m = masks[phis[0]]
print(f"phi = {phis[0]}: {int(m[0, 0].sum())} of {h * w} pixels kept per frame; "
      f"mask shape {tuple(m.shape)} (broadcast over the {x.shape[0]} channels)")

# %% [markdown]
# ## Torch against OpenCV
#
# OpenCV's contrib module (`cv2.saliency.StaticSaliencySpectralResidual`) is the reference
# the paper's code used. `hba_lib.heuristics.saliency` computes the same maps in torch, a
# whole video (or a batch of videos) in one call, on the GPU when the video is there. The
# share of OpenCV's selected pixels that the torch mask also selects:

# %%
rows = []
if method == "spectral_residual":
    for phi in phis:
        ref = saliency_mask(x, phi, backend="opencv")
        rows.append({"clip": f"{dataset} {video_index}", "phi": phi,
                     "agreement %": 100 * mask_overlap(ref, masks[phi])})  # fmt: skip
pd.DataFrame(rows)

# %% [markdown]
# ## Real clips
#
# The synthetic clips have one moving object over clutter. Real UCF-101 / HMDB-51 frames
# (a few are in `../shared/real_data/` beside the repository; nothing is downloaded) show
# where saliency falls on people and scenes. Each clip is decoded to 16 frames sampled
# uniformly and cropped to 112 x 112, as the data sets are.

# %%
clips = sorted((paths.REAL_DATA / "ucf101_avi").glob("*.avi"))[:1] + sorted(
    (paths.REAL_DATA / "hmdb51_avi").glob("*.avi"))[:1] if real_clips else []  # fmt: skip
if not clips:
    viz.not_drawn("05_saliency_real", f"no real clips at {paths.REAL_DATA} (or real_clips = False)")
for k, clip in enumerate(clips):
    snippet, info = read_snippet(clip)
    v = to_model_layout(snippet)
    v_masks = {phi: saliency_mask(v, phi, method=method, backend=backend) for phi in phis}
    viz.show(viz.saliency_panels(v, saliency_maps(v, method=method, backend=backend), v_masks,
                                 frames, f"{clip.name}: {method} saliency and phi masks"),
             f"05_saliency_real_{k}")  # fmt: skip
    if method == "spectral_residual":
        agree = [100 * mask_overlap(saliency_mask(v, phi, backend="opencv"), v_masks[phi])
                 for phi in phis]  # fmt: skip
        print(f"{clip.name}: agreement with OpenCV "
              + ", ".join(f"phi {p}: {a:.2f} %" for p, a in zip(phis, agree)))  # fmt: skip

# %% [markdown]
# In the full attack (notebook 06) the saliency mask comes first: Algorithm 1 then searches
# key frames inside it, and the optimizer only ever moves pixels that are both salient and
# on a key frame. `hba_lib.attacks.make_attack("temporal+spatial")` is that configuration
# (phi 0.6 untargeted, 0.8 targeted, as in the paper).
#
# ## Summary
# - A saliency map scores each pixel by how much it stands out; the spectral residual method
#   finds it from what sticks out of the smoothed log amplitude spectrum.
# - The mask keeps the top phi of each frame's pixels, the same in all channels; phi = 1 is
#   no spatial sparsity, and a spatial mask alone gives a sparsity S = 1 - phi.
# - Saliency needs the clean video only: it costs no query.
# - The torch version reproduces OpenCV's masks, batched and on any device.
#
# ## Exercises

# %% [markdown]
# **05.1** With phi = 0.6, how many pixels of a 32 x 32 frame may the attack change?

# %%
answer = None
exercises.check("05.1", answer)

# %% [markdown]
# **05.2** How many queries does computing the saliency masks of one 16-frame video cost?

# %%
answer = None
exercises.check("05.2", answer)

# %% [markdown]
# **05.3** With the saliency mask alone (phi = 0.6, no key-frame search), what is the
# sparsity S (a fraction)?

# %%
answer = None
exercises.check("05.3", answer)
