"""Attacks: each one a query process over the black-box oracle (see ``common``).

- :class:`~hba_lib.attacks.opt_attack.OptAttack`: Opt-attack for videos, the paper's baseline.
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
from hba_lib.attacks.opt_attack import OptAttack, OptAttackConfig, run_search

__all__ = [
    "AttackResult",
    "AttackSet",
    "attack_set",
    "OptAttack",
    "OptAttackConfig",
    "Request",
    "TraceRow",
    "drive",
    "drive_many",
    "run_search",
]
