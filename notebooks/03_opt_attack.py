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
# # 03 · The black box and the Opt-attack baseline
#
# The attacker of the paper sees a video classifier only through its **top-1 label and that
# label's probability**: no logits, no gradients, no other classes. Every such answer is a
# **query**, and the paper's main cost measure (MQ) is the number of queries an attack needs.
# The paper builds on **Opt-attack** (Cheng et al., ICLR 2019): instead of searching for the
# adversarial video itself, it searches for a **direction** in which the clean video is
# closest to another class.
#
# ## What you will learn
# - the black-box **oracle**: what the attacker may see, and how every query is counted;
# - **g(theta)**, the distance to the decision boundary along a direction, and how label
#   answers alone measure it (a picture first, then the equation);
# - how Opt-attack improves the direction with random probes (eq. (1)) and steps (eq. (2)),
#   and when it stops;
# - the paper's metrics, **FR**, **MQ**, **MAP**, **MAP\***, **S**, on a handful of attacked videos.
#
# **Time to run:** under a minute on 2 CPU cores at the defaults (4 videos, 2,500 queries
# each, against the default small C3D). At paper scale (`params/03_opt_attack_full.yaml`)
# hours; use a GPU. **Needs:** a trained model: the committed default checkpoint, or
# notebook 02's run folder for `checkpoint`.
#
# Terms in bold are defined in [`docs/glossary.md`](../docs/glossary.md); every constant of the
# attack is fixed in [`docs/algorithm.md`](../docs/algorithm.md).

# %% tags=["parameters"]
model_name = "c3d"  # the committed default checkpoint ("c3d" or "lrcn")
checkpoint = ""  # a trained model instead (e.g. runs/c3d_ucf101_112px_seed0/last.pt from notebook 02)
dataset = "synthetic"  # "synthetic" | "ucf101" | "hmdb51" (its test split is attacked)
size = 32  # synthetic frame size (the default checkpoints were trained at 32)
n_videos = 4  # correctly classified test videos to attack
num_candidates = 10  # videos of other classes tried as initial directions
query_budget = 2500  # per video (None: run to the stopping rule)
q = 20  # random probes per gradient estimate (paper)
beta = 0.005  # probe step (paper)
tol = 0.01  # bisection tolerance on lambda (L2, [0, 1] units)
max_iter = 1000
targeted = False
seed = 0
threads = 1
device = "cpu"

# %%
import math

import numpy as np
import torch

from hba_lib import exercises, metrics, viz
from hba_lib.attacks import OptAttack, OptAttackConfig, attack_set, run_search
from hba_lib.attacks.opt_attack import targeted_initial_search, untargeted_initial_search
from hba_lib.data import get_dataset
from hba_lib.models import load_default_model, load_model_checkpoint
from hba_lib.oracle import Oracle
from hba_lib.oracle.goals import make_goal

torch.set_num_threads(threads)
if checkpoint:
    model = load_model_checkpoint(checkpoint, device=device)
    model_label = checkpoint.rstrip("/").split("/")[-2] if "/" in checkpoint else checkpoint
else:
    model = load_default_model(model_name, device=device)
    model_label = f"default {model_name}"
goal_name = "targeted" if targeted else "untargeted"
data = get_dataset(dataset, "test", **({"size": size} if dataset == "synthetic" else {}))
chosen = attack_set(data, model, n_videos, num_candidates, targeted=targeted, seed=seed)
print(data)
print(f"model: {model_label}; goal: {goal_name}")
print("attacking test videos", chosen.indices, "classes", [data.classes[y] for y in chosen.labels])
if targeted:
    print("targets:", [data.classes[t] for t in chosen.targets])

# %% [markdown]
# ## The oracle: what the attacker sees
#
# One oracle per attacked video, so its counter is that video's query count. Asking it about
# the clean video and the candidate videos costs one query per video.

