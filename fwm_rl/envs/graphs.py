"""The paper's "metro graphs" (section 4.2, appendix I, Listing 1).

A graph is an adjacency tensor ``A[action, from, to]`` with ``A = 1`` where the
action leads from ``from`` to ``to``. Listing 1 samples it in three phases:

1. every state is made *leavable*: for each ``from`` state, one uniformly chosen
   action leads to a uniformly chosen other state;
2. every state is made *reachable*: for each ``to`` state in turn, one
   (``from``, action) pair that is still unused and whose ``from`` is not ``to``
   is chosen uniformly and made to lead to ``to``;
3. the proposal is rejected unless ``Q^(2^n_states)`` has no zero entry, where
   ``Q`` is the 0/1 "some action leads there" matrix. As ``2^n >= (n-1)^2 + 1``
   (Wielandt's bound), this accepts exactly the graphs that are strongly
   connected *and* aperiodic: e.g. a graph whose only cycle is one tour through
   all five states is rejected.

Actions are deterministic (one target per (state, action)), there are no
self-loops and, with ``2 n_states`` edges out of ``n_states * n_actions``
possible ones, not every action is valid everywhere.

Two samplers draw from this distribution:

* :func:`sample_adjacency_matrix` consumes a ``numpy.random.RandomState``
  exactly as Listing 1 does, so the authors' data seed (666) reproduces their
  train and test sets (:func:`paper_graph_sets`);
* :func:`sample_adjacency_batch` draws many graphs at once with array
  operations (numpy or torch), for a fresh graph in every episode. It runs the
  same proposal and the same acceptance test, so it samples exactly the same
  distribution, only from a different random stream.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import networkx as nx
import numpy as np
import torch

from fwm_rl.checks import check_int
from fwm_rl.envs._backend import Backend, make_backend

#: Sizes used in the paper.
N_STATES = 5
N_ACTIONS = 3

Split = Literal["train", "test", "valid"]
#: The paper's training and test sets, and a validation set of this project's for choosing recipes.
SPLITS: tuple[str, ...] = ("train", "test", "valid")


def check_sizes(n_actions: int, n_states: int) -> None:
    """Raise ``ValueError`` unless Listing 1 can produce graphs of this size.

    Two states only admit the 2-cycle, which is periodic and so always
    rejected; a single action leaves no unused (state, action) pair for phase 2.
    """
    for name, value, least in (("n_actions", n_actions, 2), ("n_states", n_states, 3)):
        check_int(name, value, least, why=" for Listing 1's graphs")


#: Most locations of freshly sampled graphs: Listing 1's rejection sampler needs ~1 s per reset of 64
#: environments at 80 locations with 3 actions and ~40 s at 400 (strongly connected proposals grow rare).
MAX_SAMPLED_STATES = 64


def validate_graphs(graphs: np.ndarray | torch.Tensor) -> None:
    """Raise ``ValueError`` naming the graph and the rule it breaks, unless every graph of ``graphs``
    (``[n_graphs, n_actions, n_states, n_states]``) is one the task can be played on: entries 0 or 1,
    deterministic actions (one target each), no self-loops, and strongly connected (every location
    reachable from every other one). Listing 1's graphs are also aperiodic; that is not required here.
    """
    A = graphs.detach().cpu().numpy() if isinstance(graphs, torch.Tensor) else np.asarray(graphs)
    if not np.issubdtype(A.dtype, np.number) and A.dtype != bool:
        raise ValueError(f"graphs must be numeric 0/1 adjacency tensors, got dtype {A.dtype}")
    bad = ~np.isin(A, (0, 1))
    if bad.any():
        g, a, s, t = np.argwhere(bad)[0]
        raise ValueError(f"graph {g} has an entry other than 0 or 1 ({float(A[g, a, s, t])} at action {a}, from {s} to {t})")
    several = A.sum(-1) > 1
    if several.any():
        g, a, s = np.argwhere(several)[0]
        raise ValueError(f"graph {g} is not deterministic: action {a} leads from location {s} to several locations")
    n = A.shape[-1]
    loops = A[..., np.arange(n), np.arange(n)] > 0
    if loops.any():
        g, a, s = np.argwhere(loops)[0]
        raise ValueError(f"graph {g} has a self-loop: action {a} leads from location {s} to itself")
    reach = (A.max(1) > 0) | np.eye(n, dtype=bool)  # [g, from, to] within one step (or none)
    for _ in range(max(1, int(np.ceil(np.log2(n))))):  # paths of up to 2^k steps
        reach = (reach.astype(np.int64) @ reach.astype(np.int64)) > 0
    missing = ~reach
    if missing.any():
        g, s, t = np.argwhere(missing)[0]
        raise ValueError(f"graph {g} is not strongly connected: location {t} cannot be reached from location {s}")


def sample_adjacency_matrix(n_actions: int, n_states: int, random_state: np.random.RandomState) -> np.ndarray:
    """Listing 1: one graph ``A[action, from, to]`` (float64 zeros and ones).

    Draws from ``random_state`` in exactly the order and with exactly the calls
    of Listing 1, so equal seeds give the authors' graphs. Listing 1 would fail
    if phase 2 ever found no admissible (from, action) pair (possible only with
    two actions); that proposal is rejected and drawn again instead.
    """
    check_sizes(n_actions, n_states)
    if not isinstance(random_state, np.random.RandomState):
        raise TypeError(f"random_state must be a numpy.random.RandomState, got {type(random_state).__name__}")
    while True:
        adjacency = np.zeros((n_actions, n_states, n_states))
        # Phase 1: every state is leavable.
        for from_state in range(n_states):
            to_state = random_state.choice([s for s in range(n_states) if s != from_state])
            action = random_state.randint(0, n_actions)
            adjacency[action, from_state, to_state] = 1
        # Phase 2: every state is reachable, through a (from, action) pair not used yet.
        admissible = True
        for to_state in range(n_states):
            unused_actions, unused_froms = np.nonzero(adjacency.sum(2) == 0)  # (action, from) order
            options = [(f, a) for a, f in zip(unused_actions, unused_froms) if f != to_state]
            if not options:
                admissible = False
                break
            from_state, action = options[random_state.choice(np.arange(len(options)))]
            adjacency[action, from_state, to_state] = 1
        if not admissible:
            continue
        # Phase 3: accept iff Q^(2^n_states) has no zero (strongly connected and aperiodic).
        reach = adjacency.sum(0)
        reach[reach > 0] = 1
        for _ in range(n_states):
            reach = reach @ reach
        if not (reach == 0).any():
            return adjacency


def _propose_tables(backend: Backend, n: int, n_actions: int, n_states: int) -> tuple[Any, Any]:
    """Phases 1-2 of Listing 1 for ``n`` graphs at once, as next-state tables ``[n, from, action]``.

    Returns the tables and a mask of the proposals for which phase 2 always
    found an admissible pair. Pairs are numbered ``p = from * n_actions + action``.
    """
    n_pairs = n_states * n_actions
    states = backend.arange(n_states)
    table = backend.full((n * n_pairs,), -1, backend.int_dtype)
    # Phase 1: for every ``from``, a uniform other state (skip over ``from``) by a uniform action.
    to_state = backend.randint(n_states - 1, (n, n_states))
    to_state = to_state + backend.to_int(to_state >= states)
    action = backend.randint(n_actions, (n, n_states))
    table[(backend.arange(n) * n_pairs)[:, None] + states * n_actions + action] = to_state
    table = table.reshape(n, n_pairs)
    # Phase 2: for each target in turn, a uniform choice among the unused pairs whose ``from`` is
    # not the target: the pick-th of them, found with a running count (a matmul with a triangle of ones).
    unused = backend.to_float(table < 0)
    running_count = backend.to_float(backend.arange(n_pairs)[:, None] <= backend.arange(n_pairs)[None, :])
    pair_from = backend.arange(n_pairs) // n_actions
    admissible = backend.full((n,), True, bool)
    for to in range(n_states):
        options = unused * backend.to_float(pair_from != to)
        count = options @ running_count  # [n, n_pairs]: options among pairs 0..p
        total = count[:, -1]
        pick = backend.to_float(backend.randint(total, (n,)))
        chosen = (count == (pick + 1)[:, None]) & (options > 0)
        table = table + backend.to_int(chosen) * (to + 1)  # -1 -> to
        unused = unused - backend.to_float(chosen)
        admissible = admissible & (total > 0)
    return table.reshape(n, n_states, n_actions), admissible


def _accept(backend: Backend, table: Any, admissible: Any) -> Any:
    """Phase 3 of Listing 1 on next-state tables: ``Q^(2^n_states)`` has no zero entry."""
    n, n_states, n_actions = table.shape
    # Q as [n, from, to + 1]; the extra column collects the invalid actions.
    reach = backend.zeros((n * n_states * (n_states + 1),), backend.float_dtype)
    row_start = (backend.arange(n * n_states) * (n_states + 1))[:, None]
    reach[row_start + backend.where(table >= 0, table, n_states).reshape(n * n_states, n_actions)] = 1.0
    reach = reach.reshape(n, n_states, n_states + 1)[:, :, :n_states]
    for _ in range(n_states):  # zero pattern of the power only; binarised so nothing overflows
        reach = backend.to_float((reach @ reach) > 0)
    return admissible & (reach > 0).reshape(n, n_states * n_states).all(-1)


def sample_table_batch(backend: Backend, n_graphs: int, n_actions: int, n_states: int) -> Any:
    """``n_graphs`` Listing-1 graphs as next-state tables ``[n_graphs, from, action]`` (``-1``: no edge).

    Rejection sampling as in Listing 1, vectorised: each round draws a batch
    of i.i.d. proposals and keeps the accepted ones in order, until
    ``n_graphs`` are accepted. Accepted i.i.d. proposals are i.i.d. draws of
    Listing 1's distribution. Rounds propose ``OVERSAMPLE`` times the number
    still missing (about 85% of 5x3 proposals are accepted), so one round
    usually suffices.
    """
    check_sizes(n_actions, n_states)
    parts, missing = [], n_graphs
    while missing > 0:
        table, admissible = _propose_tables(backend, int(missing * OVERSAMPLE) + 8, n_actions, n_states)
        accepted = table[_accept(backend, table, admissible)][:missing]
        parts.append(accepted)
        missing -= len(accepted)
    return parts[0] if len(parts) == 1 else backend.concatenate(parts)


#: Proposals per missing graph in a round of :func:`sample_table_batch`.
OVERSAMPLE = 1.25


def sample_adjacency_batch(
    n_graphs: int,
    n_actions: int = N_ACTIONS,
    n_states: int = N_STATES,
    seed: int | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray | torch.Tensor:
    """``n_graphs`` independent graphs from Listing 1's distribution, ``[n_graphs, action, from, to]``.

    numpy float64 when ``device`` is None, else a float32 torch tensor on ``device``.
    Fast, but not the authors' random stream: use :func:`sample_adjacency_matrix` for that.
    """
    check_int("n_graphs", n_graphs, 0)
    backend = make_backend(device, seed)
    adjacency = adjacency_from_table(sample_table_batch(backend, int(n_graphs), n_actions, n_states))
    return adjacency.astype(np.float64) if device is None else adjacency


def next_state_table(adjacency: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """``A[..., action, from, to]`` -> ``T[..., from, action]`` = target state, or ``-1`` where the action is invalid.

    Raises ``ValueError`` if an action leads to more than one state.
    """
    if adjacency.ndim < 3 or adjacency.shape[-1] != adjacency.shape[-2]:
        raise ValueError(f"adjacency must have shape [..., n_actions, n_states, n_states], got {tuple(adjacency.shape)}")
    out_degree = adjacency.sum(-1)
    if (out_degree > 1).any():
        raise ValueError("adjacency is not deterministic: some (action, state) pair leads to several states")
    if isinstance(adjacency, torch.Tensor):
        table = torch.where(out_degree > 0, adjacency.argmax(-1), -1)
    else:
        table = np.where(out_degree > 0, adjacency.argmax(-1), -1)
    return table.swapaxes(-1, -2)


def adjacency_from_table(table: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Inverse of :func:`next_state_table`: ``T[..., from, action]`` -> ``A[..., action, from, to]`` (0/1)."""
    n_states = table.shape[-2]
    if isinstance(table, torch.Tensor):
        onehot = torch.nn.functional.one_hot(torch.where(table >= 0, table, n_states), n_states + 1)
        return onehot[..., :n_states].swapaxes(-2, -3).float()
    onehot = np.eye(n_states + 1, dtype=np.float32)[np.where(table >= 0, table, n_states)]
    return onehot[..., :n_states].swapaxes(-2, -3)


