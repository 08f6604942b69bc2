"""The evaluator's report: one self-contained HTML file (no network, images inline).

For each plan: a headline (expected number of targets met, P(all met), P(≥ 80 %),
split by 预期性 / 约束性), the ranked risk table (coloured by category, sortable by
clicking a header — a few lines of inline JavaScript, no server), a fan chart per
indicator, the scenario comparison when the run holds several scenarios, the
assumptions and methods in plain words, the data sources with links, and the
diagnostics.  ``build_report`` returns the HTML; ``ipsim report`` writes it.
"""
from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

from .judge import ACHIEVED, CATEGORY_CUTS, MISSED, REACHED
from .results import read_run, scenarios_side_by_side

COLOURS = {"已实现": "#1a9850", "未实现": "#d73027", "提前实现": "#1a9850", "快于预期": "#91cf60", "基本符合预期": "#fee08b", "滞后": "#fc8d59",
           "无法评估": "#d9d9d9"}
URL = re.compile(r"https?://[^\s,;，；）)\"'<>]+")

T = {
    "zh": dict(title="知识产权规划目标实现评估报告", run="运行", scenario="情景", created="生成时间",
               seed="随机种子", draws="模拟次数", headline="总体判断", all="全部指标", expected="预期性",
               binding="约束性", targets="目标数", evaluable="可评估", exp_met="预期实现数", p_all="全部实现概率",
               p80="实现80%以上概率", risk="风险排序（按实现概率从低到高；点击表头可排序）", rank="序号",
               indicator="指标", target="目标", latest="最新值", p="实现概率", category="评估结论",
               likelihood="可能性", basis="依据", progress="进度比", attribute="属性", charts="各指标预测扇形图",
               p_in="趋势模型", p_out="参照组（80%区间）", why="依据说明",
               compare="情景比较（实现概率）", methods="方法与假设（写给非统计专业读者）", readings="对规划表述的解读",
               sources="数据来源", diag="模型诊断", not_eval="无法评估的目标", reason="原因",
               basis_words={"data": "本地数据", "pooled": "数据少，借助上级/同类", "prior-only": "仅基期值，依靠上级趋势",
                            "scenario-only": "仅情景假设", "reference-class": "无本地数据，仅参照以往规划", "": ""},
               lang_note=""),
    "en": dict(title="IP plan targets: likelihood report", run="Run", scenario="Scenario", created="Created",
               seed="Seed", draws="Draws", headline="Headline", all="All targets", expected="Expected (预期性)",
               binding="Binding (约束性)", targets="Targets", evaluable="Evaluable", exp_met="Expected met",
               p_all="P(all met)", p80="P(≥ 80 % met)", risk="Risk ranking (lowest probability first; click a header to sort)",
               rank="#", indicator="Indicator", target="Target", latest="Latest", p="P(met)", category="Assessment",
               likelihood="Likelihood", basis="Basis", progress="Progress ratio", attribute="Attribute",
               charts="Fan chart per indicator", p_in="Trend model", p_out="Reference class (80 %)", why="Why", compare="Scenario comparison (P(met))",
               methods="Methods and assumptions (for non-statisticians)", readings="How ambiguous targets were read",
               sources="Data sources", diag="Model diagnostics", not_eval="Targets that could not be evaluated",
               reason="Reason",
               basis_words={"data": "own data", "pooled": "few points, borrows from parent/peers",
                            "prior-only": "baseline only, parent's trend", "scenario-only": "scenario assumption only",
                            "reference-class": "no local reading: past plans only", "": ""},
               lang_note=""),
}

