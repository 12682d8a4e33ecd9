"""AWD-LSTM language model and the same model with a Fast Weight Memory on top (paper 4.3, appendix H).

The slow network is the regularised 3-layer AWD-LSTM of Merity et al. (2018):

* embedding dropout (whole words removed from the embedding matrix, ``dropout_e``);
* locked ("variational") dropout, one mask per sequence, on the embedded inputs (``dropout_i``),
  between LSTM layers (``dropout_h``) and on the final output (``dropout``);
* DropConnect on every layer's hidden-to-hidden weights (``wdrop``), one mask per forward call;
* tied input/output embeddings: with ``tie_weights`` the last LSTM layer has ``embedding_size`` units
  so that the decoder can reuse the embedding matrix.

The FWM variant (``memory="fwm"``) puts one :class:`fwm_rl.memory.FastWeightMemory` on the output
``h_t`` of the last LSTM layer, as the authors did (appendix H: "the same three layer LSTM as the
slow RNN"), and predicts from the residual sum of section 3:
``softmax(W_s (h_t + FWM(h_t, F_t)))``. The memory writes (eqs 1-4) and then reads (eqs 5-8) at
every step; its fast weights ``F`` are part of the recurrent state carried across batches.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from fwm_rl.lm.config import LMModelConfig
from fwm_rl.memory import FastWeightMemory, map_state

__all__ = [
    "AWDLanguageModel",
    "LMOutput",
    "LMState",
    "WeightDropLSTM",
    "embedded_dropout",
    "locked_dropout",
]


class LMState(NamedTuple):
    """Recurrent state carried from one batch to the next."""

    #: per LSTM layer ``(h, c)``, each ``[1, B, size]``
    layers: tuple[tuple[Tensor, Tensor], ...]
    #: the FWM's fast weights ``F`` (``None`` for the plain LSTM)
    fast_weights: Tensor | None

    def detach(self) -> LMState:
        """Cut the graph (truncated BPTT) while keeping the values."""
        return map_state(self, Tensor.detach)

    def to(self, device_or_dtype: torch.device | str | torch.dtype) -> LMState:
        """Every tensor moved to a device or cast to a dtype (as ``Tensor.to``)."""
        return map_state(self, lambda t: t.to(device_or_dtype))


class LMOutput(NamedTuple):
    logits: Tensor  # [T, B, vocab_size]
    state: LMState
    #: last-layer output before the final dropout (``h + FWM`` for the FWM model), for TAR
    hidden: Tensor
    #: the same after the final locked dropout, for AR
    dropped: Tensor


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout with one mask per sequence: ``x`` is ``[T, B, D]``, the mask ``[1, B, D]``."""
    if not training or p == 0.0:
        return x
    mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1.0 - p) / (1.0 - p)
    return x * mask


def embedded_dropout(embedding: nn.Embedding, tokens: Tensor, p: float, training: bool) -> Tensor:
    """Embedding lookup with whole rows (words) of the matrix dropped with probability ``p``."""
    weight = embedding.weight
    if training and p > 0.0:
        mask = weight.new_empty(weight.size(0), 1).bernoulli_(1.0 - p) / (1.0 - p)
        weight = weight * mask
    return F.embedding(tokens, weight)


class WeightDropLSTM(nn.Module):
    """One LSTM layer with DropConnect on its hidden-to-hidden matrix (AWD-LSTM's weight drop).

    The dropped matrix is computed from the trained parameter in every training forward call and
    handed to the (cuDNN / native) LSTM through :func:`torch.func.functional_call`, so the
    parameter itself is never replaced and gradients reach it through the dropout mask.
    """

    def __init__(self, input_size: int, hidden_size: int, weight_dropout: float = 0.0):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.weight_dropout = weight_dropout

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if self.training and self.weight_dropout > 0.0:
            dropped = F.dropout(self.lstm.weight_hh_l0, self.weight_dropout, training=True)
            return functional_call(self.lstm, {"weight_hh_l0": dropped}, (x, state))
        return self.lstm(x, state)


class AWDLanguageModel(nn.Module):
    """Embedding -> AWD-LSTM stack (-> FWM with residual) -> tied softmax; see the module docstring."""

    def __init__(self, config: LMModelConfig):
        super().__init__()
        self.config = config
        sizes = config.layer_sizes
        inputs = [config.embedding_size] + sizes[:-1]
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.rnns = nn.ModuleList(WeightDropLSTM(i, o, config.wdrop) for i, o in zip(inputs, sizes))
        self.fwm = (
            FastWeightMemory(
                sizes[-1], d_fwm=config.d_fwm, n_reads=config.n_reads, output_size=sizes[-1], beta_bias=1.0
            )  # the authors' LM cell: bias to writing, update scale 1
            if config.memory == "fwm"
            else None
        )
        self.decoder = nn.Linear(sizes[-1], config.vocab_size)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight
        # uniform(-0.25, 0.25) embeddings, "crucial in our FWM language models" (appendix H)
        nn.init.uniform_(self.embedding.weight, -0.25, 0.25)
        if not config.tie_weights:
            nn.init.uniform_(self.decoder.weight, -0.25, 0.25)
        nn.init.zeros_(self.decoder.bias)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> LMState:
        """Zero LSTM states (and zero fast weights for the FWM model)."""
        weight = self.embedding.weight
        device = weight.device if device is None else device
        layers = tuple(
            (weight.new_zeros(1, batch_size, size, device=device), weight.new_zeros(1, batch_size, size, device=device))
            for size in self.config.layer_sizes
        )
        fast = None if self.fwm is None else self.fwm.initial_state(batch_size, device=device, dtype=weight.dtype)
        return LMState(layers, fast)

    @staticmethod
    def state_batch_dims(state: LMState) -> LMState:
        """The batch dimension of every tensor of ``state``: each ``(h, c)`` is ``[1, B, size]``, ``F`` is ``[B, ...]``."""
        return LMState(tuple((1, 1) for _ in state.layers), None if state.fast_weights is None else 0)

    def forward(self, tokens: Tensor, state: LMState | None = None) -> LMOutput:
        """``tokens``: ``[T, B]`` word indices; returns next-word logits ``[T, B, V]`` and the new state."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [T, B] word indices, got shape {tuple(tokens.shape)}")
        if state is None:
            state = self.initial_state(tokens.size(1), tokens.device)
        cfg = self.config
        x = embedded_dropout(self.embedding, tokens, cfg.dropout_e, self.training)
        x = locked_dropout(x, cfg.dropout_i, self.training)
        new_layers = []
        for index, (rnn, layer_state) in enumerate(zip(self.rnns, state.layers)):
            x, layer_state = rnn(x, layer_state)
            new_layers.append(layer_state)
            if index < len(self.rnns) - 1:
                x = locked_dropout(x, cfg.dropout_h, self.training)
        fast = state.fast_weights
        if self.fwm is not None:
            reads, fast = self.fwm(x, fast)
            x = x + reads  # residual: h_t + FWM(h_t, F_t)  (section 3)
        dropped = locked_dropout(x, cfg.dropout, self.training)
        return LMOutput(self.decoder(dropped), LMState(tuple(new_layers), fast), x, dropped)
