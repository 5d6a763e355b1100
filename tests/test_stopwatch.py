import time

import pytest

from edge.pose.stopwatch import Stopwatch


def test_stopwatch_accumulates_per_stage_nested_and_on_errors():
    sw = Stopwatch()
    with sw("a"):
        time.sleep(0.002)
        with sw("b"):  # laps are independent: nesting is fine
            time.sleep(0.002)
    with sw("a"):  # a stage run twice in a frame adds up
        time.sleep(0.002)
    with pytest.raises(ValueError), sw("c"):  # a stage that fails is still timed
        time.sleep(0.002)
        raise ValueError
    assert set(sw.ms) == {"a", "b", "c"}
    assert sw.ms["b"] >= 2.0 and sw.ms["c"] >= 2.0
    assert sw.ms["a"] >= sw.ms["b"] + 4.0
