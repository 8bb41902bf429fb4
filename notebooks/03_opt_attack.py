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
# # 03 · The black box and the Opt-attack baseline
#
# The attacker of the paper sees a video classifier only through its **top-1 label and that
# label's probability**: no logits, no gradients, no other classes. Every such answer is a
# **query**, and the paper's main cost measure (MQ) is the number of queries an attack needs.
#
# In `hba_lib` that view of the model is one object, `hba_lib.oracle.Oracle`: it answers a batch
# of videos with `(labels, probs)`, counts every video it evaluates (by phase: initialisation,
# optimisation, checks), enforces a query budget exactly, and offers no way back to the model.
# The attack goal (`hba_lib.goals.Untargeted` / `Targeted`) and the attack
# (`hba_lib.attacks.OptAttack`) are separate objects.
#
# The paper builds on **Opt-attack** (Cheng et al., ICLR 2019): instead of searching for the
# adversarial video itself, it searches for a **direction** `theta` (a unit-norm video-shaped
# tensor) and minimises
#
# $$g(\theta) = \min\{\lambda > 0 : F(x + \lambda\theta) \neq y\},$$
#
# the distance from the clean video `x` to the decision boundary along `theta`. `g` is found
# with label queries alone (a binary search along the ray), and it is minimised with a random
# gradient-free estimate (eq. (1) of the paper). This notebook
# 1. draws the boundary search along one direction;
# 2. attacks a handful of correctly classified synthetic test videos with the default C3D;
# 3. plots distance against queries, shows clean / adversarial / perturbation frames (the
#    paper's Figure 2 style), and tabulates FR, MQ and MAP.
#
# Defaults are CPU-small (a few minutes): a **query budget** of a few thousand per video stops
# the attack well before it converges (the prototype of `algorithm.md` converged at a median of
# 10.6k queries). `params/03_opt_attack_full.yaml` runs it at paper scale.

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
import matplotlib.pyplot as plt
import numpy as np
import torch

from hba_lib import metrics, viz
from hba_lib.attacks import OptAttack, OptAttackConfig, attack_set, run_search
from hba_lib.attacks.opt_attack import untargeted_initial_search
from hba_lib.datasets import get_dataset
from hba_lib.goals import Untargeted
from hba_lib.models import load_default_model, load_model_checkpoint
from hba_lib.oracle import Oracle

torch.set_num_threads(threads)
if checkpoint:
    model = load_model_checkpoint(checkpoint, device=device)
else:
    model = load_default_model(model_name, device=device)
data = get_dataset(dataset, "test", **({"size": size} if dataset == "synthetic" else {}))
chosen = attack_set(data, model, n_videos, num_candidates, targeted=targeted, seed=seed)
print(data)
print("attacking test videos", chosen.indices, "classes", [data.classes[y] for y in chosen.labels])

# %% [markdown]
# ## The oracle: what the attacker sees
#
# One oracle per attacked video, so its counter is that video's query count. Asking it about
# the clean video and the candidate videos costs one query each.

# %%
x, y = chosen.xs[0], chosen.labels[0]
oracle = Oracle(model)
answer = oracle(x, "check")
print(f"clean video: label {int(answer.labels[0])} ({data.classes[int(answer.labels[0])]}), "
      f"p = {float(answer.probs[0]):.3f}; true class {y}")
cand = oracle(chosen.candidates[0], "init")
print("candidates' labels:", cand.labels.tolist())
print("queries so far:", oracle.counts)

# %% [markdown]
# ## g(theta) along one direction
#
# Take a candidate video `x_hat` of another class, `p = x_hat - x` and `theta = p / ||p||`:
# at `lambda = ||p||` the ray reaches `x_hat`, adversarial by construction. Below, the oracle's
# answers on a grid of `lambda` (for the picture only: 40 extra queries), and the points that
# the fine-grained + binary search of the attack actually queries: it halves the bracket
# until it is narrower than `tol`, so `g(theta)` costs `log2(||p|| / tol)` queries.

# %%
goal = Untargeted(y)
i = int(goal.is_adversarial(cand.labels).nonzero()[0, 0])
p = chosen.candidates[0][i] - x
theta = p / p.norm()
grid = np.linspace(0, float(p.norm()), 40)
picture = Oracle(model)
ans = picture(torch.stack([(x + lam * theta).clamp(0, 1) for lam in grid]), "check")
g, steps = run_search(oracle, x, theta, untargeted_initial_search(float(p.norm()), np.inf, tol,
                                                                    known_adversarial=True), goal)
