"""Fan charts (PNG): history, median, 80 % and 95 % bands, target marker."""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .results import read_run  # noqa: E402

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
             "Source Han Sans SC", "SimHei", "Microsoft YaHei", "AR PL UMing CN")


_rescanned = False


def cjk_font() -> str | None:
    """The first CJK font matplotlib can use.  A font installed after matplotlib
    built its cache is invisible until the cache is rebuilt, so rebuild once."""
    global _rescanned
    for attempt in range(2):
        names = {f.name for f in font_manager.fontManager.ttflist}
        for n in CJK_FONTS:
            if n in names:
                return n
        if _rescanned or attempt:
            break
        _rescanned = True
        _rebuild_font_list()
    return None


def _rebuild_font_list() -> None:
    """Scan the system's fonts again (and rewrite matplotlib's cache file), updating
    the font manager *in place*: the Agg renderer and ``findfont`` hold the manager
    object they imported, so putting a new one in ``font_manager.fontManager`` left
    them on the stale list — Chinese labels then came out as boxes in DejaVu Sans on
    the first run after ``apt-get install fonts-noto-cjk``, the step the notice asks for."""
    live = font_manager.fontManager
    fresh = font_manager._load_fontmanager(try_read_cache=False)
    live.__dict__.update(fresh.__dict__)
    live._findfont_cached.cache_clear()   # lookups made with the stale list


UNITS_EN = {"件": "items", "件/万人": "per 10,000 residents", "亿元": "100 million yuan", "万元": "10,000 yuan",
            "家": "organisations", "个": "units", "人": "persons", "分": "points", "项": "items", "次": "times",
            "万件": "10,000 items", "万人": "10,000 persons", "所": "institutions", "%": "%"}
_CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")


def unit_label(unit, zh: bool) -> str:
    unit = "" if unit is None or unit != unit else str(unit)
    if zh:
        return unit
    return UNITS_EN.get(unit, "" if _CJK.search(unit) else unit)


def font_notice() -> str | None:
    """What to tell the user when charts cannot carry Chinese labels."""
    if cjk_font():
        return None
    return "notice: no CJK font found; charts use English labels (install fonts-noto-cjk for Chinese)"


def use_cjk(lang: str = "zh") -> bool:
    """Chinese labels when asked for and a CJK font exists (else English, never tofu boxes)."""
    font = cjk_font()
    if font:
        plt.rcParams["font.family"] = [font, "DejaVu Sans"]
    return lang == "zh" and font is not None


def fan_chart(row, g, history, zh: bool, figsize=(6.4, 3.8)):
    """One indicator: history dots, median, 80 %/95 % bands, the target.

    ``row``: its probabilities row; ``g``: its forecasts rows; ``history``: observed
    full-year values (year, value)."""
    fig, ax = plt.subplots(figsize=figsize, dpi=110)
    ax.fill_between(g.year, g.q025, g.q975, color="#9ecae1", alpha=0.5, label="95%")
    ax.fill_between(g.year, g.q10, g.q90, color="#4292c6", alpha=0.5, label="80%")
    ax.plot(g.year, g["median"], color="#08519c", lw=2, label="中位数" if zh else "median")
    if history is not None and len(history):
        ax.plot(history.year, history.value, "o", color="black", ms=4, label="历史" if zh else "history")
    if row.target == row.target:
        if row.measure == "level":
            ax.plot([row.target_year], [row.target], marker="*", color="#d62728", ms=14, ls="none",
                    label=("目标" if zh else "target") + f" {row.comparator}{row.target:g}")
            ax.axvline(row.target_year, color="#d62728", lw=0.6, ls=":")
        else:
            ax.axvline(row.target_year, color="#d62728", lw=0.6, ls=":",
                       label=(f"目标年（{row.measure} {row.comparator}{row.target:g}）" if zh
                              else f"target year ({row.measure} {row.comparator}{row.target:g})"))
    title = row.name_zh if zh else row.name_en
    p = row.p_met
    ax.set_title(f"{title}\n" + (f"实现概率 {p:.0%}（{row.category_zh}）" if zh else f"P(met) {p:.0%} ({row.category_en})")
                 if p == p else str(title), fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # years, not 2023.5
    ax.set_xlabel("年份" if zh else "year")
    ax.set_ylabel(unit_label(row.unit, zh))
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def history_of(reg, plan, series: str):
    if reg is None or plan is None:
        return None
    obs = reg.observations
    return obs[(obs.jurisdiction == plan.jurisdiction) & (obs.series == series) & (obs.period == "full")]


def plot_run(reg, run_dir: Path, plan_ids=None, out: Path | None = None, lang: str = "zh"):
    run = read_run(run_dir)
    probs, fcs = run["probabilities"], run["forecasts"]
    out = out or Path(run_dir) / "charts"
    out.mkdir(parents=True, exist_ok=True)
    zh = use_cjk(lang)
    notice = font_notice()
    written = []
    for (pid, iid, scen), g in fcs.groupby(["plan", "indicator", "scenario"], sort=False):
        if plan_ids and pid not in plan_ids:
            continue
        row = probs[(probs.plan == pid) & (probs.indicator == iid) & (probs.scenario == scen)].iloc[0]
        fig = fan_chart(row, g, history_of(reg, reg.plans.get(pid), row.series), zh)
        path = out / f"{pid}__{iid}__{scen}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written, notice
