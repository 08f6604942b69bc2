"""Target judgement: worked examples with hand-computed answers, and properties."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from simulate import judge

YEARS = [2023, 2024, 2025, 2026]
# four draws, hand-made
X = np.array([[10, 11, 12, 13],
              [10, 12, 14, 16],
              [10, 9, 9, 9],
              [10, 10, 11, 12]], dtype=float)


def test_level_worked_example():
    m = judge.metric("level", X, YEARS, target_year=2026)
    assert m.tolist() == [13, 16, 9, 12]
    p, se = judge.probability(judge.met(m, 12, ">="))
    assert p == 0.75 and se == pytest.approx(np.sqrt(0.75 * 0.25 / 4))
    assert judge.probability(judge.met(m, 12, ">"))[0] == 0.5
    assert judge.probability(judge.met(m, 12, "<="))[0] == 0.5


def test_cumulative_worked_example_with_an_observed_year():
    m = judge.metric("cumulative", X, YEARS, target_year=2026, window=(2024, 2026))
    assert m.tolist() == [36, 42, 27, 33]
    # 2024 already reported as 20: it replaces every draw's simulated 2024
    m2 = judge.metric("cumulative", X, YEARS, target_year=2026, window=(2024, 2026), observed={2024: 20})
    assert m2.tolist() == [45, 50, 38, 43]


def test_increment_worked_example():
    m = judge.metric("increment", X, YEARS, target_year=2026, window=(2024, 2026), baseline_year=2023)
    assert m.tolist() == [3, 6, -1, 2]
    assert judge.probability(judge.met(m, 3))[0] == 0.5


def test_relative_compares_within_the_same_draw():
    other = np.array([[0, 0, 0, 12], [0, 0, 0, 17], [0, 0, 0, 8], [0, 0, 0, 12]], dtype=float)
    m = judge.metric("relative", X, YEARS, target_year=2026, other=other)
    assert m.tolist() == [1, -1, 1, 0]
    assert judge.probability(judge.met(m, 0, ">"))[0] == 0.5
    # shuffling the other place's draws changes the answer: pairing is by draw
    m_shuffled = judge.metric("relative", X, YEARS, target_year=2026, other=other[[1, 0, 3, 2]])
    assert m_shuffled.tolist() != m.tolist()


def test_observed_window_gives_zero_or_one():
    obs = {2024: 5, 2025: 5, 2026: 5}
    m = judge.metric("cumulative", X, YEARS, target_year=2026, window=(2024, 2026), observed=obs)
    assert judge.probability(judge.met(m, 15))[0] == 1.0
    assert judge.probability(judge.met(m, 16))[0] == 0.0


def test_progress_ratio_and_required_growth():
    # 24 → 30 over 2023–2026; 27 reached in 2024.5: half the distance in half the time
    assert judge.progress_ratio(24, 27, 30, 2023, 2024.5, 2026) == pytest.approx(1.0)
    assert judge.progress_ratio(24, 25, 30, 2023, 2024.5, 2026) == pytest.approx(1 / 3)
    assert judge.required_growth(100, 121, 2024, 2026) == pytest.approx(0.10)


def test_likelihood_words_and_categories():
    assert judge.likelihood_words(0.995) == ("几乎确定", "virtually certain")
    assert judge.likelihood_words(0.5) == ("或许可能", "about as likely as not")
    assert judge.likelihood_words(0.05) == ("很不可能", "very unlikely")
    assert judge.category(0.95, False)[0] == "快于预期"
    assert judge.category(0.6, False)[0] == "基本符合预期"
    assert judge.category(0.2, False)[0] == "滞后"
    assert judge.category(0.2, True)[0] == "提前实现"
    # once the data cover the target year, the plan is over for that target
    assert judge.category(1.0, True, finished=True)[0] == "已实现"
    assert judge.category(0.0, False, finished=True)[0] == "未实现"


paths = arrays(np.float64, (50, 4), elements=st.floats(0, 1000, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(paths, st.floats(0, 1000), st.floats(0, 500))
def test_raising_a_target_never_raises_p(x, t, dt):
    m = judge.metric("level", x, YEARS, target_year=2026)
    assert judge.probability(judge.met(m, t + dt))[0] <= judge.probability(judge.met(m, t))[0]


@settings(max_examples=60, deadline=None)
@given(paths, st.floats(0, 3000), st.floats(0, 0.5))
def test_positive_growth_shift_never_lowers_p(x, t, g):
    """A growth shift g ≥ 0 applied on the log scale after 2023 (as scenarios do)."""
    from models.transforms import forward, inverse
    from simulate.scenario import Adjustment, apply_adjustments

    yrs = np.array(YEARS)
    z = forward(x + 1, "flow")
    adj = Adjustment({}, "growth_shift", {"mean": g, "sd": 0.0})
    z2 = apply_adjustments(z, yrs, 2023, [adj], (lambda v: forward(v, "flow"), lambda v: inverse(v, "flow")),
                           np.random.default_rng(0))
    for measure, kw in (("level", {}), ("cumulative", {"window": (2024, 2026)})):
        a = judge.metric(measure, inverse(z, "flow"), YEARS, target_year=2026, **kw)
        b = judge.metric(measure, inverse(z2, "flow"), YEARS, target_year=2026, **kw)
        assert judge.probability(judge.met(b, t))[0] >= judge.probability(judge.met(a, t))[0]


@settings(max_examples=60, deadline=None)
@given(paths)
def test_cumulative_equals_sum_of_flows(x):
    m = judge.metric("cumulative", x, YEARS, target_year=2026, window=(2023, 2026))
    np.testing.assert_allclose(m, x.sum(axis=1))


@settings(max_examples=40, deadline=None)
@given(paths, st.floats(0, 1000))
def test_fully_observed_window_is_decided(x, t):
    obs = {y: float(v) for y, v in zip(YEARS, x[0])}
    m = judge.metric("cumulative", x, YEARS, target_year=2026, window=(2023, 2026), observed=obs)
    assert judge.probability(judge.met(m, t))[0] in (0.0, 1.0)


def _ar1_chains(rng, reps, chains, n, phi):
    """Stationary N(0, 1) AR(1) chains: integrated autocorrelation time (1 + φ)/(1 − φ)."""
    x = np.empty((reps, chains, n))
    x[..., 0] = rng.standard_normal((reps, chains))
    e = rng.standard_normal((reps, chains, n)) * np.sqrt(1 - phi ** 2)
    for t in range(1, n):
        x[..., t] = phi * x[..., t - 1] + e[..., t]
    return x


def test_batch_means_error_matches_the_spread_of_repeated_runs():
    # Known answer: the posterior of θ is N(0, 1) but the sampler's draws are an AR(1)
    # chain (φ = 0.95: ≈ 200 effective of 8,000 draws); each of 4,000 paths resamples a
    # draw and adds its own N(0, 0.5²) noise; a target is met when the path exceeds 0.8.
    from scipy.stats import norm

    rng = np.random.default_rng(11)
    reps, chains, n, paths, cut = 300, 4, 2000, 4000, 0.8
    theta = _ar1_chains(rng, reps, chains, n, 0.95).reshape(reps, chains * n)
    p_true = norm.sf(cut / np.sqrt(1 + 0.25))
    est, se, naive = [], [], []
    for r in range(reps):
        pick = rng.integers(0, chains * n, paths)
        hits = theta[r, pick] + 0.5 * rng.standard_normal(paths) > cut
        p, s_naive = judge.probability(hits)
        est.append(p)
        naive.append(s_naive)
        se.append(judge.batch_means_se(hits, np.argsort(pick, kind="stable")))
    est, se, naive = map(np.asarray, (est, se, naive))
    spread = est.std(ddof=1)
    assert abs(est.mean() - p_true) < 3 * spread / np.sqrt(reps)
    # the batch-means error is the spread actually seen over repeated runs …
    assert 0.85 < se.mean() / spread < 1.15
    assert 0.90 <= np.mean(np.abs(est - p_true) <= 1.96 * se) <= 0.98
    # … where the error of independent paths is far too small
    assert naive.mean() / spread < 0.6


def test_batch_means_error_of_independent_paths_is_the_binomial_one():
    rng = np.random.default_rng(5)
    hits = rng.random(4000) < 0.3
    se = judge.batch_means_se(hits, np.arange(4000))
    assert se == pytest.approx(np.sqrt(0.3 * 0.7 / 4000), rel=0.2)
    # too few paths for two batches: no error claimed
    assert np.isnan(judge.batch_means_se(hits[:3], np.arange(3)))
