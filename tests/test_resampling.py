"""The series bootstrap of the back-test's accuracy figures, against known answers."""
import numpy as np
import pandas as pd

from simulate.resampling import accuracy_intervals, interval_table, series_bootstrap


def test_independent_points_give_the_binomial_interval():
    rng = np.random.default_rng(1)
    v = (rng.random(400) < 0.8).astype(float)
    m, lo, hi = series_bootstrap(v, np.arange(400), n_boot=4000)
    half = 1.645 * np.sqrt(m * (1 - m) / 400)
    assert abs((hi - lo) / 2 - half) < 0.15 * half
    assert lo < m < hi


def test_points_of_one_series_count_as_one_series():
    # 10 series, 10 points each, identical within a series: the evidence is 10
    # outcomes, not 100 — the interval must be as wide as for 10 independent points
    rng = np.random.default_rng(2)
    per_series = (rng.random(10) < 0.7).astype(float)
    v, s = np.repeat(per_series, 10), np.repeat(np.arange(10), 10)
    m, lo, hi = series_bootstrap(v, s, n_boot=4000)
    _, lo_iid, hi_iid = series_bootstrap(v, np.arange(100), n_boot=4000)
    assert (hi - lo) > 2.5 * (hi_iid - lo_iid)
    assert abs((hi - lo) / 2 - 1.645 * np.sqrt(m * (1 - m) / 10)) < 0.35 * 1.645 * np.sqrt(m * (1 - m) / 10)


def test_interval_covers_the_true_mean_at_about_its_level():
    # clustered data with a known mean: series effects + point noise, 30 series of 1–6 points
    rng = np.random.default_rng(3)
    hits = 0
    for rep in range(300):
        n_pts = rng.integers(1, 7, 30)
        eff = rng.normal(0.0, 1.0, 30)
        v = np.concatenate([e + rng.normal(0, 0.5, k) for e, k in zip(eff, n_pts)])
        s = np.repeat(np.arange(30), n_pts)
        _, lo, hi = series_bootstrap(v, s, n_boot=1000, seed=rep)
        hits += lo <= 0.0 <= hi
    assert 0.82 <= hits / 300 <= 0.96


def test_gain_sign_follows_which_model_is_closer():
    # the rule's CRPS is the model's plus 0.05 at every point: gain 0.05, interval tight
    rows = []
    for s in range(8):
        for h in (1, 2, 3):
            base = dict(origin=2015, series=f"s{s}", year=2015 + h, horizon=h, cover80=True)
            rows.append(dict(base, model="hierarchical", crps=0.1 + 0.01 * s))
            rows.append(dict(base, model="last", crps=0.15 + 0.01 * s, cover80=False))
    t = accuracy_intervals(pd.DataFrame(rows)).set_index("horizon")
    assert np.isclose(t.loc["1–2", "gain_vs_last"], 0.05)
    assert t.loc["3", "gain_vs_last_lo"] > 0.049 and t.loc["3", "series"] == 8
    assert t.loc["3–5", "n"] == 8 and t.loc["1–2", "cover80"] == 1.0
    shown = interval_table(t.reset_index()).set_index("horizon")
    assert shown.loc["1–2", "cover80"] == "1.000 (1.000…1.000)"
    assert shown.loc["1–2", "gain_vs_last"] == "0.050 (0.050…0.050)"