def shortest_path_lengths(adjacency: np.ndarray) -> np.ndarray:
    """Number of steps of the shortest path ``[..., from, to]`` (``inf`` if unreachable, 0 on the diagonal).

    Accepts one graph ``[action, from, to]`` or a batch ``[..., action, from, to]`` (Floyd-Warshall, vectorised).
    """
    adjacency = np.asarray(adjacency)
    n_states = adjacency.shape[-1]
    dist = np.where(adjacency.sum(-3) > 0, 1.0, np.inf)
    dist[..., np.arange(n_states), np.arange(n_states)] = 0.0
    for k in range(n_states):
        dist = np.minimum(dist, dist[..., :, k : k + 1] + dist[..., k : k + 1, :])
    return dist


def to_networkx(adjacency: np.ndarray) -> nx.DiGraph:
    """A ``networkx.DiGraph`` over the states; edge attribute ``actions`` = sorted tuple of the actions taking it."""
    adjacency = np.asarray(adjacency)
    n_states = adjacency.shape[1]
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n_states))
    for action, from_state, to_state in zip(*np.nonzero(adjacency)):
        if graph.has_edge(int(from_state), int(to_state)):
            graph.edges[int(from_state), int(to_state)]["actions"] += (int(action),)
        else:
            graph.add_edge(int(from_state), int(to_state), actions=(int(action),))
    return graph


