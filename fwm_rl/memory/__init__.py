"""The Fast Weight Memory (paper section 3, equations 1-8), shared by RL, catbAbI and LM.

A slow LSTM produces ``h_t``; at every step the memory

* **writes** (section 3.1.1): ``[k1, k2, v] = tanh(W_write h_t)`` (eq. 1), ``beta = sigmoid(W_beta h_t)``
  (eq. 2), retrieves ``v_old = F(k1 (x) k2)``, and updates
  ``F' = F + beta * vec(k1 (x) k2) (x) (v - v_old)`` (eq. 3), ``F = F' / max(1, ||F'||)`` (eq. 4);
* **reads** (section 3.1.2): ``n^(0) = tanh(W_n h_t)`` (eq. 5), ``e^(i) = tanh(W_e^(i) h_t)`` (eq. 6),
  ``n^(i) = LN(F vec(n^(i-1) (x) e^(i)))`` (eq. 7) for ``i = 1..N_r``, output ``W_o n^(N_r)`` (eq. 8).

``F`` is stored as ``[B, d_fwm, d_fwm, d_fwm]`` (key 1, key 2, value); with the appendix E ablation
(``keys="concat"``) the key is ``[k1; k2]`` and ``F`` is ``[B, 2 d_fwm, d_fwm]``.

The package, laid out like an operator library (a layer, a short reference, the fast forms):

* :mod:`~fwm_rl.memory.layer`: :class:`FastWeightMemory` (projections, state, dispatch) and :class:`FWMLSTM`;
* :mod:`~fwm_rl.memory.reference`: eqs 1-8 written out step by step, nothing else (:func:`reference_memory`);
* :mod:`~fwm_rl.memory.step`, :mod:`~fwm_rl.memory.chunked`, :mod:`~fwm_rl.memory.factored`: the forms below,
  functions of tensors and keyword options (``run_step``, ``run_chunked``, ``step_factored``), each with its
  autograd functions; none imports the layer; :mod:`~fwm_rl.memory.common`: state types, key algebra
  (``key``, ``contract``, ``add_write``), masks.

Exact implementations of the same recurrence:

* ``impl="step"``: one full ``F`` update and ``N_r`` contractions per step, with masks (the form the
  others were first checked against; it is checked against :func:`reference_memory` in turn).
* ``impl="chunked"``: within a chunk of ``C`` steps starting from ``F_0``, ``F_t`` is ``F_0`` plus the
  chunk's rank-one writes ``key_j (x) w_j``, each scaled by the product of the later caps of eq. 4
  (the cap only ever rescales the whole tensor).
  Retrievals and reads become key dot products against the chunk's earlier writes plus one batched
  contraction with ``F_0``; ``||F'||^2`` is updated incrementally, so no ``d^3`` tensor is formed per step.
  Starting from a zero state (an RL episode) the ``F_0`` terms vanish altogether. While no cap
  engages (checked exactly afterwards), the writes of eq. 3 solve one unit lower-triangular
  system; otherwise a step loop on small tensors computes them.
* one-step calls on a :class:`FactoredState` (``initial_state(..., factored=True)``, what an RL
  rollout carries): the step form's arithmetic on a dense part plus the list of writes so far.

``impl="auto"`` (default) uses the chunked form for sequences and the step form (or the factored
state's step) for single steps. :func:`run_memories` (and :func:`run_fwmlstms`) run several memories of one
form as one batch, each with its own weights: an agent's actor and critic cores cost about one. Every form is tested against :func:`reference_memory` in float64.
"""

from fwm_rl.memory.common import IMPLS, KEY_MODES, LN_EPS, FactoredState, MemoryTrace, count_parameters, map_state
from fwm_rl.memory.layer import FWMLSTM, FastWeightMemory, RNNState, State, rnn_with_resets, run_fwmlstms, run_memories
from fwm_rl.memory.reference import reference_memory

__all__ = [
    "FWMLSTM",
    "IMPLS",
    "KEY_MODES",
    "LN_EPS",
    "FactoredState",
    "FastWeightMemory",
    "MemoryTrace",
    "RNNState",
    "State",
    "count_parameters",
    "map_state",
    "reference_memory",
    "rnn_with_resets",
    "run_fwmlstms",
    "run_memories",
]
