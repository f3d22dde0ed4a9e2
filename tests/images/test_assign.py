"""Optimal and greedy pairing over distance matrices (pure; numpy and scipy only)."""

from __future__ import annotations

import itertools

import pytest
from tests.images.conftest import needs_extra

pytestmark = needs_extra
np = pytest.importorskip("numpy", reason="the images extra is not installed")
pytest.importorskip("scipy", reason="the images extra is not installed")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mlops_cli.images import assign  # noqa: E402

UN = assign.UNMATCHED


def brute_force(dist, max_distance=None):
    """Every one-to-one pairing: the most pairs within the limit, then the least total."""
    n, m = dist.shape
    best = None
    cols = list(range(m)) + [None] * n
    for perm in set(itertools.permutations(cols, n)):
        pairs = [(r, c) for r, c in enumerate(perm) if c is not None]
        if max_distance is not None and any(dist[r, c] > max_distance for r, c in pairs):
            continue
        key = (-len(pairs), round(sum(dist[r, c] for r, c in pairs), 9))
        if best is None or key < best:
            best = key
    return -best[0], best[1]


def greedy_by_hand(dist, max_distance=None):
    n, m = dist.shape
    cells = sorted((dist[r, c], r, c) for r in range(n) for c in range(m))
    partner = [UN] * n
    used = set()
    for d, r, c in cells:
        if max_distance is not None and d > max_distance:
            break
        if partner[r] == UN and c not in used:
            partner[r] = c
            used.add(c)
    return partner


def test_greedy_pairs_wrongly_where_the_optimal_assignment_does_not():
    # Reference A's output drifted towards B (0.20 from A); B's true output is 0.30 away;
    # the true pair A-A' is 0.25. Greedy takes the closest pair, A-B', and forces B-A'.
    dist = np.array([[0.25, 0.20], [1.25, 0.30]])
    assert assign.greedy(dist).tolist() == [1, 0]
    assert assign.optimal(dist).tolist() == [0, 1]
    assert assign.disagreements(assign.optimal(dist), assign.greedy(dist)) == 2
    assert assign.total(dist, assign.optimal(dist)) == pytest.approx(0.55)
    assert assign.total(dist, assign.greedy(dist)) == pytest.approx(1.45)
    # The chosen pair of A is its second nearest: rank 2.
    assert assign.ranks(dist, assign.optimal(dist)).tolist() == [2, 1]


def test_unequal_sizes_leave_leftovers_and_unmatched_rows():
    dist = np.array([[0.1, 0.9, 0.5, 0.7]])
    best = assign.optimal(dist)
    assert best.tolist() == [0]
    assert assign.leftovers(best, 4).tolist() == [1, 2, 3]
    tall = dist.T  # four references, one candidate
    best = assign.optimal(tall)
    assert best.tolist() == [0, UN, UN, UN]
    assert assign.leftovers(best, 1).tolist() == []
    assert assign.ranks(tall, best).tolist() == [1, 0, 0, 0]


def test_max_distance_leaves_poor_pairs_unmatched_but_keeps_as_many_good_ones_as_possible():
    dist = np.array([[0.1, 0.2], [0.15, 5.0]])
    # Unrestricted, the total is least with 0.2 + 0.15.
    assert assign.optimal(dist).tolist() == [1, 0]
    # Within 0.18 only 0.1 and 0.15 are allowed and they share column 0: one pair survives.
    # The solver keeps the smaller one.
    assert assign.optimal(dist, 0.18).tolist() == [0, UN]
    assert assign.optimal(dist, 0.05).tolist() == [UN, UN]
    assert assign.greedy(dist, 0.18).tolist() == [0, UN]
    # Within 0.2 both survive (0.2 + 0.15), though greedy would take 0.1 first and strand row 1.
    assert assign.optimal(dist, 0.2).tolist() == [1, 0]
    assert assign.greedy(dist, 0.2).tolist() == [0, UN]


def test_empty_sides():
    assert assign.optimal(np.zeros((3, 0))).tolist() == [UN] * 3
    assert assign.greedy(np.zeros((3, 0))).tolist() == [UN] * 3
    assert assign.optimal(np.zeros((0, 3))).tolist() == []


matrices = st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**32 - 1)).map(
    lambda t: np.random.default_rng(t[2]).integers(0, 20, size=(t[0], t[1])).astype(float) / 10
)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(dist=matrices, limit=st.sampled_from([None, 0.3, 0.8, 1.5]))
def test_optimal_matches_brute_force_and_never_loses_to_greedy(dist, limit):
    best = assign.optimal(dist, limit)
    greedy = assign.greedy(dist, limit)
    pairs = int((best != UN).sum())
    assert (pairs, round(assign.total(dist, best), 9)) == brute_force(dist, limit)
    # one-to-one, within the limit
    used = best[best != UN]
    assert len(set(used.tolist())) == len(used)
    if limit is not None:
        assert all(dist[r, c] <= limit for r, c in enumerate(best.tolist()) if c != UN)
    # greedy is what the notes' recipe does
    assert greedy.tolist() == greedy_by_hand(dist, limit)
    if pairs == int((greedy != UN).sum()):
        assert assign.total(dist, best) <= assign.total(dist, greedy) + 1e-9
    else:
        assert pairs > int((greedy != UN).sum())


def test_a_pair_far_from_the_folders_typical_pair_is_flagged():
    # Six references with outputs at ~0.001; the seventh's output is missing, so it gets a stranger.
    dist = np.full((7, 7), 0.05)
    for i in range(6):
        dist[i, i] = 0.001 + 0.0002 * i
    dist[6, 6] = 0.03  # the stranger: nearest of what is left, 25x the median pair
    best = assign.optimal(dist, None)
    assert assign.far_pairs(dist, best).tolist() == [6]


def test_no_pair_is_flagged_when_distances_are_alike_or_too_few():
    dist = np.eye(6) * 0 + 0.2
    np.fill_diagonal(dist, [0.01, 0.02, 0.015, 0.03, 0.05, 0.04])  # 5x spread: ordinary variation
    assert assign.far_pairs(dist, assign.optimal(dist, None)).tolist() == []
    small = np.array([[0.001, 0.5], [0.5, 0.4]])  # two pairs give no typical distance
    assert assign.far_pairs(small, assign.optimal(small, None)).tolist() == []
