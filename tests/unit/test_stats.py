from __future__ import annotations

import numpy as np
import pytest

from app.services.stats import percentile


@pytest.mark.parametrize("values", [[7.0], [3, 1, 4, 1, 5, 9, 2, 6], list(range(200)), [0.5, 0.25]])
@pytest.mark.parametrize("percent", [0, 50, 95, 100])
def test_percentiles_are_numpys(values, percent):
    assert percentile(values, percent, digits=6) == pytest.approx(float(np.percentile(values, percent)), abs=1e-6)


def test_no_values_have_no_percentile():
    assert percentile([], 50) is None
