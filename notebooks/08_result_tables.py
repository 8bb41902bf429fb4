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
# # 08 · The result tables: every model and data set, beside the paper's Table 6
#
# The paper's main result, Table 6, attacks C3D and LRCN on UCF-101 and HMDB-51 with the three
# **configurations** (Opt-attack, + temporal, + temporal + spatial), untargeted and targeted,
# and reports MQ, MAP, MAP\* and S. This notebook builds the same table for every model and
# data set at hand, as one resumable **sweep**, sets the paper's rows beside it, and adds what a
# table of medians hides: the **success-rate curve** of each attack (how many videos are fooled
# within a given perturbation as the queries grow) and the perturbations themselves (the
# paper's Figure 2).
#
# ## What you will learn
# - how to run Table 6 as one sweep over models, data sets, configurations and goals, and read
#   it beside the paper's numbers;
# - what the success-rate curves add: the share of videos fooled at MAP <= 1, 2, 4 within each
#   number of queries, for every configuration, optimizer and (untargeted) ART's attacks;
# - why targeted attacks need far larger budgets, and what the heuristics do to them.
#
# **Time to run:** about 2-3 minutes on 2 CPU cores at the defaults (the two default synthetic
# models, 3 test videos, 1,500 queries untargeted; targeted on C3D only, Opt-attack and
# +Temporal+Spatial, 3,000 queries; real data sets are skipped when their caches or
# checkpoints are missing); at paper scale
# (`params/08_result_tables_full.yaml`: UCF-101 and HMDB-51, 100,000 / 500,000 queries) days
# on a GPU, resumable. **Needs:** nothing at the defaults; at paper scale the snippet caches
# (`data_scripts/`) and the checkpoints notebook 02 trains on each data set.

# %% tags=["parameters"]
models = ["c3d", "lrcn"]  # model names: the default synthetic checkpoints, or keys of checkpoints
datasets = ["synthetic", "ucf101", "hmdb51"]  # each one's test split, when it is available
checkpoints = {}  # "model/dataset" -> a checkpoint trained on that data set (notebook 02's runs)
size = 32  # synthetic frame size (the default checkpoints were trained at 32)
n_videos = 3  # correctly classified test videos per model and data set
num_candidates = 3  # candidate starts per video (Algorithm 1 searches key frames on each)
configs = ["opt", "temporal", "temporal+spatial"]  # untargeted: the paper's three configurations
targeted_configs = ["opt", "temporal+spatial"]  # targeted ([] to skip the targeted goal)
targeted_models = ["c3d"]  # the models attacked targeted (the goal costs several times more)
optimizer = "opt"  # the optimizer of the table (the paper's: Opt-attack)
query_budget = 1500  # per video and configuration, untargeted
query_budget_targeted = 3000  # per video and configuration, targeted
curve_optimizers = ["opt", "sign-opt"]  # for the curves, on temporal+spatial (OPTIMIZERS)
map_bounds = [1.0, 2.0, 4.0]  # the curves' MAP bounds (0-255)
peers = True  # ART's Sign-OPT and HopSkipJump in the curves (untargeted, if ART is installed)
store = ""  # results store; "": 08_result_tables.sqlite in this run's output folder
seed = 0
threads = 1
device = "cpu"

# %%
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from hba_lib import exercises, metrics, paths, viz
from hba_lib.data import get_dataset
from hba_lib.data.video import to_model_layout
from hba_lib.experiments import (
    expand,
    job_inputs,
    load_adversarial,
    load_results,
    paper_tables,
    run_sweep,
    sweep_from_dict,
)
from hba_lib.experiments.summary import to_results
from hba_lib.experiments.sweep import load_dataset, load_model

