"""One-to-one pairing over a distance matrix: the optimal assignment and the greedy baseline.

Rows are reference images, columns the images of one other folder. A pairing is an array with,
per row, the column it got or -1 (unmatched). Pure: no I/O.

The optimal pairing (`optimal`) is the Hungarian problem, solved by
``scipy.optimize.linear_sum_assignment``. With ``max_distance``, pairs above the limit are
forbidden; the result then holds as many pairs within the limit as possible and, among those,
the smallest total distance. The greedy pairing (`greedy`) is the recipe this command replaces:
take the closest remaining pair, again and again; it is kept to report where it would differ.
"""

from __future__ import annotations

import numpy as np

UNMATCHED = -1


def optimal(dist: np.ndarray, max_distance: float | None = None) -> np.ndarray:
    from scipy.optimize import linear_sum_assignment

    n, m = dist.shape
    partner = np.full(n, UNMATCHED, dtype=np.int64)
    if n == 0 or m == 0:
        return partner
    cost = dist
    allowed = None
    if max_distance is not None:
        allowed = dist <= max_distance
        if not allowed.any():
            return partner
        # A forbidden pair costs more than any full set of allowed pairs, so the solver uses
        # one only when no pairing within the limit covers that row; those are dropped below.
        penalty = float(dist[allowed].max()) * (min(n, m) + 1) + 1.0
        cost = np.where(allowed, dist, penalty)
    rows, cols = linear_sum_assignment(cost)
    if allowed is not None:
        keep = allowed[rows, cols]
        rows, cols = rows[keep], cols[keep]
    partner[rows] = cols
    return partner


def greedy(dist: np.ndarray, max_distance: float | None = None) -> np.ndarray:
    """The closest remaining pair first (ties: lower row, then lower column)."""
    n, m = dist.shape
    partner = np.full(n, UNMATCHED, dtype=np.int64)
    if n == 0 or m == 0:
        return partner
    order = np.argsort(dist, axis=None, kind="stable")
    if max_distance is not None:
        order = order[: int(np.searchsorted(dist.ravel()[order], max_distance, side="right"))]
    row_free = np.ones(n, dtype=bool)
    col_free = np.ones(m, dtype=bool)
    left = min(n, m)
    chunk = max(4096, 4 * left)
    for start in range(0, len(order), chunk):
        rows, cols = np.divmod(order[start : start + chunk], m)
        for r, c in zip(rows.tolist(), cols.tolist()):
            if row_free[r] and col_free[c]:
                partner[r] = c
                row_free[r] = col_free[c] = False
                left -= 1
                if left == 0:
                    return partner
    return partner


def ranks(dist: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """Per row, 1 + how many columns are strictly closer than the one it got (0 when unmatched)."""
    out = np.zeros(len(partner), dtype=np.int64)
    rows = np.flatnonzero(partner != UNMATCHED)
    if len(rows):
        chosen = dist[rows, partner[rows]]
        out[rows] = (dist[rows] < chosen[:, None]).sum(axis=1) + 1
    return out


FAR = 10.0  # a pair this many times farther than the folder's median pair is an outlier
MIN_PAIRS = 5  # fewer pairs give no "typical" distance to compare with


def far_pairs(dist: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """Rows whose pair is FAR times (or more) farther apart than the median pair of the folder.

    In a folder of one model's outputs the true pairs have similar distances; a reference whose
    output is missing is paired with what is left (another picture, or another reference's
    output), much farther. Flagged, not unpaired: the command cannot know it is wrong."""
    rows = np.flatnonzero(partner != UNMATCHED)
    if len(rows) < MIN_PAIRS:
        return np.zeros(0, dtype=np.int64)
    chosen = dist[rows, partner[rows]].astype(np.float64)
    typical = float(np.median(chosen))
    if typical <= 0:
        typical = float(np.min(chosen[chosen > 0])) if np.any(chosen > 0) else 0.0
    if typical <= 0:
        return np.zeros(0, dtype=np.int64)
    return rows[chosen >= FAR * typical]


def total(dist: np.ndarray, partner: np.ndarray) -> float:
    rows = np.flatnonzero(partner != UNMATCHED)
    return float(dist[rows, partner[rows]].sum())


def disagreements(a: np.ndarray, b: np.ndarray) -> int:
    """How many rows the two pairings treat differently (another partner, or one has none)."""
    return int(np.count_nonzero(a != b))


def leftovers(partner: np.ndarray, columns: int) -> np.ndarray:
    """Columns nobody was paired with, in column order."""
    used = np.zeros(columns, dtype=bool)
    used[partner[partner != UNMATCHED]] = True
    return np.flatnonzero(~used)
