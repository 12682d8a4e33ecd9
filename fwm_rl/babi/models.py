"""catbAbI models (paper sections 3 and 4.1): token embedding -> recurrent core -> softmax.

* ``fwm``: the paper's FWM model, ``softmax(W_s (h_t + FWM(h_t, F_t)))`` with
  ``FWMLSTM(256, 256, d_fwm=32, n_reads=3)`` (section 3; appendix F.1). The residual ``h_t +`` is the
  paper's equation; the authors' released catbAbI scripts switch it off (``residual=False``), so it is
  an option. The memory uses the authors' catbAbI settings: write-strength bias ``+1`` and update
  scale ``1 / d_fwm`` (see :class:`fwm_rl.memory.FastWeightMemory`).
* ``lstm``: the LSTM baseline, a stack of LSTM layers with residual connections between layers of
  equal size (appendix F.4: 4 layers of 512; the AWD-style dropout of the paper's tuned baseline is
  not reproduced).

Both share the same embedding (size 256) and output layer (a bias-free linear map to the vocabulary,
Xavier-normal initialised as in the authors' code).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fwm_rl.babi.config import CatbAbIModelConfig
from fwm_rl.checks import check_int
from fwm_rl.memory import FWMLSTM, MemoryTrace, count_parameters

__all__ = ["CatbAbIModel", "StackedLSTM"]


LSTMState = list[tuple[Tensor, Tensor]]


class StackedLSTM(nn.Module):
    """``n_layers`` LSTMs on top of each other; with ``residual`` a layer adds its input when sizes match.

    State: one ``(h, c)`` pair (``[1, B, hidden_size]`` each) per layer. Padding steps
    (``keep = False``) leave the state untouched and output zeros.
    """

    def __init__(self, input_size: int, hidden_size: int, n_layers: int, residual: bool = True):
        super().__init__()
        self.hidden_size, self.residual = hidden_size, residual
        self.layers = nn.ModuleList(nn.LSTM(input_size if i == 0 else hidden_size, hidden_size) for i in range(n_layers))

    @staticmethod
    def state_batch_dims(state: LSTMState) -> list[tuple[int, int]]:
        """Every ``h``, ``c`` is ``[1, B, H]``."""
        return [(1, 1) for _ in state]

    def initial_state(self, batch_size: int, device=None, dtype=None) -> LSTMState:
        p = self.layers[0].weight_ih_l0
        shape, kwargs = (1, batch_size, self.hidden_size), {"device": device or p.device, "dtype": dtype or p.dtype}
        return [(torch.zeros(shape, **kwargs), torch.zeros(shape, **kwargs)) for _ in self.layers]

    def forward(self, x: Tensor, state: LSTMState, keep: Tensor | None = None) -> tuple[Tensor, LSTMState]:
        if keep is not None and bool(keep.all()):
            keep = None
        new_state = []
        for layer, (h, c) in zip(self.layers, state):
            if keep is None:
                out, (h, c) = layer(x, (h, c))
            else:  # padding inside the segment: step by step, holding the state of padded rows
                outs = []
                for t in range(x.shape[0]):
                    o, (h2, c2) = layer(x[t : t + 1], (h, c))
                    k = keep[t].view(1, -1, 1)
                    h, c = torch.where(k, h2, h), torch.where(k, c2, c)
                    outs.append(o)
                out = torch.cat(outs)
            x = x + out if self.residual and out.shape == x.shape else out
            new_state.append((h, c))
        if keep is not None:
            x = x * keep.unsqueeze(-1).to(x.dtype)
        return x, new_state


class CatbAbIModel(nn.Module):
    """Embedding -> FWMLSTM or stacked LSTM -> logits over the vocabulary (time first)."""

    def __init__(self, config: CatbAbIModelConfig, vocab_size: int):
        super().__init__()
        check_int("vocab_size", vocab_size, 2)
        self.config, self.vocab_size = config, vocab_size
        self.embedding = nn.Embedding(vocab_size, config.embedding_size)
        if config.memory == "fwm":
            scale = config.update_scale if config.update_scale is not None else 1.0 / config.d_fwm
            self.core = FWMLSTM(
                config.embedding_size,
                config.hidden_size,
                d_fwm=config.d_fwm,
                n_reads=config.n_reads,
                residual=config.residual,
                beta_bias=config.beta_bias,
                update_scale=scale,
                tanh_first_query=False,
            )  # the authors' catbAbI cell: no tanh on n^(0)
        else:
            self.core = StackedLSTM(config.embedding_size, config.hidden_size, config.n_layers, config.residual)
        self.output = nn.Linear(config.hidden_size, vocab_size, bias=False)  # W^(s)
        nn.init.xavier_normal_(self.output.weight)

    @property
    def uses_memory(self) -> bool:
        return self.config.memory == "fwm"

    def num_parameters(self) -> int:
        return count_parameters(self)

    def initial_state(self, batch_size: int, device=None):
        return self.core.initial_state(batch_size, device=device)

    def state_batch_dims(self, state):
        """The batch dimension of every tensor of the carried ``state`` (its core's layout)."""
        return self.core.state_batch_dims(state)

    def forward(
        self, x: Tensor, state=None, keep: Tensor | None = None, read_mask: Tensor | None = None, return_trace: bool = False
    ):
        """``x: [T, B]`` token ids -> ``(logits [T, B, V], state)`` (plus the FWM's :class:`MemoryTrace`).

        ``keep`` marks real (non-padding) steps; ``read_mask`` restricts the FWM's reads to the marked
        steps (the LSTM baseline has no reads and ignores it).
        """
        if not isinstance(x, Tensor) or x.dim() != 2:
            raise ValueError(f"x must be a [T, B] tensor of token ids, got {getattr(x, 'shape', type(x).__name__)}")
        if state is None:
            state = self.initial_state(x.shape[1], device=x.device)
        e = self.embedding(x)
        trace: MemoryTrace | None = None
        if self.uses_memory:
            result = self.core(e, state, keep=keep, read_mask=read_mask, return_trace=return_trace)
            h, state = result[0], result[1]
            trace = result[2] if return_trace else None
        else:
            if return_trace:
                raise ValueError("the LSTM baseline has no memory to trace; use an FWM model")
            h, state = self.core(e, state, keep=keep)
        logits = self.output(h)
        return (logits, state, trace) if return_trace else (logits, state)