torch.set_num_threads(threads)
store_path = paths.resolve(store) if store else paths.output_dir() / "08_result_tables.sqlite"
pairs, rows = [], []
for ds in datasets:
    reason = ""
    if ds != "synthetic":
        try:
            get_dataset(ds, "test")
        except (FileNotFoundError, ValueError) as exc:
            reason = f"no {ds} test data: {str(exc).splitlines()[0][:160]}"
    for m in models:
        spec = checkpoints.get(f"{m}/{ds}") or (m if ds == "synthetic" else "")
        why = reason or ("" if spec else f"no {m} checkpoint trained on {ds}: set "
                         f"checkpoints['{m}/{ds}'] (notebook 02 trains one)")  # fmt: skip
        if not why:
            spec = spec if spec == m else str(paths.resolve(spec))
            pairs.append((m, ds, spec))
        rows.append({"model": m, "data set": ds, "attacked": not why, "why not": why})
status = pd.DataFrame(rows)
for _, r in status[~status["attacked"]].iterrows():
    print(f"skipped {r['model']} on {r['data set']}: {r['why not']}")
print(f"store {store_path}")
status

# %% [markdown]
# ## Table 6 as one sweep
#
# One sweep per (model, data set) pair and goal (targeted only for `targeted_models`): the
# configurations of the table at the goal's budget (the paper's defaults: untargeted omega 3,
# phi 0.6; targeted omega 30, phi 0.8), and, for the first pair, untargeted, Algorithm 2 with
# each optimizer of `curve_optimizers` for the curves below. Every job's row is committed to the store as it finishes, with its
# adversarial video, so a rerun skips what is done.

# %%
goal_configs = {"untargeted": list(configs), "targeted": list(targeted_configs)}
goal_budgets = {"untargeted": query_budget, "targeted": query_budget_targeted}
sweeps = []
for i, (m, ds, spec) in enumerate(pairs):
    entry = {"name": ds, "split": "test", **({"size": size} if ds == "synthetic" else {})}
    for goal, cfgs in goal_configs.items():
        if goal == "targeted" and m not in targeted_models:
            continue
        attacks = {c: {"attack": c, "optimizer": optimizer, "query_budget": goal_budgets[goal]}
                   for c in cfgs}  # fmt: skip
        if i == 0 and goal == "untargeted":
            attacks |= {f"temporal+spatial / {o}": {"attack": "temporal+spatial", "optimizer": o,
                                                    "query_budget": query_budget}
                        for o in curve_optimizers if o != optimizer}  # fmt: skip
        if attacks:
            sweeps.append(sweep_from_dict({
                "name": f"08 {m} {ds} {goal}", "model": spec, "dataset": entry,
                "videos": {"n": n_videos, "seed": seed}, "goal": goal, "seeds": [seed],
                "num_candidates": num_candidates, "attacks": attacks,
            }))  # fmt: skip
for sweep in sweeps:
    print(sweep.name, run_sweep(sweep, store_path, device=device, threads=threads,
                                save_adversarial=True))  # fmt: skip
results = load_results(store_path)

# %% [markdown]
# ## The table, beside the paper's
#
# A row per model / data set, goal and configuration: **FR** (share of videos fooled), **MQ**
# (median queries, failures at the budget), **MAP** and **MAP\*** (0-255, over the whole video
# and over the masked region), **S** (sparsity, $S = 1 - \frac{1}{T}\sum_t \phi_t$), then the
# paper's row for the same model and goal (`paper row`: UCF-101 for the synthetic data set).
# The paper runs every attack to convergence (FR 100 %); here each attack stops at its budget
# at the latest, so an MQ at the budget means the budget ran out, not that the attack
# converged, and the comparison is in FR, MAP and S. `MQ init` is the median of the queries
# spent before the optimizer started (candidates and, with key frames, Algorithm 1's searches
# from the starts that survive candidate pruning). `L2` ([0, 1] units) and `Linf` (0-255) are
# the mean L2 and L-inf of the perturbations, beside MAP: MAP averages over every pixel and so
# favours sparse perturbations by construction, while L2 is what the peers minimise. The
# table is also written as CSV and Markdown
# (`08_table6.*`) to this run's output folder, which `make demo` prints at its end.

