"""Batched constant-velocity Kalman filter: every track's state advances in one numpy call.

The state of a track is ``[measured (m), velocity (d)]``: the first ``m`` entries are what a
detection measures (a box), the last ``d`` entries the rates of the first ``d`` of them. The
measurement matrix is therefore a selection of the first ``m`` entries, which keeps the
update to slicing instead of matrix products with H.
"""

from __future__ import annotations

import numpy as np


class BatchKalman:
    """Constant-velocity Kalman filter over N independent tracks.

    Args:
        measure_var: (m,) measurement noise variances R.
        process_var: (m + d,) process noise variances Q per unit time step.
        init_var: (m + d,) initial state variances P0 (large for the unobserved velocities).
        n_rates: d, the number of leading measured entries that get a velocity.

    With diagonal noises, as here, P never couples two measured entries (each is a 1x1 or,
    with its rate, a 2x2 block), so S = H P H' + R is diagonal and ``update`` inverts it by
    reciprocals: the very numbers LAPACK returns for a diagonal matrix, without the ~20 us a
    batched ``np.linalg.inv`` call costs. Any other S takes the full inverse.
    """

    def __init__(self, measure_var, process_var, init_var, n_rates: int):
        self.R = np.diag(np.asarray(measure_var, dtype=np.float64))
        self.q = np.asarray(process_var, dtype=np.float64)
        self._q_diag = np.diag(self.q)
        self.p0 = np.diag(np.asarray(init_var, dtype=np.float64))
        self.m, self.d = len(self.R), n_rates
        self.n = self.m + self.d
        assert self.q.shape == (self.n,) and self.p0.shape == (self.n, self.n)
        self.x = np.zeros((0, self.n))
        self.P = np.zeros((0, self.n, self.n))
        self._transition: tuple[float | None, np.ndarray | None] = (None, None)

    def __len__(self) -> int:
        return len(self.x)

    def transition(self, dt: float) -> np.ndarray:
        """(n, n) state transition for a step of ``dt`` time units (read-only: the last one is reused)."""
        if self._transition[0] != dt:
            F = np.eye(self.n)
            F[np.arange(self.d), self.m + np.arange(self.d)] = dt
            F.flags.writeable = False
            self._transition = (dt, F)
        return self._transition[1]

    def add(self, z: np.ndarray) -> None:
        """Start tracks at measurements ``z`` (K, m) with zero velocity."""
        old, total = len(self.x), len(self.x) + len(z)
        x, P = np.zeros((total, self.n)), np.empty((total, self.n, self.n))
        x[:old], x[old:, : self.m] = self.x, z
        P[:old], P[old:] = self.P, self.p0
        self.x, self.P = x, P

    def keep(self, mask: np.ndarray) -> None:
        self.x, self.P = self.x[mask], self.P[mask]

    def predict(self, dt: float = 1.0) -> None:
        """Advance every track by ``dt`` time units: x <- F x, P <- F P F' + Q dt.

        Matrix products, though F only adds ``dt`` times the rates to the first ``d`` entries:
        the equivalent row and column updates on views of P run numpy's strided loops with
        overlap checks and cost about twice as much for tracker-sized sets (same numbers at dt = 1).
        """
        if not len(self.x):
            return
        F = self.transition(dt)
        self.x = self.x @ F.T
        self.P = F @ self.P @ F.T + self._q_diag * max(dt, 1e-6)

    def innovation_cov(self, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """(K, m, m) covariance of the predicted measurement, S = H P H' + R."""
        return self.P[idx, : self.m, : self.m] + self.R

    def update(self, idx: np.ndarray, z: np.ndarray) -> None:
        """Correct tracks ``idx`` (K,) with measurements ``z`` (K, m); innovations must be wrapped by the caller."""
        if not len(idx):
            return
        P, x = self.P[idx], self.x[idx]
        S = P[:, : self.m, : self.m] + self.R
        diag = np.diagonal(S, axis1=1, axis2=2)
        if np.count_nonzero(S) == np.count_nonzero(diag) == diag.size:  # diagonal S: see the class docstring
            K = P[:, :, : self.m] * (1.0 / diag)[:, None, :]  # P H' S^-1: (K, n, m)
        else:
            K = P[:, :, : self.m] @ np.linalg.inv(S)
        self.x[idx] = x + (K @ (z - x[:, : self.m])[:, :, None])[:, :, 0]
        self.P[idx] = P - K @ P[:, : self.m, :]
