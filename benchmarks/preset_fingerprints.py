"""Fingerprints of every preset's attack: the queries and a digest of the returned videos.

Run it at two commits and compare the printouts: identical lines mean the same queries and the
same adversarial videos, bit for bit (issue 22: with no probe subspace every preset must be
exactly what it was). Default checkpoints, 2 synthetic test videos a model, 5 candidates, 600
queries an attack, seed 0, CPU, 1 torch thread; a minute or two.

    .venv/bin/python benchmarks/preset_fingerprints.py > /tmp/new.txt
    git worktree add /tmp/old <commit>; cd /tmp/old
    PYTHONPATH=$PWD /path/to/.venv/bin/python benchmarks/preset_fingerprints.py > /tmp/old.txt
    diff /tmp/old.txt /tmp/new.txt && echo identical
"""

from __future__ import annotations

import hashlib

import torch

from hba_lib.attacks import attack_set, make_attack
from hba_lib.data.synthetic import SyntheticActions
from hba_lib.models import load_default_model
from hba_lib.oracle import Oracle


def main() -> None:
    torch.set_num_threads(1)
    for name in ("c3d", "lrcn"):
        model = load_default_model(name)
        chosen = attack_set(SyntheticActions(split="test"), model, 2, 5, seed=0)
        for config in ("opt", "temporal", "temporal+spatial"):
            for optimizer in ("opt", "sign-opt", "opt-relative"):
                attack = make_attack(config, optimizer=optimizer, query_budget=600, seed=0)
                res = attack.run_many(Oracle(model), chosen.xs, chosen.labels,
                                      candidates=chosen.candidates, progress=False)  # fmt: skip
                digest = hashlib.sha256(b"".join(r.x_adv.numpy().tobytes() for r in res))
                print(name, config, optimizer, [r.queries for r in res],
                      digest.hexdigest()[:16], flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
