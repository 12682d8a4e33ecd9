"""Array backends for the batched graph environments: numpy (host) and torch (any device).

The batched dynamics (:mod:`fwm_rl.envs.core`) and the batched graph sampler
(:func:`fwm_rl.envs.graphs.sample_adjacency_batch`) are written once against
this small interface. Everything else they use (arithmetic, comparisons,
``sum/all`` with a positional axis, ``reshape``, ``@``, advanced indexing
and masked assignment) has the same meaning on numpy arrays and torch tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class NumpyBackend:
    """Host arrays; randomness from a ``numpy.random.Generator``."""

    name = "numpy"
    float_dtype = np.float32
    int_dtype = np.int64

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def random(self, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform floats in [0, 1) (float64)."""
        return self.rng.random(shape)

    def randint(self, high: Any, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform integers in ``[0, high)``; ``high`` may be an array broadcast to ``shape``."""
        return (self.random(shape) * high).astype(np.int64)

    def zeros(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    def full(self, shape: tuple[int, ...], value: Any, dtype: Any) -> np.ndarray:
        return np.full(shape, value, dtype=dtype)

    def arange(self, n: int) -> np.ndarray:
        return np.arange(n, dtype=np.int64)

    def where(self, cond: Any, a: Any, b: Any) -> np.ndarray:
        return np.where(cond, a, b)

    def to_int(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.int64)

    def to_float(self, x: np.ndarray) -> np.ndarray:
        return x.astype(np.float32)

    def asarray(self, x: Any) -> np.ndarray:
        """numpy array of ``x`` (a torch tensor is copied to the host)."""
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        return np.asarray(x)

    def concatenate(self, xs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(xs)


class TorchBackend:
    """Torch tensors on ``device``; randomness from a ``torch.Generator`` on that device.

    Nothing here synchronises with the host; the graph sampler does once per batch of
    proposals (boolean indexing), the environment step never does unless it checks actions.
    """

    name = "torch"
    float_dtype = torch.float32
    int_dtype = torch.int64

    def __init__(self, device: str | torch.device, seed: int | None = None) -> None:
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.rng = torch.Generator(device=self.device)
        self.seed(seed)

    def seed(self, seed: int | None) -> None:
        if seed is None:
            self.rng.seed()
        else:
            self.rng.manual_seed(int(seed))

    def random(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Uniform floats in [0, 1) (float64, so that ``floor(u * k)`` is exactly uniform)."""
        return torch.rand(shape, generator=self.rng, device=self.device, dtype=torch.float64)

    def randint(self, high: Any, shape: tuple[int, ...]) -> torch.Tensor:
        return (self.random(shape) * high).long()

    def zeros(self, shape: tuple[int, ...], dtype: Any) -> torch.Tensor:
        return torch.zeros(shape, dtype=dtype, device=self.device)

    def full(self, shape: tuple[int, ...], value: Any, dtype: Any) -> torch.Tensor:
        return torch.full(shape, value, dtype=dtype, device=self.device)

    def arange(self, n: int) -> torch.Tensor:
        return torch.arange(n, dtype=torch.int64, device=self.device)

    def where(self, cond: Any, a: Any, b: Any) -> torch.Tensor:
        return torch.where(cond, a, b)

    def to_int(self, x: torch.Tensor) -> torch.Tensor:
        return x.long()

    def to_float(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()

    def asarray(self, x: Any) -> torch.Tensor:
        """Tensor of ``x`` on the backend's device (dtype kept)."""
        if isinstance(x, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        return torch.as_tensor(x, device=self.device)

    def concatenate(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs)


Backend = NumpyBackend | TorchBackend


def make_backend(device: str | torch.device | None, seed: int | None = None) -> Backend:
    """``device=None`` -> numpy on the host; ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... -> torch there."""
    if device is None:
        return NumpyBackend(seed)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available; use device='cpu' or None (numpy)")
    return TorchBackend(dev, seed)