fig, ax = plt.subplots(figsize=(7, 2.6))
adv = goal.is_adversarial(ans.labels).numpy()
ax.scatter(grid[~adv], ans.probs.numpy()[~adv], c="tab:blue", s=14, label=f"label {y} (true)")
ax.scatter(grid[adv], ans.probs.numpy()[adv], c="tab:red", s=14, label="another label")
for k, (lam, a) in enumerate(steps):
    ax.axvline(lam, color="tab:red" if a else "tab:blue", alpha=0.25 + 0.75 * k / len(steps), lw=1)
ax.axvline(g, color="k", ls="--", label=f"g(theta) = {g:.3f}")
ax.set_xlabel("lambda (L2 distance in [0, 1] units)")
ax.set_ylabel("top-1 probability")
ax.set_title(f"boundary search along theta: {len(steps)} queries (vertical lines, light to dark)")
ax.legend(fontsize=7, loc="lower left")
viz.savefig(fig, "03_g_theta_search")
plt.show()

# %% [markdown]
# ## Opt-attack on a handful of videos
#
# `OptAttack` runs the whole algorithm of `algorithm.md`: candidate directions, the
# random-gradient-free estimate with `q` probes, backtracking line search, `beta` decay and
# the stopping rule, every query counted. The `q` probes' local searches run in **lockstep**
# (one batched oracle call per search step), and `run_many` also runs the videos in lockstep,
# each on its own oracle: the queries are exactly those of the one-query-at-a-time algorithm,
# only the forward passes are batched.

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
# Each attack's trace holds the best distance `g` (and its MAP) after initialisation and
# after every iteration. The first point sits at the initialisation's cost: the candidates,
# their class checks and their boundary searches.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
for idx, r in zip(chosen.indices, results):
    qs = [row.queries for row in r.trace]
    axes[0].plot(qs, [row.distance for row in r.trace], marker=".", ms=3, label=f"video {idx}")
    axes[1].plot(qs, [row.map for row in r.trace], marker=".", ms=3)
axes[0].set_ylabel("L2 distance g(theta)")
axes[1].set_ylabel("MAP (0-255)")
for ax in axes:
    ax.set_xlabel("queries")
    ax.set_yscale("log")
axes[0].legend(fontsize=7)
fig.suptitle(f"Opt-attack, {model_name}, budget {query_budget} queries per video")
viz.savefig(fig, "03_distance_vs_queries")
plt.show()

# %% [markdown]
# ## What the perturbation looks like
#
# Clean frames, adversarial frames, and the perturbation amplified to be visible (grey = 0),
# every other frame of the first successfully attacked video.

# %%
k = next((j for j, r in enumerate(results) if r.success), 0)
r = results[k]
x = chosen.xs[k]
fig = viz.frame_strip(
    [x, r.x_adv, viz.amplify(r.x_adv - x)],
    row_labels=[f"clean: {data.classes[chosen.labels[k]]}",
                f"adversarial: {data.classes[r.label] if r.label is not None else '?'}",
                "perturbation (amplified)"],
    frames=range(0, x.shape[1], 2),
    title=f"Opt-attack: MAP {r.map:.2f} (0-255), L2 {r.distance:.2f}, {r.queries} queries",
)
viz.savefig(fig, "03_frames")
plt.show()

# %% [markdown]
# ## Results
#
# FR: share of attacked videos whose final video the oracle's final check found adversarial.
# MQ: median total queries, **failures included** at what they spent. MAP: mean absolute
# perturbation on the 0-255 scale, over the successful videos. The stopping rule and
# tolerances decide MQ, so they go beside it.

# %%
table = metrics.results_table({"Opt-attack": results})
print(f"q={q}, beta={beta}, tol={tol}, beta decays={config.max_beta_decays}, "
      f"candidates={num_candidates}, budget={query_budget}, seed={seed}")
table.round(2)

# %%
budgets = np.linspace(0, query_budget or max(r.queries for r in results), 50).astype(int)
fig, ax = plt.subplots(figsize=(6, 3))
for limit in (None, 10.0, 5.0):
    label = "any MAP" if limit is None else f"MAP <= {limit:g}"
    ax.plot(budgets, 100 * metrics.success_curve(results, budgets, max_map=limit), label=label)
ax.set_xlabel("queries")
ax.set_ylabel("videos fooled %")
ax.legend(fontsize=8)
ax.set_title("success against queries")
viz.savefig(fig, "03_success_vs_queries")
plt.show()