METHODS = {
    "zh": [
        "每个指标都用历史数据建立增长模型，模拟几千条未来可能的路径；“实现概率”就是这些路径中达到目标的比例。",
        "模型是分层贝叶斯增长模型：各地同一指标的增速相互借鉴，城市指标与上级（省、全国）同一指标的增速挂钩。"
        "本地数据越少，越依赖上级和同类指标的经验（表中“依据”一栏说明了这一点）。",
        "年度波动按历史偏离程度估计，偏离会持续几年再回到趋势；官方统计的误差设为约1%，转载约3%，推算值约8%。",
        "只有部分月份的数据按全年折算，并计入额外的不确定性；“超过”类数据作为下限处理。",
        "累计目标按规划期内各年合计判断；已公布年份的数值直接采用，不再模拟。",
        "结论分档：已达到目标为“提前实现”；概率≥90%为“快于预期”；50%–90%为“基本符合预期”；低于50%为“滞后”。"
        "可能性用语采用IPCC的校准表述（如“很可能”≥90%）。",
        "与“时间过半、任务过半”的进度比不同，本报告的概率考虑了增速的不确定性和剩余时间；进度比仅作参考列出。",
        "两种视角合成一个概率：“趋势模型”看本地历史数据；“参照组”看以往规划中同类目标（按指标类型、口径、属性、"
        "行政层级、期限和目标难度）实际达成的比例——规划目标本身也是信息，制定者了解自己的工作安排。"
        "本地历史越长，趋势模型权重越大；只有基期值或没有本地数据时，以参照组为准。参照组样本小且偏向成功案例"
        "（未完成的目标很少被公开报告），其区间说明了这一不确定性。",
        "“蒙特卡洛标准误”是模拟本身的误差，不是预测的不确定性：按各路径所用的后验抽样顺序分批计算，"
        "相关的抽样不重复计数；概率离分档线不到两倍标准误时，换一个随机种子分档可能不同。",
    ],
    "en": [
        "Each indicator's history feeds a growth model that simulates thousands of possible futures; P(met) is the "
        "share of those futures that reach the target.",
        "The model is a hierarchical Bayesian growth model: growth rates of one indicator are pooled across places, "
        "and a city's indicator is tied to its province's or the nation's. The fewer local data, the more it leans "
        "on the parent and on similar indicators (the 'basis' column says which).",
        "Year-to-year swings are estimated from the history and persist for a few years before returning to trend; "
        "official figures are taken as accurate to about 1 %, reprints 3 %, estimates 8 %.",
        "Part-year figures are annualised with extra uncertainty; 'more than' figures are treated as lower bounds.",
        "Cumulative targets are judged on the sum over the plan window; years already published enter as published.",
        "Assessment bands: target already reached → ahead (提前实现); P ≥ 90 % → faster than expected; 50–90 % → on "
        "track; below 50 % → lagging. Likelihood words follow the IPCC calibrated language.",
        "Unlike the progress ratio ('half the time, half the task'), the probability accounts for uncertain growth "
        "and the time left; the ratio is listed for reference only.",
        "Two views make one probability: the trend model reads the local history; the reference class asks how "
        "often targets like this one (by kind, measure, attribute, level, horizon and ambition) were met in past "
        "plans — a target is evidence too, since planners know their programme. The longer the local history, the "
        "more the trend model counts; with only a baseline or no local reading the reference class decides. The "
        "reference class is small and biased toward success (misses are rarely published); its interval shows it.",
        "The Monte Carlo s.e. is the error of the simulation itself, not forecast uncertainty: computed by batch "
        "means over the posterior draws the paths use, so correlated draws are not counted twice; a probability "
        "within two s.e. of a band edge may change band with another seed.",
    ],
}

CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;margin:24px auto;max-width:1100px;
color:#222;line-height:1.5;padding:0 16px}
h1{font-size:1.6em;border-bottom:3px solid #08519c;padding-bottom:6px}h2{color:#08519c;margin-top:1.8em}
table{border-collapse:collapse;margin:8px 0 16px;font-size:0.92em;width:100%}
th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eef3f8;cursor:pointer;user-select:none}th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
td.num{text-align:right;font-variant-numeric:tabular-nums}.meta{color:#555;font-size:0.9em}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #ccc;border-radius:6px;padding:8px 12px;min-width:180px}
.card b{font-size:1.4em;color:#08519c}.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:10px}
.charts img{width:100%;border:1px solid #eee}.warn{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px}
.legend span{display:inline-block;padding:1px 8px;margin-right:6px;border-radius:3px}
"""

JS = """
(function(){
  var errors = [];
  window.addEventListener('error', function(e){ errors.push(String(e.message)); document.body.dataset.jsErrors = errors.length; });
  var consoleError = console.error;
  console.error = function(){ errors.push('console.error'); document.body.dataset.jsErrors = errors.length;
                              return consoleError.apply(console, arguments); };
  function key(td){ var v = td.getAttribute('data-sort'); if (v === null) v = td.textContent;
    var n = parseFloat(v); return isNaN(n) ? v : n; }
  document.querySelectorAll('table.sortable').forEach(function(table){
    table.querySelectorAll('th').forEach(function(th, i){
      th.addEventListener('click', function(){
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var asc = !th.classList.contains('sorted-asc');
        table.querySelectorAll('th').forEach(function(h){ h.classList.remove('sorted-asc','sorted-desc'); });
        th.classList.add(asc ? 'sorted-asc' : 'sorted-desc');
        rows.sort(function(a, b){ var x = key(a.cells[i]), y = key(b.cells[i]);
          if (typeof x !== typeof y) { x = String(x); y = String(y); }
          return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); });
        rows.forEach(function(r){ body.appendChild(r); });
      });
    });
  });
  document.body.dataset.riskRows = document.querySelectorAll('table.risk tbody tr').length;
  document.body.dataset.jsErrors = errors.length;
  document.body.dataset.ready = '1';
})();
"""


def _e(x) -> str:
    return "" if x is None or (isinstance(x, float) and x != x) else html.escape(str(x))


def _pct(v) -> str:
    return "—" if v is None or v != v else f"{100 * v:.0f}%"


def _num(v) -> str:
    if v is None or v != v:
        return "—"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _rhat(v) -> str:
    """R-hat to three decimals: the rule is ≤ 1.01, and 1.0149 must not read "1.01"."""
    return "—" if v is None or v != v else f"{v:.3f}"


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


REASONS_ZH = [("no observation of this series for this place", "本地没有该指标的数据：请用 --data 补充基期值（ipsim data template 可生成填报表）"),
              ("target unreadable or not numeric", "目标值无法读取或不是数值（见备注）"),
              ("no observation of the comparison series", "缺少对比地区的数据")]


def _reason(text, lang: str) -> str:
    text = "" if text is None or text != text else str(text)
    if lang == "zh":
        for en, zh in REASONS_ZH:
            if text.startswith(en):
                return zh
    return text


def _get(r, name):
    v = getattr(r, name, None)
    return None if v is None or (isinstance(v, float) and v != v) else v


def _views(r) -> str:
    """The outside view's P with its 80 % interval, e.g. 85% (60–99)."""
    p, lo, hi = _get(r, "p_outside"), _get(r, "p_outside_lo"), _get(r, "p_outside_hi")
    if p is None:
        return "—"
    return f"{_pct(p)} ({100 * lo:.0f}–{100 * hi:.0f})" if lo is not None and hi is not None else _pct(p)


def _why(r, lang: str) -> str:
    """One line: how the probability was reached (reference class n, both views)."""
    text = _get(r, "reason_zh" if lang == "zh" else "reason") or ""
    if not text and _get(r, "decided_by"):
        text = "已由公布数据确定" if lang == "zh" else "decided by published data"
    return str(text)


def _links(text: str) -> str:
    out, last = [], 0
    for m in URL.finditer(text):
        out.append(html.escape(text[last:m.start()]))
        out.append(f'<a href="{html.escape(m.group(0))}">{html.escape(m.group(0))}</a>')
        last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def _fit_label(model, lang: str) -> str:
    """The trend model's row label: what it is, then its name in the code."""
    if model == "hierarchical":
        return "趋势模型（hierarchical）" if lang == "zh" else "trend model (hierarchical)"
    return str(model)


def _verdict(converged, lang: str) -> str:
    """A fit's convergence verdict in the report's language (是 / 否 in zh; — unknown)."""
    if converged is None:
        return "—"
    return ("是" if converged else "否 ⚠") if lang == "zh" else ("yes" if converged else "no ⚠")


def build_report(run_dir: Path, reg=None, plan_ids=None, lang: str = "zh") -> str:
    from .charts import fan_chart, history_of, use_cjk

    t = T[lang]
    run = read_run(run_dir)
    probs, fcs, summ, man = run["probabilities"], run["forecasts"], run["plan_summary"], run["manifest"]
    plans = [p for p in dict.fromkeys(probs.plan) if not plan_ids or p in plan_ids]
    scenarios = list(dict.fromkeys(probs.scenario))
    main_sc = scenarios[0]
    zh_charts = use_cjk(lang)
    name = "name_zh" if lang == "zh" else "name_en"
    catc = "category_zh" if lang == "zh" else "category_en"
    likc = "likelihood_zh" if lang == "zh" else "likelihood_en"
    parts = [f"<!DOCTYPE html><html lang=\"{'zh-CN' if lang == 'zh' else 'en'}\"><head><meta charset=\"utf-8\">",
             f"<meta name=\"viewport\" content=\"width=device-width\"><title>{_e(t['title'])}</title>",
             f"<style>{CSS}</style></head><body>", f"<h1>{_e(t['title'])}</h1>",
             f"<p class=\"meta\">{t['run']}: {_e(Path(run_dir).name)} · {t['scenario']}: "
             + "; ".join(_e(s['name']) + " — " + _e((s.get('description') or {}).get(lang, "")) for s in man["scenarios"])
             + f" · {t['created']}: {_e(man.get('created'))} · {t['seed']}: {_e(man.get('seed'))} · "
               f"{t['draws']}: {_e(man.get('draws'))}</p>"]
    diag = man["scenarios"][0].get("diagnostics", {})
    if diag.get("converged") is False:
        parts.append(f"<p class=\"warn\">{'⚠ 模型未完全收敛，相关概率需谨慎解读（见“模型诊断”）。' if lang == 'zh' else '⚠ The model did not fully converge; read the marked probabilities with care (see diagnostics).'}</p>")
    if diag.get("reference_class", {}).get("converged") is False:
        parts.append(f"<p class=\"warn\">{'⚠ 参照组（以往规划）模型未完全收敛，结合了参照组的概率需谨慎解读（见“模型诊断”）。' if lang == 'zh' else '⚠ The reference class of past plans did not fully converge; read the joined probabilities with care (see diagnostics).'}</p>")
    legend = "".join(f'<span style="background:{COLOURS[z]}">{_e(z if lang == "zh" else en)}</span>'
                     for z, en in [ACHIEVED, MISSED, REACHED] + [(zh, en) for _, zh, en in CATEGORY_CUTS]
                     + [("无法评估", "not evaluable")])
    toc = []
    for pid in plans:
        s = summ[(summ.plan == pid) & (summ.attribute == "all") & (summ.scenario == main_sc)]
        plan = reg.plans.get(pid) if reg is not None else None
        title = (plan.name_zh if lang == "zh" else plan.name_en) if plan else pid
        head = (f" — {t['exp_met']} {_num(s.iloc[0].expected_met)} / {int(s.iloc[0].evaluable)}"
                if len(s) and s.iloc[0].evaluable else "")
        toc.append(f"<li><a href=\"#{_e(pid)}\">{_e(title)}</a>{head}</li>")
    parts.append("<nav><ol>" + "".join(toc) + "</ol></nav>")
    for pid in plans:
        plan = reg.plans.get(pid) if reg is not None else None
        pp = probs[(probs.plan == pid) & (probs.scenario == main_sc)]
        title = (plan.name_zh if lang == "zh" else plan.name_en) if plan else pid
        parts.append(f"<section class=\"plan\" id=\"{_e(pid)}\"><h2>{_e(title)} <small>({_e(pid)})</small></h2>")
        # headline
        parts.append(f"<h3>{t['headline']}</h3><div class=\"cards\">")
        for attr in ("all", "expected", "binding"):
            s = summ[(summ.plan == pid) & (summ.attribute == attr) & (summ.scenario == main_sc)]
            if not len(s):
                continue
            s = s.iloc[0]
            parts.append(f"<div class=\"card\"><div>{t[attr]}</div><b>{_num(s.expected_met)} / {int(s.evaluable)}</b>"
                         f"<div>{t['exp_met']} ({t['targets']} {int(s.targets)}, {t['evaluable']} {int(s.evaluable)})</div>"
                         f"<div>{t['p_all']}: {_pct(s.p_all_met)} · {t['p80']}: {_pct(s.p_80pct_met)}</div></div>")
        parts.append("</div>")
        # risk table
        ev = pp[pp.p_met.notna()].sort_values("p_met", kind="mergesort")
        ne = pp[pp.p_met.isna()]
        parts.append(f"<h3>{t['risk']}</h3><p class=\"legend\">{legend}</p>")
        parts.append("<table class=\"sortable risk\"><thead><tr>" + "".join(
            f"<th>{t[k]}</th>" for k in ("rank", "indicator", "attribute", "target", "latest", "p", "p_in", "p_out",
                                          "category", "likelihood", "basis", "progress", "why")) + "</tr></thead><tbody>")
        for k, r in enumerate(list(ev.itertuples()) + list(ne.itertuples()), start=1):
            colour = COLOURS.get(r.category_zh, "#fff")
            warn = " ⚠" if r.converged is False or str(r.converged) == "False" else ""
            target = f"{_e(r.comparator)} {_num(r.target)} {_e(r.unit)} ({int(r.target_year)})" if r.target == r.target else "—"
            latest = f"{_num(r.latest)} ({int(r.latest_year)})" if r.latest == r.latest and r.latest is not None else "—"
            parts.append(
                f"<tr data-indicator=\"{_e(r.indicator)}\"><td class=\"num\">{k}</td><td>{_e(getattr(r, name))}</td>"
                f"<td>{t['expected'] if r.attribute == 'expected' else t['binding']}</td><td>{target}</td>"
                f"<td class=\"num\">{latest}</td>"
                f"<td class=\"num\" data-sort=\"{'' if r.p_met != r.p_met else r.p_met}\">{_pct(r.p_met)}{warn}</td>"
                f"<td class=\"num\">{_pct(_get(r, 'p_inside'))}</td><td class=\"num\">{_views(r)}</td>"
                f"<td style=\"background:{colour}\">{_e(getattr(r, catc))}</td><td>{_e(getattr(r, likc))}</td>"
                f"<td>{_e(t['basis_words'].get(r.basis if isinstance(r.basis, str) else '', r.basis))}</td>"
                f"<td class=\"num\">{'—' if r.progress_ratio != r.progress_ratio else f'{r.progress_ratio:.2f}'}</td>"
                f"<td class=\"why\">{_e(_why(r, lang))}</td></tr>")
        parts.append("</tbody></table>")
        if len(ne):
            parts.append(f"<h4>{t['not_eval']}</h4><ul>" + "".join(
                f"<li>{_e(getattr(r, name))}: {_e(_reason(r.reason, lang))} {_e(r.note)}</li>" for r in ne.itertuples()) + "</ul>")
        # scenario comparison
        if len(scenarios) > 1:
            wide = scenarios_side_by_side(probs[probs.plan == pid], ["indicator", name])
            parts.append(f"<h3>{t['compare']}</h3><table class=\"sortable compare\"><thead><tr><th>{t['indicator']}</th>"
                         + "".join(f"<th>{_e(s)}</th>" for s in scenarios) + "</tr></thead><tbody>")
            for (iid, nm), r in wide.iterrows():
                parts.append(f"<tr><td>{_e(nm)}</td>" + "".join(
                    f"<td class=\"num\" data-sort=\"{'' if r.get(s) != r.get(s) else r.get(s)}\">{_pct(r.get(s))}</td>"
                    for s in scenarios) + "</tr>")
            parts.append("</tbody></table>")
        # fan charts
        parts.append(f"<h3>{t['charts']}</h3><div class=\"charts\">")
        for r in ev.itertuples():
            g = fcs[(fcs.plan == pid) & (fcs.indicator == r.indicator) & (fcs.scenario == main_sc)]
            if not len(g):
                continue
            fig = fan_chart(r, g, history_of(reg, plan, r.series), zh_charts, figsize=(6.0, 3.4))
            parts.append(f"<img alt=\"{_e(getattr(r, name))}\" src=\"{_png(fig)}\">")
        parts.append("</div>")
        # readings of ambiguous targets
        readings = pp[pp.interpretation.notna() & (pp.interpretation.astype(str).str.len() > 0)]
        if len(readings):
            parts.append(f"<h3>{t['readings']}</h3><ul>" + "".join(
                f"<li><b>{_e(getattr(r, name))}</b>: {_e(r.interpretation)}</li>" for r in readings.itertuples()) + "</ul>")
        # sources
        if reg is not None and plan is not None:
            used = set(pp.series)
            o = reg.observations
            o = o[(o.series.isin(used)) & (o.jurisdiction.isin(_ancestry(reg, plan.jurisdiction)))]
            srcs = sorted(set(o.source.astype(str)))
            parts.append(f"<h3>{t['sources']}</h3><ol class=\"sources\">" + "".join(
                f"<li>{_links(s)}</li>" for s in srcs[:80]) + "</ol>")
            if plan.source:
                parts.append(f"<p class=\"meta\">{'规划文本' if lang == 'zh' else 'Plan text'}: {_links(plan.source)}</p>")
        parts.append("</section>")
    # methods and diagnostics
    parts.append(f"<h2>{t['methods']}</h2><ol>" + "".join(f"<li>{_e(x)}</li>" for x in METHODS[lang]) + "</ol>")
    heads = (["模型", "最大 R-hat", "最小有效样本量（bulk ESS）", "发散次数", "是否收敛", "概率的最大蒙特卡洛误差"]
             if lang == "zh" else ["model", "max R-hat", "min ESS (bulk)", "divergences", "converged", "max MC s.e. of P"])
    parts.append(f"<h2>{t['diag']}</h2><table class=\"diag\"><thead><tr><th>{t['scenario']}</th>"
                 + "".join(f"<th>{h}</th>" for h in heads) + "</tr></thead><tbody>")
    for s in man["scenarios"]:
        d = s.get("diagnostics", {})
        mcse = probs[probs.scenario == s["name"]].mc_se.max()
        parts.append(f"<tr><td>{_e(s['name'])}</td><td>{_e(_fit_label(d.get('model'), lang))}</td><td class=\"num\">{_rhat(d.get('max_r_hat'))}</td>"
                     f"<td class=\"num\">{_num(d.get('min_ess_bulk'))}</td><td class=\"num\">{_e(d.get('divergences'))}</td>"
                     f"<td>{_verdict(d.get('converged'), lang)}</td><td class=\"num\">{_pct(mcse) if mcse == mcse else '—'}</td></tr>")
        ref = d.get("reference_class")
        if ref:   # the joined probabilities rest on this fit too
            label = f"参照组（{ref.get('cases')} 个以往目标）" if lang == "zh" else f"reference class ({ref.get('cases')} past targets)"
            parts.append(f"<tr data-fit=\"reference-class\"><td>{_e(s['name'])}</td><td>{_e(label)}</td>"
                         f"<td class=\"num\">{_rhat(ref.get('max_r_hat'))}</td><td class=\"num\">{_num(ref.get('min_ess_bulk'))}</td>"
                         f"<td class=\"num\">{_e(ref.get('divergences'))}</td><td>{_verdict(ref.get('converged'), lang)}</td><td class=\"num\">—</td></tr>")
    parts.append("</tbody></table>")
    parts.append(f"<p class=\"meta\">ipsim · {_e(man.get('command', ''))} · "
                 + ", ".join(f"{k} {v}" for k, v in man.get("versions", {}).items()) + "</p>")
    parts.append(f"<script>{JS}</script></body></html>")
    return "\n".join(parts)


def _ancestry(reg, jur: str) -> list[str]:
    out = [jur]
    j = reg.jurisdictions.get(jur)
    while j is not None and j.parent:
        out.append(j.parent)
        j = reg.jurisdictions.get(j.parent)
    return out


def write_report(run_dir: Path, out: Path | None = None, reg=None, plan_ids=None, lang: str = "zh") -> Path:
    """Write atomically (temporary file, then rename) so a half report never appears."""
    import os

    text = build_report(run_dir, reg, plan_ids, lang)
    out = Path(out) if out else Path(run_dir) / f"report-{lang}.html"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    return out
