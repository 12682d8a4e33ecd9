"""Listing 1 samplers: the authors' sets, graph properties, and the batched sampler's distribution."""

import hashlib
from collections import Counter

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from fwm_rl.envs._backend import NumpyBackend
from fwm_rl.envs.graphs import (
    _accept,
    _propose_tables,
    adjacency_from_table,
    graph_set,
    next_state_table,
    paper_graph_sets,
    sample_adjacency_batch,
    sample_adjacency_matrix,
    sample_table_batch,
    shortest_path_lengths,
    to_networkx,
)

# sha256 of the authors' sets as uint8 bytes, computed by running generate_graphs() of the
# released metaRL/train_agent.py with RandomState(666), 600 graphs, test first then train.
AUTHORS_TEST_SHA256 = "027a63558d08222d8def9f27636255b07ab162caf8397a9cb8d504cf34500b52"
AUTHORS_TRAIN_SHA256 = "f85a608e30ff5fd26bad18a71f7c642093a2211fd34261a4c450e3df494f6671"


def _sha(graphs):
    return hashlib.sha256(np.asarray(graphs).astype(np.uint8).tobytes()).hexdigest()


def test_paper_sets_reproduce_the_authors_graphs():
    train, test = paper_graph_sets(600, 666)
    assert train.shape == test.shape == (600, 3, 5, 5)
    assert _sha(test) == AUTHORS_TEST_SHA256
    assert _sha(train) == AUTHORS_TRAIN_SHA256
    assert not {g.tobytes() for g in train} & {g.tobytes() for g in test}
    assert graph_set("train") is train and graph_set("test") is test


def test_same_seed_same_graphs_and_stream():
    a, b = np.random.RandomState(5), np.random.RandomState(5)
    for _ in range(20):
        assert np.array_equal(sample_adjacency_matrix(3, 5, a), sample_adjacency_matrix(3, 5, b))
    assert a.randint(1 << 30) == b.randint(1 << 30)
    other = sample_adjacency_matrix(3, 5, np.random.RandomState(6))
    assert not np.array_equal(other, sample_adjacency_matrix(3, 5, np.random.RandomState(5)))


def _check_graph_properties(adjacency):
    n_actions, n_states, _ = adjacency.shape[-3:]
    assert set(np.unique(adjacency)) <= {0, 1}
    assert (adjacency.sum(-1) <= 1).all(), "actions must be deterministic"
    assert (adjacency[..., np.arange(n_states), np.arange(n_states)] == 0).all(), "no self-loops"
    assert (adjacency.sum((-3, -1)) >= 1).all(), "every state leavable"
    assert (adjacency.sum((-3, -2)) >= 1).all(), "every state reachable"
    assert np.isfinite(shortest_path_lengths(adjacency)).all(), "every state reachable from every other"
    if n_actions > 2:  # 2 n_states edges fill all pairs when there are only two actions
        assert (adjacency.sum(-1) == 0).any(axis=(-2, -1)).all(), "not every action valid everywhere"
    reach = (adjacency.sum(-3) > 0).astype(float)
    for _ in range(n_states):
        reach = np.minimum(reach @ reach, 1)
    assert (reach > 0).all(), "Listing 1 accepts strongly connected, aperiodic graphs only"


def test_exact_sampler_properties_over_many_seeds():
    graphs = np.stack([sample_adjacency_matrix(3, 5, np.random.RandomState(seed)) for seed in range(300)])
    _check_graph_properties(graphs)
    assert len({g.tobytes() for g in graphs}) > 290
    small = np.stack([sample_adjacency_matrix(2, 3, np.random.RandomState(seed)) for seed in range(100)])
    _check_graph_properties(small)


@pytest.mark.parametrize("sizes", [(3, 5), (2, 3), (4, 6)])
def test_batched_sampler_properties(sizes):
    n_actions, n_states = sizes
    graphs = sample_adjacency_batch(3000, n_actions, n_states, seed=1)
    assert graphs.shape == (3000, n_actions, n_states, n_states)
    _check_graph_properties(graphs)
    assert np.array_equal(graphs, sample_adjacency_batch(3000, n_actions, n_states, seed=1))
    assert not np.array_equal(graphs, sample_adjacency_batch(3000, n_actions, n_states, seed=2))


def test_table_conversions_round_trip():
    graphs = paper_graph_sets()[1][:50]
    tables = next_state_table(graphs)
    assert tables.shape == (50, 5, 3) and tables.min() == -1
    assert np.array_equal(adjacency_from_table(tables), graphs)
    nx_graph = to_networkx(graphs[0])
    assert sum(len(d["actions"]) for *_, d in nx_graph.edges(data=True)) == graphs[0].sum()
    with pytest.raises(ValueError, match="deterministic"):
        bad = graphs[0].copy()
        bad[0, 0, :] = 1
        next_state_table(bad)


