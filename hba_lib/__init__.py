"""hba_lib: heuristic black-box adversarial attacks on video recognition models.

The library behind the notebooks, in layers, each a folder (or one module), each importing only
from the layers before it (``tests/test_architecture.py`` walks every import and fails on an
upward import or a circle, naming it):

1. ``paths``: where things live (the package, the repository, caches, ``../shared``).
2. ``data/``: synthetic clips, real UCF-101 / HMDB-51 (download, archives, splits, decoding,
   16-frame snippet caches); ``hba_lib.data.get_dataset`` is the one entry.
3. ``models/``: the targets (3D-ResNeXt-101 "C3D", LRCN, small variants) and their training.
4. ``oracle/``: the black box: the counting oracle (and ``remote``: the oracle of a served
   model), goals, query processes and the boundary searches, the distances of a perturbation
   (MAP, MAP*, L2, L-inf, S).
5. ``serve/``: the model served over HTTP (``python -m hba_lib.serve``): key, budget, audit log.
6. ``heuristics/``: saliency (phi) and key frames (Algorithm 1, omega).
7. ``attacks/``: what every attack shares (``base``, ``common``), Opt-attack, Sign-OPT,
   Algorithm 2 (``heuristic``), the ART peers.
8. ``metrics``: FR, MQ, results tables, traces and success curves over many results.
9. ``experiments/``: resumable sweeps (local, Ray), their store, the paper's tables as data.
10. ``viz``: every figure the notebooks show.
11. ``exercises/``, ``demo``, ``book/``: the notebooks' exercises, the default run
    (``make demo``) and the course as an HTML site checked in a browser (``make book``).

Data flows as in the paper: clean video -> oracle (counts every query) -> initial direction ->
masks (saliency, key frames) -> Opt-attack / Sign-OPT updates -> adversarial video -> metrics
-> tables and figures. Conventions (layouts, ranges, paths) are in CONTRIBUTING.md.
"""

__version__ = "0.1.0"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("paths", ("hba_lib", "hba_lib.paths")),
    ("data", ("hba_lib.data",)),
    ("models", ("hba_lib.models",)),
    ("oracle", ("hba_lib.oracle",)),
    ("serve", ("hba_lib.serve",)),
    ("heuristics", ("hba_lib.heuristics",)),
    ("attacks", ("hba_lib.attacks",)),
    ("metrics", ("hba_lib.metrics",)),
    ("experiments", ("hba_lib.experiments",)),
    ("figures", ("hba_lib.viz",)),
    ("notebooks", ("hba_lib.exercises", "hba_lib.demo", "hba_lib.book")),
)
"""The layers in order, each with the modules (and packages) it holds; a module may import
from its own layer and the layers before it only."""
