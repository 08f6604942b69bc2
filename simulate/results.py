"""Run directories, manifests and exports.

A run is written into a hidden temporary directory and renamed into place only when
complete, so an interrupted run leaves nothing half-written and never touches an
earlier run.  Same inputs and seed → byte-identical CSV files (no timestamps in them).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path

import pandas as pd

from .errors import InputError, Problem

PROB_COLUMNS = ["plan", "indicator", "name_zh", "name_en", "scenario", "series", "category", "attribute", "measure",
                "comparator", "target", "target_year", "baseline", "unit", "p_met", "mc_se", "mc_ess", "mean", "median", "q025",
                "q10", "q90", "q975", "p_inside", "p_outside", "p_outside_lo", "p_outside_hi", "weight_inside",
                "reference_class", "reference_n", "reference_met", "ambition", "latest", "latest_year", "required_growth", "recent_growth", "posterior_growth",
                "progress_ratio", "category_zh", "category_en", "likelihood_zh", "likelihood_en", "basis", "n_obs",
                "model", "converged", "decided_by", "reason", "reason_zh", "interpretation", "note"]

ZH_HEADERS = {"plan": "规划", "indicator": "指标代码", "name_zh": "指标", "name_en": "指标(英文)", "scenario": "情景",
              "series": "序列", "category": "类别", "attribute": "属性", "measure": "口径", "comparator": "比较",
              "target": "目标值", "target_year": "目标年", "baseline": "基期值", "unit": "单位", "p_met": "实现概率",
              "mc_se": "蒙特卡洛标准误", "mc_ess": "有效样本量",
              "p_inside": "趋势模型概率", "p_outside": "参照组概率", "p_outside_lo": "参照组概率10%分位",
              "p_outside_hi": "参照组概率90%分位", "weight_inside": "趋势模型权重", "reference_class": "参照组",
              "reference_n": "参照组案例数", "reference_met": "参照组达成数", "ambition": "目标难度(年均所需变化)",
              "reason_zh": "说明(中文)", "mean": "均值", "median": "中位数", "q025": "2.5%分位", "q10": "10%分位",
              "q50": "50%分位", "q90": "90%分位", "q975": "97.5%分位", "latest": "最新值", "latest_year": "最新年份",
              "required_growth": "所需年均增速", "recent_growth": "近期年均增速", "posterior_growth": "模型预测年均增速",
              "progress_ratio": "进度比(时间过半任务过半)", "category_zh": "评估结论", "category_en": "评估结论(英文)",
              "likelihood_zh": "可能性", "likelihood_en": "可能性(英文)", "basis": "依据", "n_obs": "观测年数",
              "model": "模型", "converged": "模型收敛", "decided_by": "已由数据确定", "reason": "说明", "interpretation": "解读", "note": "备注",
              "year": "年份", "targets": "目标数", "evaluable": "可评估数", "expected_met": "预期实现数",
              "p_all_met": "全部实现概率", "p_80pct_met": "实现80%以上概率"}


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("ipsim", "numpy", "pandas", "pymc", "pytensor", "arviz", "statsmodels", "xarray"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def file_hashes(paths) -> dict:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest()[:16] for p in paths}


def _csv(df: pd.DataFrame, path: Path):
    df.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")


def _pause_for_tests():
    """IPSIM_TEST_SLOW_WRITE=seconds holds the writer mid-way (the interrupt test)."""
    secs = float(os.environ.get("IPSIM_TEST_SLOW_WRITE", "0") or 0)
    if secs > 0:
        time.sleep(secs)


def write_run(results, reg, out_root: Path, label: str, seed: int, draws: int, scenario_files,
              command: str = "") -> Path:
    """Write one run (possibly several scenarios) atomically; returns its directory."""
    out_root = Path(out_root)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tmp = new_temp_dir(out_root)
    try:
        probs = pd.concat([r.probabilities for r in results], ignore_index=True)[PROB_COLUMNS]
        fcs = pd.concat([r.forecasts for r in results], ignore_index=True)
        summ = pd.concat([r.plan_summary for r in results], ignore_index=True)
        _csv(probs, tmp / "probabilities.csv")
        _pause_for_tests()
        _csv(fcs, tmp / "forecasts.csv")
        _csv(summ, tmp / "plan_summary.csv")
        manifest = {
            "label": label, "command": command or "(library call)", "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "seed": seed, "draws": draws,
            "scenarios": [{"name": r.scenario.name, "file": r.scenario.file, "description": r.scenario.description,
                           "as_of": r.scenario.as_of, "model": r.scenario.model, "settings": r.scenario.raw,
                           "diagnostics": r.diagnostics, "fit": r.fit_info} for r in results],
            "inputs": file_hashes(list(reg.input_files) + [Path(f) for f in scenario_files]),
            "registry_fingerprint": reg.fingerprint(), "versions": package_versions(),
            "category_cutoffs": "提前实现 = already reached; 快于预期 P≥0.9; 基本符合预期 0.5≤P<0.9; 滞后 P<0.5",
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        return publish(tmp, out_root, f"{stamp}-{label}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def new_temp_dir(out_root: Path) -> Path:
    """A hidden working directory beside the final one (same file system → atomic rename)."""
    Path(out_root).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".tmp-run-", dir=out_root))


def publish(tmp: Path, out_root: Path, stem: str) -> Path:
    """Rename a finished temporary directory into place under a unique name
    (two runs in the same second get -2, -3 …)."""
    n = 1
    while True:
        final = Path(out_root) / (stem if n == 1 else f"{stem}-{n}")
        try:
            os.rename(tmp, final)  # atomic on one file system; fails if final exists and is non-empty
            return final
        except OSError:
            if not final.exists():
                raise
            n += 1


def scenarios_side_by_side(probs: pd.DataFrame, index: list[str], value: str = "p_met") -> pd.DataFrame:
    """One row per indicator, one column per scenario, rows in the order they came.

    (``pivot_table(dropna=False)`` would build the cartesian product of the index
    levels — every plan × every indicator id × every name — hundreds of thousands of
    empty rows for the shipped plans.)"""
    wide = probs.drop_duplicates(index + ["scenario"]).set_index(index + ["scenario"])[value].unstack("scenario")
    order = list(dict.fromkeys(map(tuple, probs[index].itertuples(index=False, name=None))))
    cols = list(dict.fromkeys(probs.scenario))
    return wide.reindex(pd.MultiIndex.from_tuples(order, names=index))[cols]


def read_run(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    if not (run_dir / "manifest.json").exists():
        raise InputError(Problem(str(run_dir), "", "not a run directory (no manifest.json)",
                                 "pass a directory written by 'ipsim run' under results/"))
    return {"dir": run_dir,
            "probabilities": pd.read_csv(run_dir / "probabilities.csv"),
            "forecasts": pd.read_csv(run_dir / "forecasts.csv"),
            "plan_summary": pd.read_csv(run_dir / "plan_summary.csv"),
            "manifest": json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))}


def export_run(run_dir: Path, fmt: str, out: Path | None = None, lang: str = "zh") -> Path:
    run = read_run(run_dir)
    out = Path(out) if out else Path(run_dir) / f"export.{ 'xlsx' if fmt == 'xlsx' else fmt}"
    probs, fcs, summ = run["probabilities"], run["forecasts"], run["plan_summary"]
    rename = (lambda df: df.rename(columns=ZH_HEADERS)) if lang == "zh" else (lambda df: df)
    if fmt == "csv":
        out.mkdir(parents=True, exist_ok=True) if out.suffix == "" else None
        base = out if out.suffix == "" else out.parent
        base.mkdir(parents=True, exist_ok=True)
        for name, df in (("probabilities", probs), ("forecasts", fcs), ("plan_summary", summ)):
            rename(df).to_csv(base / f"{name}.csv", index=False, encoding="utf-8-sig")
        return base
    if fmt == "parquet":
        base = out if out.suffix == "" else out.parent / out.stem
        base.mkdir(parents=True, exist_ok=True)
        for name, df in (("probabilities", probs), ("forecasts", fcs), ("plan_summary", summ)):
            df.to_parquet(base / f"{name}.parquet", index=False)
        return base
    if fmt == "json":
        payload = {"manifest": run["manifest"], "probabilities": probs.to_dict(orient="records"),
                   "forecasts": fcs.to_dict(orient="records"), "plan_summary": summ.to_dict(orient="records")}
        out.write_text(json.dumps(payload, ensure_ascii=False, indent=1, default=str, allow_nan=True), encoding="utf-8")
        return out
    if fmt == "xlsx":
        with pd.ExcelWriter(out, engine="openpyxl") as xw:
            readme = _readme_rows(run["manifest"], lang)
            pd.DataFrame(readme, columns=["项目" if lang == "zh" else "item", "内容" if lang == "zh" else "content"]) \
                .to_excel(xw, sheet_name="README", index=False)
            rename(summ).to_excel(xw, sheet_name="summary", index=False)
            for pid, g in probs.groupby("plan", sort=False):
                rename(g).to_excel(xw, sheet_name=pid[:31], index=False)
            rename(fcs).to_excel(xw, sheet_name="forecasts", index=False)
        return out
    raise InputError(Problem("--format", fmt, "unknown format", "use csv, xlsx, parquet or json"))


def _readme_rows(manifest, lang):
    rows = [("工具" if lang == "zh" else "tool", f"ipsim {manifest['versions'].get('ipsim', '')}"),
            ("种子" if lang == "zh" else "seed", manifest["seed"]), ("抽样数" if lang == "zh" else "draws", manifest["draws"]),
            ("评估结论标准" if lang == "zh" else "category cut-offs", manifest["category_cutoffs"])]
    for s in manifest["scenarios"]:
        desc = s["description"].get(lang) or s["description"].get("en") or ""
        rows.append(((f"情景 {s['name']}" if lang == "zh" else f"scenario {s['name']}"), desc))
        rows.append(("数据截至" if lang == "zh" else "data as of", s["as_of"] or "all"))
        d = s["diagnostics"]
        rows.append(("收敛诊断" if lang == "zh" else "convergence",
                     f"max R-hat {d.get('max_r_hat', float('nan')):.3f}, min ESS {d.get('min_ess_bulk', float('nan')):.0f}, "
                     f"divergences {d.get('divergences', 0)}"))
    return rows