def _draw_set(n_graphs: int, random_state: np.random.RandomState, excluded: set[bytes]) -> np.ndarray:
    graphs = []
    while len(graphs) < n_graphs:
        graph = sample_adjacency_matrix(N_ACTIONS, N_STATES, random_state)
        if graph.tobytes() not in excluded:
            graphs.append(graph)
    return np.stack(graphs)


@functools.lru_cache(maxsize=4)
def _paper_graph_sets(n_graphs: int, data_seed: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    """``(train, test, stream state)``: test, then train from one ``RandomState(data_seed)`` stream,
    train skipping test graphs; the stream's state after them continues into the validation set."""
    random_state = np.random.RandomState(data_seed)
    test = _draw_set(n_graphs, random_state, excluded=set())
    train = _draw_set(n_graphs, random_state, excluded={graph.tobytes() for graph in test})
    for graphs in (train, test):
        graphs.flags.writeable = False
    return train, test, random_state.get_state()


@functools.lru_cache(maxsize=4)
def _validation_set(n_graphs: int, data_seed: int) -> np.ndarray:
    """The stream of :func:`_paper_graph_sets` continued after the train set, skipping train and test graphs."""
    train, test, state = _paper_graph_sets(n_graphs, data_seed)
    random_state = np.random.RandomState()
    random_state.set_state(state)
    valid = _draw_set(n_graphs, random_state, excluded={graph.tobytes() for graph in (*test, *train)})
    valid.flags.writeable = False
    return valid


def _check_set_arguments(n_graphs: int, data_seed: int) -> None:
    check_int("n_graphs", n_graphs)
    check_int("data_seed", data_seed, 0)


def paper_graph_sets(n_graphs: int = 600, data_seed: int = 666) -> tuple[np.ndarray, np.ndarray]:
    """The authors' ``(train, test)`` sets, each ``[n_graphs, 3, 5, 5]`` float64.

    As in the authors' code: the test graphs are drawn first from
    ``RandomState(data_seed)``, then the train graphs from the same stream,
    skipping any graph equal to a test graph (duplicates within a set are kept).
    The arrays are cached and read-only.
    """
    _check_set_arguments(n_graphs, data_seed)
    return _paper_graph_sets(int(n_graphs), int(data_seed))[:2]


def graph_set(split: str, n_graphs: int = 600, data_seed: int = 666) -> np.ndarray:
    """One graph set by name: ``"train"`` or ``"test"`` (:func:`paper_graph_sets`), or ``"valid"``.

    ``"valid"`` is not the paper's: ``n_graphs`` more graphs drawn from the same stream after the
    training set, none equal to a training or test graph. It is for choosing learning recipes
    without looking at the test set (the paper's sets are drawn first, so they do not change).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    _check_set_arguments(n_graphs, data_seed)
    if split == "valid":
        return _validation_set(int(n_graphs), int(data_seed))
    train, test, _ = _paper_graph_sets(int(n_graphs), int(data_seed))
    return train if split == "train" else test


def graph_at(split: str, index: int) -> np.ndarray:
    """Graph ``index`` of the 600-graph set ``split`` (:func:`graph_set`), or a ValueError saying which indices exist."""
    graphs = graph_set(split)
    if not 0 <= index < len(graphs):
        raise ValueError(
            f"graph index {index} is out of range: the {split} set has {len(graphs)} graphs (0..{len(graphs) - 1})"
        )
    return graphs[index]
