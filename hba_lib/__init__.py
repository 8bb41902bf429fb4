"""hba_lib: heuristic black-box adversarial attacks on video recognition models.

The library behind the notebooks. Data flows as in the paper:
clean video -> oracle (counts every query) -> initial direction -> masks (saliency,
key frames) -> Opt-attack updates -> adversarial video -> metrics -> tables and figures.

Conventions (layouts, ranges, paths) are in CONTRIBUTING.md.
"""

__version__ = "0.1.0"
