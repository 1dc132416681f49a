"""The documentation builds with warnings as errors, runs its gallery, and renders.

Builds a copy of docs/ and examples/ in a temporary directory, with the gallery
in fast mode (``SKVAE_DOCS_FAST=1``), so the repository is left untouched. Skips
without the ``docs`` extra; the browser check runs only where Chromium and
chromedriver are installed.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(path.stem for path in (ROOT / "examples").glob("plot_*.py"))
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def build_docs(tmp_path):
    """Build the HTML of a copy of docs/ and examples/; return the output directory."""
    generated = shutil.ignore_patterns(
        "_build", "auto_examples", "gen_modules", "__pycache__"
    )
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=generated)
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=generated)
    html = tmp_path / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    env = {**os.environ, "SKVAE_DOCS_FAST": "1", "MPLBACKEND": "agg"}
    result = subprocess.run(
        [*command, str(tmp_path / "docs"), str(html)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = f"{result.stdout[-3000:]}\n{result.stderr}"
    assert result.returncode == 0, f"sphinx failed:\n{log}"
    return html


def test_docs_build_with_gallery_figures(tmp_path):
    for module in ("sphinx", "sphinx_gallery", "numpydoc", "pydata_sphinx_theme"):
        pytest.importorskip(module)
    pytest.importorskip("matplotlib")
    assert len(EXAMPLES) >= 7

    html = build_docs(tmp_path)

    for page in ("index", "install", "quickstart", "user_guide", "api"):
        assert (html / f"{page}.html").is_file(), page
    for name in ("AutoencoderTransformer", "VAETransformer"):
        page = (html / "gen_modules" / f"skvae.{name}.html").read_text(encoding="utf-8")
        assert "score_samples" in page and "Parameters" in page
    gallery = (html / "auto_examples" / "index.html").read_text(encoding="utf-8")
    for example in EXAMPLES:
        assert f"{example}.html" in gallery, example
        page = (html / "auto_examples" / f"{example}.html").read_text(encoding="utf-8")
        figure = f"sphx_glr_{example}_001.png"
        assert figure in page, f"{example}.html shows no figure"
        png = html / "_images" / figure
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5_000, figure

    # The same pages in a real browser, where one is installed.
    browser = Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()
    if not (browser and importlib.util.find_spec("selenium")):
        return
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "check_rendered.py"), str(html)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    for example in EXAMPLES:
        assert f"ok     auto_examples/{example}.html" in result.stdout, example
