"""The leaderboard in a real browser: `zoobench leaderboard` served, shot with headless Chromium.

Marked ``browser``; skipped without Chromium (``make test-browser`` installs it with apt-get and runs it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from leaderboard import screenshot
from tests.leaderboard.conftest import EVIL

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(screenshot.chromium() is None, reason="no chromium; `make test-browser` installs it"),
]


def test_overview_renders_in_chromium(results_root: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "overview.png"
    models = ("alpha-base", "beta-small", "gamma-static", "delta-zh", "bm25-like")
    with screenshot.serve(results_root) as url:
        dom = screenshot.capture(url, shot, expect=(*screenshot.READY, *models), width=1280, height=900)
    assert 'role="tab"' in dom and "Overview" in dom and "Compare" in dom
    assert "broken-model/r1/local/sts-a.json" in dom  # the warning naming a skipped file
    # the hostile model name is text, never markup
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom and "<img src=x" not in dom and '<img src="x"' not in dom
    assert EVIL not in dom
    image = Image.open(shot)
    assert image.format == "PNG" and image.size == (1280, 900)
    colors = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 100  # a drawn page, not a blank or skeleton one
