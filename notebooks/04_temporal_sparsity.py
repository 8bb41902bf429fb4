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
# # 04 · Temporal sparsity: perturb only the key frames (Algorithm 1)
#
# Notebook 03 perturbed every value of every frame. A video model rarely needs all 16 frames
# to decide, so the paper's first heuristic looks for the **key frames**: the fewest frames
# whose perturbation still fools the model, found with label queries alone. Fewer frames mean
# a smaller search space for the optimizer and a perturbation that touches less of the video.
#
# ## What you will learn
# - how the oracle's top-1 probability ranks the frames by how little each one matters
#   (**frame importance**, one batch of T queries);
# - the paper's greedy deletion under a bound **omega** on the mean absolute perturbation
#   (**MAP**) of the selected key frames, and when `omega = 0` still drops a frame;
# - which frames survive as omega grows, and what the search costs in queries.
#
# **Time to run:** about a minute on 2 CPU cores at the defaults (one video of the synthetic
# test set, the default C3D); at paper scale (`params/04_temporal_sparsity_full.yaml`, 112 x 112
# on a GPU) a few minutes. It needs nothing from earlier notebooks: the data set and the
# default checkpoint come from `hba_lib`.

# %% tags=["parameters"]
model_name = "c3d"  # the committed default checkpoint ("c3d" or "lrcn")
checkpoint = ""  # a trained model instead (a path relative to the repository, or absolute)
dataset = "synthetic"  # "synthetic" | "ucf101" | "hmdb51" (its test split)
size = 32  # synthetic frame size (the default checkpoints were trained at 32)
num_candidates = 10  # videos of other classes tried as starting points
targeted = False
omega = 3.0  # the MAP bound of Algorithm 1 (0-255; the paper: 3 untargeted, 30 targeted)
omegas = [0.0, 1.0, 3.0, 6.0, 12.0]  # the sweep of the last section
tol = 0.01  # bisection tolerance of the boundary searches (L2, [0, 1] units)
seed = 0
threads = 1
device = "cpu"

# %%
import pandas as pd
import torch

from hba_lib import exercises, viz
from hba_lib.attacks import attack_set, drive
from hba_lib.data import get_dataset
from hba_lib.heuristics.key_frames import frame_importance, select_key_frames
from hba_lib.models import load_default_model, load_model_checkpoint
from hba_lib.oracle import Oracle
from hba_lib.oracle.goals import make_goal
from hba_lib.paths import resolve

torch.set_num_threads(threads)
model = (load_model_checkpoint(resolve(checkpoint), device=device) if checkpoint
         else load_default_model(model_name, device=device))  # fmt: skip
data = get_dataset(dataset, "test", **({"size": size} if dataset == "synthetic" else {}))
chosen = attack_set(data, model, 1, num_candidates, targeted=targeted, seed=seed)
x, y, target = chosen.xs[0], chosen.labels[0], chosen.targets[0]
goal = make_goal(y, target)
model_label = checkpoint or f"default {model_name}"
print(f"{model_label} on {dataset}: test video {chosen.indices[0]} ({data.classes[y]}), {goal.describe()}")

# %% [markdown]
# ## A starting point, and what each frame is worth
#
# The attack starts, as in notebook 03, from a **candidate**: a video `x_hat` the oracle
# already labels as the goal wants (another class; the target class when targeted). The
# perturbation `p = x_hat - x` is adversarial by construction. Now remove it from one frame
# at a time: query `x + p * M_t`, where the mask `M_t` is 1 everywhere except on frame `t`.
# If the answer is still adversarial, its top-1 probability says how little frame `t`
# mattered: a high probability without frame `t` means frame `t` is a good frame to drop.
# One batch of T = 16 counted queries ranks all frames.

# %%
oracle = Oracle(model)
answers = oracle(chosen.candidates[0], "init")
adversarial = goal.is_adversarial(answers.labels)
x_hat = chosen.candidates[0][int(adversarial.nonzero()[0, 0])]
probs, order = drive(frame_importance(x, x_hat - x, goal), oracle)
print(f"queries so far: {oracle.counts} (candidates, then T = {x.shape[1]} for the importance)")
viz.show(viz.frame_importance(probs, order, f"{model_label}: frame importance, {goal.describe()}"),
         "04_frame_importance")  # fmt: skip

# %% [markdown]
# The bars are sorted into the **deletion order** (the numbers above them): the paper tries
# to drop the least important frame first. Frames whose removal alone breaks the attack are
# no deletion candidates at all.
#
# ## Greedy deletion under the MAP bound omega
#
# Walk the frames in that order. For each, drop it from the mask `M` (`p_hat = p * M`) and
# first ask the oracle once whether `x + p_hat` is still adversarial (Algorithm 1, lines
# 12-13; targeted: still the target). If it is not, the frame goes back in at the price of one
# query. If it is, form the direction `theta = p_hat / ||p_hat||`, find the distance to the
# decision boundary along it,
#
# $$g(\theta) = \min\{\lambda > 0 : F(x + \lambda\theta) \text{ is adversarial}\},$$
#
# by bisection on `[0, ||p_hat||]` as in notebook 03, and measure the perturbation it needs
# **on the selected key frames**,
#
# $$\mathrm{MAP}_M(\lambda\theta) = \frac{255}{|M|} \sum_{i \in M} \left|\,\mathrm{clip}(x + \lambda\theta)_i - x_i\right|,$$
#
# the mean absolute perturbation over the `|M|` values the mask keeps, on the 0-255 scale. That
# is the paper's sentence: "When the mean absolute perturbation on the selected key frames [is]
# lower than the bound omega, our method will continue searching a smaller set of key frames."
# The rule keeps the frame out of the mask when `MAP_M <= omega` (fewer frames at a
# perturbation we accept), or else when `MAP_M` is lower than before; otherwise the frame goes
# back in. Every query is counted as initialisation.

