"""sedppl.model.checks: a bool never passes for a number; NumPy's integers do not pass for settings."""

import math

import numpy as np

from sedppl.model.checks import is_real, is_whole


def test_is_whole():
    assert is_whole(3) and is_whole(0, 0) and is_whole(-2) and is_whole(5, 5)
    assert not is_whole(4, 5)
    for value in (True, False, 3.0, "3", None, np.int64(3)):
        assert not is_whole(value), value


def test_is_real():
    assert is_real(3) and is_real(0.5) and is_real(np.float64(2.0)) and is_real(math.nan)
    for value in (True, "1.0", None, np.float32(1.0), [1.0]):
        assert not is_real(value), value
