"""The synthetic regression tasks of the MMoE paper (Ma et al., *Modeling Task Relationships in Multi-task Learning
with Multi-gate Mixture-of-Experts*, KDD 2018, §3.2), with their correlation as a knob.

    u1 ⟂ u2 unit vectors in R^d;   w1 = c · u1,   w2 = c · (p · u1 + √(1 − p²) · u2)
    x ~ N(0, I_d);   y_k = w_kᵀ x + Σ_{i=1..m} sin(α_i w_kᵀ x + β_i) + ε_k,   ε_k ~ N(0, 0.01)

The cosine of w1 and w2 is p; the labels' correlation rises with p but is not p itself (the sines). Choices (the
paper does not publish α and β): c = 1, m = 10, ε of variance 0.01 (standard deviation 0.1), and two draws of the
sines, both shared by the two tasks:

* ``sines_draw='fixed'``: α_i = i, β_i = (i − 1)², as one public reproduction does. The high frequencies put most
  of the labels' variance out of reach of the paper's small networks, so what none of them can fit dominates every
  model's loss.
* ``sines_draw='normal'``: α_i, β_i ~ N(0, 1), drawn once per seed, as another does: smooth labels that a small
  network can fit, so the loss shows what the architecture shares between the tasks.
"""

import dataclasses
from typing import Dict

import numpy as np

FEATURE = 'x'   # features x_0 … x_{d-1}
LABELS = ('y1', 'y2')
SINES_DRAWS = ('fixed', 'normal')


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    correlation: float = 0.5      # p
    rows: int = 12_000
    dim: int = 100                # d
    scale: float = 1.0            # c
    sines: int = 10               # m
    noise_std: float = 0.1
    sines_draw: str = 'fixed'     # 'fixed': α_i = i, β_i = (i − 1)²; 'normal': α_i, β_i ~ N(0, 1)
    seed: int = 0

    def validate(self) -> 'TaskConfig':
        if not -1.0 <= self.correlation <= 1.0:
            raise ValueError(f'correlation must lie in [-1, 1], got {self.correlation}')
        for field, least in (('rows', 1), ('dim', 2), ('sines', 0), ('noise_std', 0)):
            if getattr(self, field) < least:
                raise ValueError(f'{field} must be ≥ {least}, got {getattr(self, field)}')
        if self.sines_draw not in SINES_DRAWS:
            raise ValueError(f'sines_draw must be one of {SINES_DRAWS}, got {self.sines_draw!r}')
        return self


def task_weights(config: TaskConfig, rng: np.random.Generator):
    """``(w1, w2)``: c · u1 and c · (p u1 + √(1 − p²) u2) for random orthonormal u1, u2."""
    u, _ = np.linalg.qr(rng.normal(size=(config.dim, 2)))
    u1, u2 = u[:, 0], u[:, 1]
    p = config.correlation
    return config.scale * u1, config.scale * (p * u1 + np.sqrt(1.0 - p ** 2) * u2)


def generate(config: TaskConfig) -> Dict[str, np.ndarray]:
    """``{'x_0' … 'x_{d-1}': [rows] float32, 'y1', 'y2': [rows] float32}``."""
    config.validate()
    rng = np.random.default_rng(config.seed)
    w1, w2 = task_weights(config, rng)
    x = rng.normal(size=(config.rows, config.dim))
    if config.sines_draw == 'normal':
        alpha, beta = rng.normal(size=config.sines), rng.normal(size=config.sines)
    else:
        alpha = np.arange(1, config.sines + 1, dtype=np.float64)
        beta = (alpha - 1.0) ** 2
    columns = {f'{FEATURE}_{j}': x[:, j].astype(np.float32) for j in range(config.dim)}
    for name, w in zip(LABELS, (w1, w2)):
        projection = x @ w
        y = projection + np.sin(alpha[None, :] * projection[:, None] + beta[None, :]).sum(axis=1)
        columns[name] = (y + rng.normal(0.0, config.noise_std, config.rows)).astype(np.float32)
    return columns
