"""Fan charts (PNG): history, median, 80 % and 95 % bands, target marker."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

from .results import read_run  # noqa: E402

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
             "Source Han Sans SC", "SimHei", "Microsoft YaHei", "AR PL UMing CN")


def cjk_font() -> str | None:
    names = {f.name for f in font_manager.fontManager.ttflist}
    for n in CJK_FONTS:
        if n in names:
            return n
    return None


def plot_run(reg, run_dir: Path, plan_ids=None, out: Path | None = None):
    run = read_run(run_dir)
    probs, fcs = run["probabilities"], run["forecasts"]
    out = out or Path(run_dir) / "charts"
    out.mkdir(parents=True, exist_ok=True)
    font = cjk_font()
    notice = None if font else "notice: no CJK font found; charts use English labels (install fonts-noto-cjk for Chinese)"
    if font:
        plt.rcParams["font.family"] = [font, "DejaVu Sans"]
    zh = font is not None
    written = []
    obs = reg.observations
    for (pid, iid, scen), g in fcs.groupby(["plan", "indicator", "scenario"], sort=False):
        if plan_ids and pid not in plan_ids:
            continue
        row = probs[(probs.plan == pid) & (probs.indicator == iid) & (probs.scenario == scen)].iloc[0]
        plan = reg.plans.get(pid)
        fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
        ax.fill_between(g.year, g.q025, g.q975, color="#9ecae1", alpha=0.5, label="95%")
        ax.fill_between(g.year, g.q10, g.q90, color="#4292c6", alpha=0.5, label="80%")
        ax.plot(g.year, g["median"], color="#08519c", lw=2, label="中位数" if zh else "median")
        if plan is not None:
            h = obs[(obs.jurisdiction == plan.jurisdiction) & (obs.series == row.series) & (obs.period == "full")]
            if len(h):
                ax.plot(h.year, h.value, "o", color="black", ms=4, label="历史" if zh else "history")
        if row.measure == "level" and row.target == row.target:
            ax.plot([row.target_year], [row.target], marker="*", color="#d62728", ms=14, ls="none",
                    label=("目标" if zh else "target") + f" {row.comparator}{row.target:g}")
        title = row.name_zh if zh else row.name_en
        p = row.p_met
        ax.set_title(f"{title}\n" + (f"实现概率 {p:.0%}（{row.category_zh}）" if zh else f"P(met) {p:.0%} ({row.category_en})")
                     if p == p else title, fontsize=10)
        ax.set_xlabel("年份" if zh else "year")
        ax.set_ylabel(str(row.unit))
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out / f"{pid}__{iid}__{scen}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written, notice