def _codes(graphs):
    return [g.astype(np.uint8).tobytes() for g in graphs]


def _two_sample_p(a, b):
    """chi-square test of homogeneity of two samples of hashable outcomes."""
    ca, cb = Counter(a), Counter(b)
    keys = sorted(set(ca) | set(cb), key=lambda k: -(ca[k] + cb[k]))
    table = np.array([[ca[k] for k in keys], [cb[k] for k in keys]])
    # pool rare outcomes so every expected count is comfortably large
    common = table.sum(0) >= 20
    table = np.column_stack([table[:, common], table[:, ~common].sum(1)]) if (~common).any() else table
    return chi2_contingency(table)[1]


def test_batched_sampler_matches_listing1_distribution_on_small_graphs():
    # 3 states, 2 actions: few distinct graphs, so whole-graph frequencies are compared.
    exact = [sample_adjacency_matrix(2, 3, np.random.RandomState(seed)) for seed in range(4000)]
    batched = sample_adjacency_batch(20000, 2, 3, seed=0)
    assert _two_sample_p(_codes(exact), _codes(batched)) > 1e-3
    # The test has power: the proposals without the acceptance step are clearly a different law.
    tables, _ = _propose_tables(NumpyBackend(0), 20000, 2, 3)
    assert _two_sample_p(_codes(exact), _codes(adjacency_from_table(tables))) < 1e-6


def test_batched_sampler_matches_listing1_statistics_on_paper_graphs():
    exact = np.stack([sample_adjacency_matrix(3, 5, np.random.RandomState(10_000 + s)) for s in range(2500)])
    batched = sample_adjacency_batch(25000, 3, 5, seed=3)

    def statistics(graphs):
        edges = graphs.sum(1) > 0  # [n, from, to]
        return {
            "distinct edges": edges.sum((1, 2)),
            "valid actions at state 0": graphs[:, :, 0].sum((1, 2)),
            "two-cycles": (edges & edges.transpose(0, 2, 1)).sum((1, 2)) // 2,
            "in-degree of state 4": edges[:, :, 4].sum(1),
            "actions on edge 0->1": graphs[:, :, 0, 1] @ np.array([1, 2, 4]),
        }

    s_exact, s_batched = statistics(exact), statistics(batched)
    for name in s_exact:
        assert _two_sample_p(s_exact[name].tolist(), s_batched[name].tolist()) > 1e-3, name


def test_sampler_rejects_nonsense_sizes():
    for n_actions, n_states in [(1, 5), (3, 2), (0, 5), (3, 2.5), (True, 5)]:
        with pytest.raises(ValueError, match="n_actions|n_states"):
            sample_adjacency_matrix(n_actions, n_states, np.random.RandomState(0))
        with pytest.raises(ValueError, match="n_actions|n_states"):
            sample_table_batch(NumpyBackend(0), 4, n_actions, n_states)
    with pytest.raises(TypeError, match="RandomState"):
        sample_adjacency_matrix(3, 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_graphs"):
        sample_adjacency_batch(-1)
    with pytest.raises(ValueError, match="unknown split"):
        graph_set("validation")
    with pytest.raises(ValueError, match="n_graphs"):
        paper_graph_sets(0)


def test_accept_is_listing1_acceptance():
    # A single 5-cycle is strongly connected but periodic: Listing 1's Q^(2^n) test rejects it.
    cycle = np.full((1, 5, 3), -1)
    cycle[0, np.arange(5), 0] = (np.arange(5) + 1) % 5
    backend = NumpyBackend(0)
    assert not _accept(backend, cycle, np.array([True]))[0]
    chord = cycle.copy()
    chord[0, 0, 1] = 2  # adds a 4-cycle 0->2->3->4->0; gcd(5, 4) = 1
    assert _accept(backend, chord, np.array([True]))[0]


def test_validation_set_is_disjoint_from_the_papers_sets_and_leaves_them_unchanged():
    valid, train, test = graph_set("valid"), graph_set("train"), graph_set("test")
    assert valid.shape == (600, 3, 5, 5) and not valid.flags.writeable
    seen = {g.tobytes() for g in (*train, *test)}
    assert not any(g.tobytes() in seen for g in valid)
    np.testing.assert_array_equal(paper_graph_sets()[0], train)  # drawn after the paper's sets
    np.testing.assert_array_equal(graph_set("valid", 600, 666), valid)
    assert not np.array_equal(graph_set("valid", 600, 667), valid)
