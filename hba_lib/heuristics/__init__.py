"""The paper's heuristics: where to perturb (salient regions, key frames). They may query the
oracle but know nothing of optimizers."""
