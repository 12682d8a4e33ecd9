"""One rule for sizes and rates everywhere (fwm_rl.checks): integers are never bools, reals are finite."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fwm_rl.agents.config import A2CConfig
from fwm_rl.babi.config import CatbAbIConfig, CatbAbIModelConfig
from fwm_rl.checks import check_choice, check_int, check_real
from fwm_rl.envs.core import TaskConfig
from fwm_rl.lm.config import LMConfig, LMModelConfig
from fwm_rl.memory import FWMLSTM, FastWeightMemory


def test_check_int_rules():
    for ok in (1, 7, np.int64(3), np.int32(1)):
        check_int("n", ok)
    check_int("n", 0, 0)
    check_int("n", -5, None)
    check_int("n", None, optional=True)
    for bad, message in (
        (True, "n must be a positive integer, got True"),
        (0, "got 0"),
        (1.0, "got 1.0"),
        ("2", "got '2'"),
        (None, "got None"),
    ):
        with pytest.raises(ValueError, match=message):
            check_int("n", bad)
    with pytest.raises(ValueError, match="n must be a non-negative integer or None, got -1"):
        check_int("n", -1, 0, optional=True)
    with pytest.raises(ValueError, match=r"n must be an integer >= 2 \(why\), got 1"):
        check_int("n", 1, 2, why=" (why)")
    with pytest.raises(ValueError, match="n must be an integer, got False"):
        check_int("n", False, None)


def test_check_real_rules():
    for ok in (1e-3, 2, np.float32(0.5), np.float64(3.0)):
        check_real("lr", ok, positive=True)
    check_real("clip", 0.0, non_negative=True)
    check_real("p", 0.0, non_negative=True, below=1.0)
    check_real("t", None, optional=True)
    for bad in (math.inf, -math.inf, math.nan, 0.0, -1.0, True, "0.1", None):
        with pytest.raises(ValueError, match="lr must be a positive finite number"):
            check_real("lr", bad, positive=True)
    with pytest.raises(ValueError, match=r"p must be a non-negative finite number below 1.0, got 1.0"):
        check_real("p", 1.0, non_negative=True, below=1.0)
    with pytest.raises(ValueError, match="mode must be one of qa, lm, got 'x'"):
        check_choice("mode", "x", ("qa", "lm"))


@pytest.mark.parametrize(
    "make",
    [
        lambda v: A2CConfig(hidden_size=v),
        lambda v: A2CConfig(trials=v),
        lambda v: CatbAbIConfig(batch_size=v),
        lambda v: CatbAbIConfig(eval_segments=v),
        lambda v: CatbAbIModelConfig(memory="fwm", hidden_size=v),
        lambda v: LMModelConfig(vocab_size=10, hidden_size=v),
        lambda v: LMConfig(bptt=v),
        lambda v: LMConfig(steps=v),
        lambda v: TaskConfig(horizon=v),
        lambda v: FastWeightMemory(8, d_fwm=v),
        lambda v: FWMLSTM(8, hidden_size=v),
    ],
)
def test_every_size_refuses_a_bool_and_zero(make):
    for bad in (True, 0):
        with pytest.raises(ValueError, match="must be a positive integer"):
            make(bad)


@pytest.mark.parametrize(
    "make",
    [
        lambda v: A2CConfig(lr=v),
        lambda v: CatbAbIConfig(lr=v),
        lambda v: LMConfig(lr=v),
        lambda v: LMConfig(asgd_lr=v),
        lambda v: LMConfig(time_budget=v),
        lambda v: A2CConfig(time_budget=v),
    ],
)
def test_every_rate_refuses_infinity_and_nan(make):
    for bad in (math.inf, math.nan, -1.0):
        with pytest.raises(ValueError, match="must be a positive finite number"):
            make(bad)
