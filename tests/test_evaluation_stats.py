"""Bootstrap intervals: right on hand cases, and about 95% coverage on simulated questions."""

import numpy as np
import pytest

from framework.evaluation.stats import NA, bootstrap_interval, paired_bootstrap, percentile, ratio_of_sums


def test_hand_cases():
    assert bootstrap_interval([0.4] * 10).to_dict() == {"value": 0.4, "low": 0.4, "high": 0.4, "n": 10}
    assert bootstrap_interval([]) == NA
    est = bootstrap_interval([0.0, 1.0] * 20)
    assert est.value == 0.5 and est.low < 0.5 < est.high and est.high - est.low == pytest.approx(0.3, abs=0.05)
    assert bootstrap_interval([1, 2, 3, 4, 100], statistic=percentile(50)).value == 3.0
    assert bootstrap_interval([(10, 1), (30, 3)], statistic=ratio_of_sums).value == 10.0
    assert bootstrap_interval([0.0, 1.0] * 5, seed=3) == bootstrap_interval([0.0, 1.0] * 5, seed=3)
    with pytest.raises(ValueError, match="confidence 95 must be between 0 and 1"):
        bootstrap_interval([1.0], confidence=95)


def test_paired_difference_skips_questions_either_side_lacks():
    d = paired_bootstrap([1.0, 0.5, None, 0.0], [0.5, 0.5, 1.0, None])
    assert d.value == 0.25 and d.n == 2
    same = paired_bootstrap([0.2, 0.9, 0.4] * 10, [0.1, 0.8, 0.3] * 10)  # always 0.1 better: no noise
    assert same.low == pytest.approx(0.1) and same.high == pytest.approx(0.1)
    with pytest.raises(ValueError, match="same questions"):
        paired_bootstrap([1.0], [1.0, 2.0])


@pytest.mark.parametrize("draw", ["normal", "bernoulli"])
def test_interval_covers_the_true_mean_at_about_the_nominal_rate(draw):
    rng = np.random.default_rng(7)
    covered = 0
    for sim in range(200):
        values = rng.normal(0.4, 0.2, 60) if draw == "normal" else (rng.random(60) < 0.4).astype(float)
        est = bootstrap_interval(values, resamples=1000, seed=sim)
        covered += est.low <= 0.4 <= est.high
    assert 0.9 <= covered / 200 <= 0.99


def test_paired_interval_covers_the_true_difference():
    rng = np.random.default_rng(11)
    covered = 0
    for sim in range(200):
        difficulty = rng.random(50)  # shared by both modes: what pairing cancels
        a = difficulty + rng.normal(0.05, 0.1, 50)
        b = difficulty + rng.normal(0.0, 0.1, 50)
        est = paired_bootstrap(list(a), list(b), resamples=1000, seed=sim)
        covered += est.low <= 0.05 <= est.high
    assert 0.9 <= covered / 200 <= 0.99