# %%
before = oracle.used
found = drive(select_key_frames(x, x_hat, goal, omega=omega, tol=tol), oracle)
print(f"key frames: {found.key_frames} ({len(found.key_frames)} of {x.shape[1]}); key-frame MAP "
      f"{found.initial_map:.2f} with every frame -> {found.map:.2f}; "
      f"{oracle.used - before} queries for the search")  # fmt: skip
pd.DataFrame([vars(t) for t in found.trials]).round(3)

# %%
viz.show(viz.key_frame_trials(found, omega, f"{model_label}: Algorithm 1's walk, omega = {omega:g}"),
         "04_key_frame_walk")  # fmt: skip

# %% [markdown]
# Each deletion concentrates the perturbation on fewer frames: the boundary asks for about as
# much change on the frames the model needs, now spread over fewer values, so the MAP on the
# kept frames usually *rises* (while the mean over the whole video falls, since the dropped
# frame no longer counts). A rejected deletion either broke the attack (`x + p_hat` no longer
# adversarial: one query) or raised `MAP_M` above both omega and the current value. Bounding
# the whole-video MAP instead (`acceptance="whole_video"`) would accept nearly every
# still-adversarial deletion whatever omega is: a sparser variant, not the paper's rule.
#
# ## Which frames survive as omega grows
#
# A larger omega accepts deletions that cost more perturbation on the kept frames, so fewer
# frames survive. `omega = 0` can still drop a frame: the second half of the rule accepts any
# deletion that lowers `MAP_M` (a frame that carried more than its share of the perturbation).
# The **sparsity** `S = 1 - (1/T) sum_t phi_t` (`phi_t` the share of frame t's pixels
# that may change; 0 for a dropped frame) grows with it.

# %%
kept, maps, costs = {}, {}, {}
for om in omegas:
    counter = Oracle(model)
    res = drive(select_key_frames(x, x_hat, goal, omega=om, tol=tol), counter)
    kept[om], maps[om], costs[om] = res.key_frames, res.map, counter.used
    print(f"omega {om:>5g}: {len(res.key_frames):>2} key frames {res.key_frames}, key-frame MAP {res.map:.2f}, "
          f"S {1 - len(res.key_frames) / x.shape[1]:.2f}, {counter.used} queries")  # fmt: skip
viz.show(viz.key_frames_by_omega(kept, x.shape[1], maps, f"{model_label}: key frames by omega"),
         "04_key_frames_by_omega")  # fmt: skip

# %% [markdown]
# ## One trial after another, or overlapped
#
# Each trial is a chain: one check, then a bisection of a dozen halvings, each waiting for the
# answer before it. But a trial's queries depend only on *which* frames the trials before it
# dropped (`p_hat` is `p` on the kept frames), not on their exact `g`; and a trial's outcome is
# often certain long before its bisection ends: `g` lies between the last scale answered clean
# and the last answered adversarial, the MAP grows with `g`, so once the MAP at the upper end
# is within omega (kept out) or the MAP at the lower end is above both omega and the current
# value (put back), the remaining halvings cannot change it. So the next trial can start then,
# its check asked in the same request as the rest of that bisection. Same queries, same answers,
# same key frames, fewer requests: on a GPU a request of ten clips costs about what one clip
# costs. `overlap` is a test the caller passes: the full attack passes one that holds only
# where the query budget cannot cut the search (so a cut falls exactly where one after another
# would put it).

# %%
rows = []
for overlap in (None, lambda: True):
    counter = Oracle(model)
    res = drive(select_key_frames(x, x_hat, goal, omega=omega, tol=tol, overlap=overlap), counter)
    rows.append({"trials": "overlapped" if overlap else "one after another",
                 "queries": counter.used, "requests": counter.calls,
                 "key frames": res.key_frames, "key-frame MAP": round(res.map, 3)})  # fmt: skip
pd.DataFrame(rows).set_index("trials")

# %% [markdown]
# In the full attack (notebook 06) the candidates' boundary searches run first, each abandoned
# as soon as it cannot beat the best distance found so far (one query); Algorithm 1 runs on the
# survivors, and the one whose key-frame direction is closest to the boundary (smallest `g`,
# the paper's "minimum distance to the decision boundary") seeds the optimizer, which then only ever moves the
# key frames. `hba_lib.attacks.make_attack("temporal")` is that configuration.
#
# ## Summary
# - Frame importance costs exactly T queries per candidate, in one batch: the oracle's top-1
#   probability with one frame removed ranks the frames.
# - Algorithm 1 drops frames greedily: a deletion stays when the MAP on the kept frames is
#   within omega or lower than before; frames whose removal breaks the attack are never dropped.
# - omega = 0 drops only frames that lower that MAP; a larger omega leaves fewer key frames and
#   a higher sparsity.
# - The search costs one boundary search per tried frame: it pays off when the optimizer
#   then searches a space of a few frames instead of sixteen.
# - A trial's queries depend only on which frames are dropped, so the next trial can start as
#   soon as the outcomes before it are certain: the same queries in fewer requests.
#
# ## Exercises

# %% [markdown]
# **04.1** How many queries does the frame importance of Algorithm 1 cost for one candidate
# of a 16-frame video?

# %%
answer = None
exercises.check("04.1", answer)

# %% [markdown]
# **04.2** With `omega = 0`, can Algorithm 1 drop a frame? Answer `"yes"` or `"no"`.

# %%
answer = None
exercises.check("04.2", answer)

# %% [markdown]
# **04.3** Algorithm 1 kept 4 of 16 frames, each with every pixel. What is the sparsity S?

# %%
answer = None
exercises.check("04.3", answer)
