"""The black box and what is measured through it: the counting oracle, attack goals, query
processes (the searches for ``g(theta)``) and the distances of a perturbation.

- :mod:`hba_lib.oracle.core`: :class:`Oracle`, the only thing an attack touches.
- :mod:`hba_lib.oracle.goals`: untargeted / targeted success.
- :mod:`hba_lib.oracle.queries`: query processes and Opt-attack's boundary searches.
- :mod:`hba_lib.oracle.subspace`: low-frequency subspaces the random probes are drawn in.
- :mod:`hba_lib.oracle.distances`: MAP, MAP*, L2, L-inf, sparsity S.
- :mod:`hba_lib.oracle.closest`: the closest adversarial video seen, what a cut attack returns.
- :mod:`hba_lib.oracle.remote`: :class:`~hba_lib.oracle.remote.RemoteOracle`, the oracle of a
  model served over HTTP by ``python -m hba_lib.serve`` (imported on use, not here).

``from hba_lib.oracle import Oracle`` keeps working as before the move.
"""

from hba_lib.oracle.core import (
    MAX_BATCH_VALUES,
    NUM_FRAMES,
    PHASES,
    Answer,
    BudgetExhausted,
    NonFiniteOutputError,
    Oracle,
    OracleUnavailable,
    cudnn_benchmark,
    exact_float32,
    query_jointly,
)

__all__ = [
    "Answer",
    "BudgetExhausted",
    "MAX_BATCH_VALUES",
    "NUM_FRAMES",
    "NonFiniteOutputError",
    "Oracle",
    "OracleUnavailable",
    "PHASES",
    "cudnn_benchmark",
    "exact_float32",
    "query_jointly",
]