# %%
x, y, target = chosen.xs[0], chosen.labels[0], chosen.targets[0]
goal = make_goal(y, target)
oracle = Oracle(model)
answer = oracle(x, "check")
print(f"clean video: label {int(answer.labels[0])} ({data.classes[int(answer.labels[0])]}), "
      f"p = {float(answer.probs[0]):.3f}; true class {y}")
cand = oracle(chosen.candidates[0], "init")
print("candidates' labels:", cand.labels.tolist(), "| goal:", goal.describe())
print("queries so far:", oracle.counts)

# %% [markdown]
# ## One direction, one picture
#
# Take a **candidate** video `x_hat` that the oracle already answers as the goal wants (another
# class, or the target class), and the ray from the clean video `x` towards it:
# `p = x_hat - x`, `theta = p / ||p||`. At `lambda = 0` the ray is at `x`; at `lambda = ||p||`
# it reaches `x_hat`, adversarial by construction. Somewhere between, the answer changes. Below:
# the oracle's answers on a grid of `lambda` (for the picture only: 40 extra queries on another
# oracle), and, as vertical lines, the points the attack's own search queries.

# %%
adv_candidates = goal.is_adversarial(cand.labels).nonzero()
if len(adv_candidates) == 0:
    raise RuntimeError("no candidate is adversarial for this goal: raise num_candidates")
i = int(adv_candidates[0, 0])
p = chosen.candidates[0][i] - x
theta = p / p.norm()
if targeted:
    search = targeted_initial_search(float(p.norm()), tol, cap=math.sqrt(x.numel()), known_adversarial=True)
else:
    search = untargeted_initial_search(float(p.norm()), np.inf, tol, known_adversarial=True)
g, steps = run_search(oracle, x, theta, search, goal)
grid = np.linspace(0, float(p.norm()), 40)
ans = Oracle(model)(torch.stack([(x + lam * theta).clamp(0, 1) for lam in grid]), "check")
viz.show(viz.g_theta_search(grid, ans.probs.numpy(), goal.is_adversarial(ans.labels).numpy(), steps, g,
                            goal=f"{model_label}, {goal_name}"), "03_g_theta_search")
print(f"||p|| = {float(p.norm()):.3f}, g(theta) = {g:.3f}, {len(steps)} queries")

# %% [markdown]
# The dashed line is where the answer changes along this ray. Written as an equation, with `F`
# the oracle's top-1 label:
#
# $$g(\theta) = \min\{\lambda > 0 : F(x + \lambda\theta) \text{ is adversarial}\}$$
#
# (untargeted: `F(x + lambda theta) != y`; targeted: `F(x + lambda theta) = y_adv`). `g` is
# an L2 distance in `[0, 1]` pixel units, and it is measured with label answers alone: the
# **binary search** keeps a bracket `[lo, hi]` with `lo` not adversarial and `hi` adversarial
# and halves it until it is narrower than `tol`, which costs `log2(||p|| / tol)` queries (the
# targeted search first scans a grid, as the lines show when `targeted = True`). The
# attack's whole job is to find the direction `theta` with the smallest `g(theta)`: the
# adversarial video is then `x_adv = x + g(theta) * theta`, as close to `x` as that direction
# allows.

# %% [markdown]
# ## Opt-attack on a handful of videos
#
# `OptAttack` does what `docs/algorithm.md` fixes: it tries each candidate's direction and
# keeps the one with the smallest `g` (**initialisation**), then improves it, one iteration
# after another (**optimisation**; explained after the picture below). Every query is counted.
# The `q` probes of an iteration run in **lockstep** (one batched oracle call per search step),
# and `run_many` runs the videos in lockstep too, each on its own oracle: the queries are
# exactly those of the one-query-at-a-time algorithm, only the model's forward passes are
# batched. A progress bar counts the queries.

# %%
config = OptAttackConfig(q=q, beta=beta, tol=tol, max_iter=max_iter, query_budget=query_budget,
                         seed=seed)