# %%
labels = {spec: (m, f"{m}" if spec == m else f"{m} ({spec})") for m, _, spec in pairs}
table = paper_tables.table6(results, labels)
csv, md = paper_tables.save_table(table, "08_table6")
print(f"{len(pairs)} model / data pairs, {n_videos} videos each, optimizer {optimizer}, budgets "
      f"{query_budget:,} / {query_budget_targeted:,} (untargeted / targeted) -> {md.name}")  # fmt: skip
display(Markdown(paper_tables.markdown(table)))

# %%
viz.show(viz.table6_vs_paper(table, f"Table 6: this run ({n_videos} videos, budgets "
                                    f"{query_budget:,} / {query_budget_targeted:,}) beside the "
                                    "paper's matching rows"),
         "08_table6")  # fmt: skip

# %% [markdown]
# The hatched bars are the paper's. What to look for: S depends on the masks alone, so it is
# where this run and the paper should agree in trend: 0 for Opt-attack, higher with key
# frames, highest with key frames and salient regions in the paper. MAP depends on the model,
# the video size and how far each attack got within its budget.
#
# ## Success rate against queries
#
# A median hides how the videos are spread. For each attack, the share of attacked videos with
# an adversarial video of MAP at most $m$ found within $b$ queries,
#
# $$\mathrm{SR}_m(b) = \frac{1}{N}\sum_{i=1}^{N} \mathbf{1}\left[\min_{q \le b} \mathrm{MAP}_i(q) \le m\right],$$
#
# where $\mathrm{MAP}_i(q)$ is the MAP of video $i$'s best adversarial video after $q$ queries
# (each attack's **trace**; a failed attack never counts). Curves for the first model / data
# pair, untargeted: the three configurations, Algorithm 2 with each optimizer, and ART's
# Sign-OPT and HopSkipJump (dashed) on the same videos, oracle and budget.

# %%
m0, ds0, spec0 = pairs[0]
entry0 = {"size": size} if ds0 == "synthetic" else {}  # get_dataset's arguments
budgets = np.linspace(0, query_budget, 81).astype(int)[1:]
first = results[(results["model"] == spec0) & (results["dataset"] == ds0)
                & (results["goal"] == "untargeted")]  # fmt: skip
runs = {f"{c} / {optimizer}": to_results(first[first["attack"] == c]) for c in configs}
runs |= {f"temporal+spatial / {o}": to_results(first[first["attack"] == f"temporal+spatial / {o}"])
         for o in curve_optimizers if o != optimizer}  # fmt: skip
dashed = []
if peers:
    from hba_lib.attacks.peers import art_available, hop_skip_jump, sign_opt_untargeted
    from hba_lib.oracle import Oracle

    if art_available():
        sweep0 = next(s for s in sweeps if s.goal == ["untargeted"] and s.model == [spec0])
        jobs = [j for j in expand(sweep0) if j.attack == next(iter(sweep0.attacks))]
        model0 = load_model(spec0, device=device)
        k = len(load_dataset(ds0, "test", entry0).classes)
        peer_runs = {"ART Sign-OPT (ART's random start)": [], "ART HopSkipJump": []}
        for job in jobs:
            inp = job_inputs(job)
            peer_runs["ART Sign-OPT (ART's random start)"].append(sign_opt_untargeted(
                Oracle(model0, budget=query_budget), inp.x, inp.label, k, seed=seed))
            peer_runs["ART HopSkipJump"].append(hop_skip_jump(
                Oracle(model0, budget=query_budget), inp.x, inp.label, k, inp.candidates,
                seed=seed))  # fmt: skip
        runs |= peer_runs
        dashed = list(peer_runs)
    else:
        print("ART is not installed (pip install -e '.[peers]'): peers skipped")
