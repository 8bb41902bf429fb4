"""Attacks: each one a query process over the black-box oracle (see ``common``).

- :class:`~hba_lib.attacks.opt_attack.OptAttack`: Opt-attack for videos, the paper's baseline.
- :class:`~hba_lib.attacks.sign_opt.SignOPT`: Sign-OPT, one query a probe, on the same masks.
- :class:`~hba_lib.attacks.hsja.HopSkipJump`: HopSkipJump's boundary steps, on the same masks
  (with probes in a low-frequency subspace: QEBA's method); :class:`~hba_lib.attacks.hsja.
  SemicircleBoundary`, the same normal with CGBA's semicircular boundary search.
- :class:`~hba_lib.attacks.heuristic.HeuristicAttack`: Algorithm 2 (saliency, key frames, any
  optimizer); :func:`~hba_lib.attacks.heuristic.make_attack` builds the paper's configurations.
- ``hba_lib.attacks.peers``: ART's Sign-OPT and HopSkipJump through the same counting oracle
  (needs the optional extra ``peers``; imported on demand, never here).
"""

from hba_lib.attacks.common import (
    AttackResult,
    AttackSet,
    Request,
    TraceRow,
    attack_set,
    drive,
    drive_many,
)
from hba_lib.attacks.heuristic import (
    OPTIMIZERS,
    PRESETS,
    HeuristicAttack,
    HeuristicConfig,
    make_attack,
    make_optimizer,
)
from hba_lib.attacks.hsja import HopSkipJump, HopSkipJumpConfig, SemicircleBoundary
from hba_lib.attacks.opt_attack import OPT_PRESETS, OptAttack, OptAttackConfig, run_search
from hba_lib.attacks.sign_opt import SignOPT, SignOPTConfig

__all__ = [
    "AttackResult",
    "AttackSet",
    "attack_set",
    "HeuristicAttack",
    "HeuristicConfig",
    "HopSkipJump",
    "HopSkipJumpConfig",
    "SemicircleBoundary",
    "make_attack",
    "make_optimizer",
    "OPTIMIZERS",
    "OPT_PRESETS",
    "PRESETS",
    "SignOPT",
    "SignOPTConfig",
    "OptAttack",
    "OptAttackConfig",
    "Request",
    "TraceRow",
    "drive",
    "drive_many",
    "run_search",
]