attack = OptAttack(config)
results = attack.run_many(Oracle(model), chosen.xs, chosen.labels, targets=chosen.targets,
                          candidates=chosen.candidates)
for idx, r in zip(chosen.indices, results):
    print(f"video {idx:>3}: {r.summary()}  iterations {r.iterations}")

# %% [markdown]
# ## Distance against queries
#
# Each attack's trace holds the best distance `g` (and its MAP) after initialisation and after
# every iteration. The first point sits at the initialisation's cost: the candidates, their
# class checks and their boundary searches. Each later point is one iteration.

# %%
budget_text = f"budget {query_budget} queries per video" if query_budget else "no budget"
viz.show(viz.distance_vs_queries(results, [f"video {i}" for i in chosen.indices],
                                 f"Opt-attack on the {model_label}, {goal_name}, {budget_text}"),
         "03_distance_vs_queries")

# %% [markdown]
# What one iteration does, now that the picture shows its effect. It estimates the gradient of
# `g` from `q` random directions `u_i` (Gaussian, of the video's shape), **eq. (1)** of the
# paper:
#
# $$\hat g = \frac{1}{q}\sum_{i=1}^{q} \frac{g(\theta + \beta u_i) - g(\theta)}{\beta}\, u_i,$$
#
# where `beta` (0.005) is the **probe step**: each probe `theta + beta u_i` is a slightly
# turned direction, and its `g` comes from a **local search** that starts from the known
# `g(theta)` (move the bracket by x1.01 or x0.99 until it straddles the boundary, then
# bisect). A probe whose `g` is smaller says "turn this way". Then it steps, **eq. (2)**:
#
# $$\theta \leftarrow \theta - \eta\,\hat g \quad (\text{then } \theta \leftarrow \theta / \|\theta\|),$$
#
# with the step `eta` found by a **backtracking line search**: try `eta`, keep doubling while
# `g` keeps falling; if the first try did not help, quarter `eta` until `g` falls. When no step
# helps (`eta` below 1e-4), **`beta` decays**: it is divided by 10, to probe more locally. The
# **stopping rule**: stop after three such decays (`converged`), after `max_iter` iterations,
# or when the query budget is spent (`budget_exhausted`), keeping the best direction found.
# With `q = 20` probes each needing a few queries, plus the line search, an iteration costs more
# than a hundred queries:
# that is why the curves above step down slowly, and why the heuristics of the paper (fewer
# values to search) matter.

# %% [markdown]
# ## What the perturbation looks like
#
# Clean frames, adversarial frames, and the perturbation amplified to be visible (grey = 0),
# every other frame of the first successfully attacked video.

# %%
k = next((j for j, r in enumerate(results) if r.success), 0)
r = results[k]
x = chosen.xs[k]
viz.show(viz.frame_strip(
    [x, r.x_adv, viz.amplify(r.x_adv - x)],
    row_labels=[f"clean: {data.classes[chosen.labels[k]]}",
                f"adversarial: {data.classes[r.label] if r.label is not None else '?'}",
                "perturbation (amplified)"],
    frames=range(0, x.shape[1], 2),
    title=f"Opt-attack on the {model_label}, {goal_name}: MAP {r.map:.2f} (0-255), "
          f"L2 {r.distance:.2f}, {r.queries} queries",
), "03_frames")