curves = {name: (budgets, {b: metrics.success_curve(rs, budgets, max_map=b) for b in map_bounds})
          for name, rs in runs.items() if rs}  # fmt: skip
viz.show(viz.success_rate_curves(curves, f"{m0}, {ds0}, untargeted: videos fooled within a MAP "
                                         f"bound ({len(first['video'].unique())} videos)",
                                 dashed=dashed),
         "08_success_rate")  # fmt: skip
pd.DataFrame({name: {f"fooled at MAP <= {b:g}, {query_budget:,} queries (%)": 100 * c[b][-1]
                     for b in map_bounds} for name, (_, c) in curves.items()}).T.round(0)  # fmt: skip

# %% [markdown]
# ## What the perturbations look like (the paper's Figure 2)
#
# The clean frames of the first attacked video, then each configuration's perturbation
# (amplified with one common gain, grey = 0), read back from the store's adversarial videos:
# Opt-attack spreads it over every frame, key frames leave whole frames grey, and the saliency
# mask keeps it on the salient pixels of the key frames.

# %%
clean_set = load_dataset(ds0, "test", entry0)
for goal in [g for g in ("untargeted", "targeted") if goal_configs[g]]:
    part = results[(results["model"] == spec0) & (results["dataset"] == ds0)
                   & (results["goal"] == goal) & (results["status"] == "done")]  # fmt: skip
    if part.empty:
        continue
    video = int(part["video"].min())
    strips = {
        f"{r.attack}{'' if r.success else ' (not adversarial)'}": SimpleNamespace(
            x_adv=load_adversarial(store_path, r.key), map=r.map, sparsity=r.sparsity)
        for r in part[part["video"] == video].itertuples()
        if r.attack in goal_configs[goal]
    }  # fmt: skip
    x0 = to_model_layout(np.asarray(clean_set.videos[video]))
    viz.show(viz.perturbation_strips(x0, strips, range(x0.shape[1]),
                                     f"{m0}, {ds0}, test video {video}, {goal}, optimizer "
                                     f"{optimizer}"),
             f"08_perturbation_strips_{goal}")  # fmt: skip

# %% [markdown]
# ## Summary
# - Table 6 is one sweep over models, data sets, configurations and goals; its store resumes,
#   and `paper_tables.table6` lays it out beside the paper's rows.
# - The sparsity S is set by the masks and follows the paper: 0 for Opt-attack, higher with key
#   frames, highest with key frames and salient regions.
# - MQ at a fixed budget says little; the success-rate curves show how many videos each attack
#   fools within a MAP bound at every number of queries, and let attacks with different
#   stopping rules (ART's) be compared fairly.
# - Targeted attacks need many more queries: the paper's medians are 10-30 times the
#   untargeted ones, and a small budget leaves some videos unfooled (FR < 100 %).
#
# ## Exercises

# %% [markdown]
# **08.1** In the paper's Table 6, C3D on UCF-101 untargeted: Opt-attack MQ 17,997.5,
# +Temporal+Spatial MQ 12,940.0. By what share did the heuristics cut the median queries? (a
# fraction, to 2 decimals)

# %%
answer = None
exercises.check("08.1", answer)

# %% [markdown]
# **08.2** Two attacks on the same 10 videos and budget: A fools 10 videos, with MAP between 5
# and 9; B fools 8, all with MAP under 2. At a MAP bound of 4, which one's success-rate curve
# ends higher? Answer "A" or "B".

# %%
answer = None
exercises.check("08.2", answer)

# %% [markdown]
# **08.3** The paper's targeted rows: C3D UCF-101 Opt-attack MQ 207,944.5, +Temporal 313,229.0.
# Why can adding key frames raise the queries of a targeted attack? (a) the key-frame search
# costs queries in the initialisation (the paper: 39.75 % of them) and the sparser start needs
# more optimisation to reach the target class; (b) key frames make the video larger; (c) the
# targeted attack does not use key frames.

# %%
answer = None
exercises.check("08.3", answer)
