"""The drift reference sample: at most 10,000 rows, drawn without replacement, the same rows for
the same data (seeded)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlservice.monitoring.reference import REFERENCE_MAX_ROWS, sample_reference


def test_a_large_frame_is_sampled_to_the_cap_the_same_way_each_time():
    frame = pd.DataFrame({"x": np.arange(25_000), "y": np.arange(25_000) * 2.0})
    first, second = sample_reference(frame), sample_reference(frame)
    assert len(first) == REFERENCE_MAX_ROWS == 10_000 and first["x"].is_unique
    pd.testing.assert_frame_equal(first, second)
    assert first["x"].between(0, 24_999).all() and (first["y"] == first["x"] * 2.0).all()
    assert not first["x"].is_monotonic_increasing  # a random sample, not the first rows


def test_a_small_frame_is_kept_whole():
    frame = pd.DataFrame({"x": [3, 1, 2]}, index=[7, 8, 9])
    kept = sample_reference(frame)
    assert kept["x"].tolist() == [3, 1, 2] and kept.index.tolist() == [0, 1, 2]