# %% [markdown]
# ## Results
#
# The paper's metrics, one row per attack:
# - **FR** (fooling rate): the share of attacked videos whose final video the oracle's final
#   check found adversarial. Untargeted, it is 100 % **by construction** once a direction is
#   initialised: the attack starts from another class's video and only ever keeps adversarial
#   points; what tells attacks apart is how small the perturbation is for the queries spent.
#   Targeted attacks can fail.
# - **MQ**: the median of the total queries per video, **failures included** at what they
#   spent; **MQ init** / **MQ opt**: the medians of the initialisation and optimisation phases.
#   The stopping rule, the tolerance and the budget decide MQ, so they are printed beside it.
# - **MAP**: the mean absolute perturbation `mean |x_adv - x|` over all values of the video, on
#   the 0-255 scale (successful videos). **MAP\***: the same mean over the masked region only;
#   **S**: the sparsity, the share of each frame left out of the mask, averaged over frames.
#   Opt-attack uses no mask, so MAP\* = MAP and S = 0 here; the heuristics change both.
# - **time s**: the wall time of all the videos together (they ran in lockstep).
#
# Written out for one video, with $N$ its number of values, $M$ the values inside the mask
# (all $N$ for Opt-attack), $T$ its frames and $\phi_t$ the share of frame $t$'s pixels in
# the mask (the frames above show $x^{adv} - x$):
#
# $$\mathrm{MAP} = \frac{255}{N}\sum_{i=1}^{N} \left|x^{adv}_i - x_i\right|, \qquad
# \mathrm{MAP}^* = \frac{255}{|M|}\sum_{i \in M} \left|x^{adv}_i - x_i\right|,$$
#
# $$S = 1 - \frac{1}{T}\sum_{t=1}^{T} \phi_t .$$

# %%
row_name = f"Opt-attack, {model_label}, {goal_name}"
table = metrics.results_table({row_name: results})
print(f"{row_name} on {dataset} test videos {chosen.indices}")
print(f"q={q}, beta={beta}, tol={tol}, beta decays={config.max_beta_decays}, max_iter={max_iter}, "
      f"candidates={num_candidates}, budget={query_budget}, seed={seed}")
table.round(2)

# %% [markdown]
# The share of videos fooled within a given number of queries, with and without a bound on
# the MAP: the paper's "success rate against queries".

# %%
viz.show(viz.success_vs_queries(results, query_budget or max(r.queries for r in results),
                                title=f"Opt-attack on the {model_label}, {goal_name}"),
         "03_success_vs_queries")

# %% [markdown]
# ## Summary
# - The attacker sees only the oracle's top-1 label and probability, and every video it asks
#   about is a query.
# - `g(theta)`, the distance to the boundary along a direction, is measured by binary search
#   with label answers alone; Opt-attack starts from another class's video and minimises `g`
#   with a random gradient-free estimate (eq. (1)) and line-searched steps (eq. (2)) until its
#   stopping rule or budget.
# - FR, MQ (with its phases), MAP, MAP\* and S summarise an attack; untargeted FR is 100 % by
#   construction, so MAP at a given number of queries is what tells attacks apart.
#
# ## Exercises
# Write your answer in place of `None` and run the cell: `exercises.check` says whether it is
# right, and why. `exercises.hint("03.1")` gives a hint.
#
# **03.1** The binary search for `g(theta)` starts from the bracket `[0, 4.0]` (0 not
# adversarial, 4.0 adversarial) and stops when the bracket is narrower than `tol = 0.01`. How
# many queries does it make?

# %%
answer = None
exercises.check("03.1", answer)

# %% [markdown]
# **03.2** A perturbation of L2 norm 2.0 (in `[0, 1]` units) is spread evenly over all values
# of a 16 x 32 x 32 x 3 video. What is its MAP on the 0-255 scale? (Check with
# `metrics.mean_absolute_perturbation`.)

# %%
answer = None
exercises.check("03.2", answer)

# %% [markdown]
# **03.3** Why does the untargeted Opt-attack fool 100 % of the videos whose initialisation
# finishes, at any budget? (a) the small models are weak; (b) every candidate direction starts
# at a video of another class, already adversarial, and the attack only ever keeps adversarial
# points while it shrinks the distance; (c) the query budget is large. Answer with a letter.

# %%
answer = None
exercises.check("03.3", answer)

# %% [markdown]
# **03.4** An untargeted attack with 10 candidate videos first checks the clean video, then
# asks the oracle the class of every candidate. How many queries is that, before any search?
# (Compare with `oracle.counts` above.)

# %%
answer = None
exercises.check("03.4", answer)
