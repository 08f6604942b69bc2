"""Chinese chart labels: a CJK font installed after matplotlib cached its font list."""
import os
import warnings

import matplotlib.pyplot as plt
import pytest
from matplotlib import font_manager

from simulate import charts


def _need_a_cjk_font():
    if not any(f.name in charts.CJK_FONTS for f in font_manager.FontManager().ttflist):
        if os.environ.get("CI"):
            pytest.fail("no CJK font on this machine, and CI must test Chinese labels (.ci/run installs one)")
        pytest.skip("no CJK font installed (outside CI)")


def _glyph_warnings(text: str) -> list[str]:
    fig, ax = plt.subplots()
    ax.set_title(text)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig.canvas.draw()
    finally:
        plt.close(fig)
    return [str(w.message) for w in caught if "Glyph" in str(w.message)]


def test_a_font_installed_after_matplotlibs_cache_draws_chinese_at_once(monkeypatch):
    """The README's notice says: no CJK font → English labels, install fonts-noto-cjk for
    Chinese.  Right after that install matplotlib's cached font list does not know the
    font; ipsim rebuilds the list, and the rebuilt list must reach the renderer: the
    Chinese labels are drawn in the CJK font, not as boxes (no missing-glyph warning)."""
    _need_a_cjk_font()
    live = font_manager.fontManager
    saved = dict(live.__dict__)
    monkeypatch.setitem(plt.rcParams, "font.family", ["sans-serif"])
    monkeypatch.setattr(charts, "_rescanned", False)
    monkeypatch.setattr(font_manager, "fontManager", live)   # put back if a rebuild replaces it
    try:
        # the state after the install: a cached list from before it, no CJK font in it
        live.ttflist = [f for f in live.ttflist if f.name not in charts.CJK_FONTS]
        live._findfont_cached.cache_clear()
        assert _glyph_warnings("年份")          # the stale list cannot draw Chinese
        assert charts.use_cjk("zh")
        assert _glyph_warnings("年份 实现概率（提前实现）") == []
        assert charts.cjk_font() in {f.name for f in live.ttflist}   # the renderer's list, rebuilt
    finally:
        live.__dict__.clear()
        live.__dict__.update(saved)
        live._findfont_cached.cache_clear()
