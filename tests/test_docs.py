"""The documentation's code runs, and the documentation builds, runs its gallery, renders.

Every Python snippet of docs/*.rst runs, file by file in the order of the page,
each file in a fresh namespace and a temporary working directory, at small
sizes (see :func:`shrink`); this needs neither Sphinx nor a browser. A snippet
that cannot run here says so in a reST comment just before it, which the test
reports as a skipped test:

.. docs-test: skip <reason>            (needs a GPU, the network, ...)
.. docs-test: requires <module> ...    (skipped where a module is missing)

The build test builds a copy of docs/ and examples/ in a temporary directory,
with the gallery in fast mode (``SKVAE_DOCS_FAST=1``), so the repository is left
untouched. It skips without the ``docs`` extra; the browser check runs only where
Chromium and chromedriver are installed.
"""

import ast
import doctest
import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import sklearn.datasets
import torch
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(path.stem for path in (ROOT / "examples").glob("plot_*.py"))
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PAGES = sorted((ROOT / "docs").glob("*.rst")) + [ROOT / "README.md"]

# -- the snippets of the reST pages -------------------------------------------

#: Languages Sphinx highlights as Python; a literal block (``::``) is Python
#: unless a ``.. highlight::`` directive says otherwise (Sphinx's "default").
PYTHON = {"python", "python3", "py", "py3", "pycon", "default"}
_MARKER = re.compile(r"^\s*\.\. docs-test:\s*(?P<what>\S+)\s*(?P<rest>.*?)\s*$")
_CODE_BLOCK = re.compile(r"^(\s*)\.\. (?:code-block|code|sourcecode)::\s*(\S*)\s*$")
_HIGHLIGHT = re.compile(r"^\s*\.\. highlight::\s*(\S+)\s*$")
_OPTION = re.compile(r"^\s+:[\w-]+:")


@dataclass
class Snippet:
    """A block of Python in a reST page."""

    path: Path
    line: int  # of the first line of code, 1-based
    code: str  # dedented
    doctest: bool  # ``>>>`` prompts whose output is checked
    skip: str | None  # why it does not run here, from its marker


def _skip_reason(marker, where):
    """Why a snippet behind ``marker`` (a ``_MARKER`` match) does not run, or None."""
    what, rest = marker["what"].rstrip(":"), marker["rest"]
    if what == "skip" and rest:
        return rest.lstrip(":- ")
    if what == "requires" and rest:
        missing = [m for m in rest.split() if importlib.util.find_spec(m) is None]
        return f"needs {', '.join(missing)}" if missing else None
    raise ValueError(
        f"{where}: unknown marker {marker.group(0).strip()!r}; write "
        "'.. docs-test: skip <reason>' or '.. docs-test: requires <module> ...'."
    )


def _indented_body(lines, start, indent):
    """The lines from ``start`` indented deeper than ``indent``, and where they end."""
    end = start
    while end < len(lines) and (
        not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent
    ):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    first = start
    while first < end and not lines[first].strip():
        first += 1
    return first, end


def snippets(text, path=Path("<rst>")):
    """The Python snippets of a reST text, in order.

    Reads ``.. code-block::`` (and ``code``, ``sourcecode``) directives in a
    Python language, literal blocks (``::``) in the language of the last
    ``.. highlight::`` (Python by default, as for Sphinx), and doctest blocks
    (paragraphs of ``>>>`` lines). Python blocks that start with ``>>>`` are
    doctests. A ``.. docs-test:`` marker applies to the block right after it.
    """
    lines = text.splitlines()
    language, marker, found, i = "default", None, [], 0
    while i < len(lines):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        where = f"{path}:{i + 1}"
        if _MARKER.match(line):
            marker = (_MARKER.match(line), where)
            i += 1
            continue
        if _HIGHLIGHT.match(line):
            language = _HIGHLIGHT.match(line)[1]
        directive = _CODE_BLOCK.match(line)
        literal = line.rstrip().endswith("::") and not line.lstrip().startswith("..")
        doctest_block = line.lstrip().startswith(">>>")
        if not (directive or literal or doctest_block):
            if marker and line.strip():
                raise ValueError(
                    f"{marker[1]}: a docs-test marker must come right before a code block."
                )
            i += 1
            continue
        if doctest_block:
            first = i
            end = next(
                (j for j in range(i, len(lines)) if not lines[j].strip()), len(lines)
            )
            block_language = "pycon"
        else:
            i += 1
            while directive and i < len(lines) and _OPTION.match(lines[i]):
                i += 1
            first, end = _indented_body(lines, i, indent)
            block_language = (directive[2] or language) if directive else language
        code = textwrap.dedent("\n".join(lines[first:end]))
        if block_language in PYTHON and code.strip():
            found.append(
                Snippet(
                    path=path,
                    line=first + 1,
                    code=code,
                    doctest=code.lstrip().startswith(">>>"),
                    skip=None if marker is None else _skip_reason(*marker),
                )
            )
        marker, i = None, max(end, i)
    return found


_FENCE = re.compile(r"^```(\w*)\s*$")


def markdown_snippets(text, path=Path("<md>")):
    """The Python snippets of a Markdown text: its fenced python blocks, in order."""
    lines, found, i = text.splitlines(), [], 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next(
            (j for j in range(i + 1, len(lines)) if lines[j].startswith("```")),
            len(lines),
        )
        code = "\n".join(lines[i + 1 : end])
        if fence[1] in PYTHON and code.strip():
            found.append(
                Snippet(
                    path=path,
                    line=i + 2,
                    code=code,
                    doctest=code.lstrip().startswith(">>>"),
                    skip=None,
                )
            )
        i = end + 1
    return found


def page_snippets(path):
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":  # README.md: its quick start must run too
        return markdown_snippets(text, path)
    return snippets(text, path)


# -- running them small -------------------------------------------------------

#: Keyword arguments forced on the calls of these names: few epochs, and a
#: cluster of threads in this process rather than of worker processes.
CALL_OVERRIDES = {
    "AutoencoderTransformer": {"max_iter": 2},
    "VAETransformer": {"max_iter": 2},
    "VAEImputer": {"max_iter": 2},
    "LocalCluster": {"processes": False, "dashboard_address": None},
}
#: Names whose (top-level, single-name) assignments take these values instead.
SIZE_OVERRIDES = {"n_rows": 1_000, "block_rows": 500, "n_epochs": 2}
#: Every ``DIGITS_STEP``-th row of load_digits (300 rows), for the snippets.
DIGITS_STEP = 6


class _Shrink(ast.NodeTransformer):
    def visit_Call(self, node):
        self.generic_visit(node)
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        overrides = CALL_OVERRIDES.get(name, {})
        node.keywords = [k for k in node.keywords if k.arg not in overrides]
        node.keywords += [
            ast.keyword(arg=key, value=ast.Constant(value))
            for key, value in overrides.items()
        ]
        return node

    def visit_Module(self, node):
        for statement in node.body:
            if (
                isinstance(statement, ast.Assign)
                and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)
                and statement.targets[0].id in SIZE_OVERRIDES
            ):
                value = SIZE_OVERRIDES[statement.targets[0].id]
                statement.value = ast.Constant(value)
        return self.generic_visit(node)


def shrink(code, filename="<snippet>", line=1):
    """Compile ``code`` with small sizes: CALL_OVERRIDES and SIZE_OVERRIDES applied.

    Line numbers are those of the page, so a traceback shows the reST line.
    """
    tree = _Shrink().visit(ast.parse(code, filename=filename))
    ast.increment_lineno(tree, line - 1)
    return ast.fix_missing_locations(tree)


def _small_digits(load_digits):
    @functools.wraps(load_digits)
    def load(*args, **kwargs):
        data = load_digits(*args, **kwargs)
        if isinstance(data, tuple):
            return tuple(part[::DIGITS_STEP] for part in data)
        for key in ("data", "target", "images", "frame"):
            if data.get(key) is not None:
                data[key] = data[key][::DIGITS_STEP]
        return data

    return load


def run_snippet(snippet, namespace):
    """Run one snippet in ``namespace``: exec its code, or check its doctest."""
    name = f"{snippet.path.name}:{snippet.line}"
    if not snippet.doctest:
        tree = shrink(snippet.code, str(snippet.path), snippet.line)
        exec(compile(tree, str(snippet.path), "exec"), namespace)
        return
    test = doctest.DocTestParser().get_doctest(
        snippet.code, namespace, name, str(snippet.path), snippet.line - 1
    )
    for example in test.examples:
        example.source = ast.unparse(shrink(example.source)) + "\n"
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    report = []
    runner.run(test, out=report.append, clear_globs=False)
    if runner.failures:
        raise AssertionError("".join(report))


def _close_clusters(namespace):
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return
    for value in list(namespace.values()):
        if isinstance(value, distributed.Client):
            cluster = value.cluster
            value.close()
            if cluster is not None:
                cluster.close()


@pytest.fixture
def small_sizes(monkeypatch, tmp_path):
    """Small data, one thread, a temporary working directory."""
    monkeypatch.setattr(
        sklearn.datasets, "load_digits", _small_digits(sklearn.datasets.load_digits)
    )
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


def _pages_with_code():
    return [page for page in PAGES if page_snippets(page)]


def _skipped():
    return [s for page in PAGES for s in page_snippets(page) if s.skip]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::skvae.exceptions.PosteriorCollapseWarning")
@pytest.mark.parametrize("page", _pages_with_code(), ids=lambda page: page.name)
def test_docs_code_runs(page, small_sizes):
    namespace = {"__name__": f"docs.{page.stem}"}
    try:
        for snippet in page_snippets(page):
            if not snippet.skip:
                run_snippet(snippet, namespace)
    finally:
        _close_clusters(namespace)


@pytest.mark.parametrize(
    "snippet", _skipped() or [None], ids=lambda s: s and f"{s.path.name}:{s.line}"
)
def test_docs_code_skipped(snippet):
    """Each snippet that does not run here, as a skipped test with its reason."""
    if snippet is None:
        return
    pytest.skip(f"{snippet.path.name}:{snippet.line}: {snippet.skip}")


def test_every_size_override_is_used():
    """The overrides follow the snippets: each is still used by one of them."""
    code = "\n".join(s.code for page in PAGES for s in page_snippets(page))
    for name in SIZE_OVERRIDES:
        assert re.search(rf"^\s*{name} = ", code, re.MULTILINE), name
    for name in CALL_OVERRIDES:
        assert f"{name}(" in code, name
    assert "load_digits(" in code


RST = """\
Title
=====

.. code-block:: python

   a = 1

.. code-block:: bash

   pip install skvae

Literal, Python by default::

    b = a + 1

.. docs-test: skip needs a GPU
.. code-block:: python
   :caption: on a GPU

   import torch
   torch.zeros(1, device="cuda")

>>> b * 2
4

.. highlight:: console

Shell from here on::

    python -m pytest

.. docs-test: requires no_such_module_here
.. code-block:: pycon

   >>> import no_such_module_here
"""


def test_markdown_snippets_reads_python_fences_only():
    text = "# T\n\n```python\nx = 1\n```\n\n```bash\nls\n```\n```\ny = 2\n```\n"
    found = markdown_snippets(text)
    assert [(s.line, s.code) for s in found] == [(4, "x = 1")]
    assert any(page.name == "README.md" for page in _pages_with_code())


def test_snippets_reads_blocks_markers_and_doctests():
    found = snippets(RST)
    assert [(s.line, s.code.strip(), s.doctest, s.skip) for s in found] == [
        (6, "a = 1", False, None),
        (14, "b = a + 1", False, None),
        (20, 'import torch\ntorch.zeros(1, device="cuda")', False, "needs a GPU"),
        (23, ">>> b * 2\n4", True, None),
        (35, ">>> import no_such_module_here", True, "needs no_such_module_here"),
    ]
    namespace = {}
    for snippet in found:
        if not snippet.skip:
            run_snippet(snippet, namespace)
    assert namespace["b"] == 2

    with pytest.raises(AssertionError, match=r"Expected:\s+5\s+Got:\s+4"):
        run_snippet(Snippet(Path("x.rst"), 1, ">>> 2 + 2\n5", True, None), {})
    with pytest.raises(ValueError, match="right before a code block"):
        snippets(".. docs-test: skip no reason\n\nSome text.\n")
    with pytest.raises(ValueError, match="unknown marker"):
        snippets(".. docs-test: maybe\n.. code-block:: python\n\n   pass\n")


def test_shrink_forces_few_epochs_and_small_sizes():
    tree = shrink(
        "n_rows = 10**6\nm = VAETransformer(n_components=2, max_iter=500)\n"
        "c = LocalCluster(n_workers=2)\n"
    )
    assert ast.unparse(tree).splitlines() == [
        "n_rows = 1000",
        "m = VAETransformer(n_components=2, max_iter=2)",
        "c = LocalCluster(n_workers=2, processes=False, dashboard_address=None)",
    ]


def _silenced_outside_fast_mode(source):
    """The lines of ``source`` that silence ConvergenceWarning outside ``if fast:``."""
    tree = ast.parse(source)
    in_fast = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and ast.unparse(branch.test) == "fast"
        for statement in branch.body
        for node in ast.walk(statement)
    }
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and ast.unparse(node.func).endswith(("simplefilter", "filterwarnings"))
        and "ConvergenceWarning" in ast.unparse(node)
        and id(node) not in in_fast
    ]


def test_silenced_outside_fast_mode_finds_the_unconditional_filter():
    source = (
        "if fast:\n    warnings.simplefilter('ignore', ConvergenceWarning)\n"
        "warnings.simplefilter('ignore', ConvergenceWarning)\n"
        "warnings.simplefilter('ignore', PosteriorCollapseWarning)\n"
        "warnings.filterwarnings('ignore', category=ConvergenceWarning)\n"
    )
    assert _silenced_outside_fast_mode(source) == [3, 5]


@pytest.mark.parametrize("example", EXAMPLES + ["digits_pipeline"])
def test_examples_silence_convergence_warnings_only_in_fast_mode(example):
    """A default fit converges without warning; only 5-epoch doc builds may not."""
    source = (ROOT / "examples" / f"{example}.py").read_text(encoding="utf-8")
    assert _silenced_outside_fast_mode(source) == []


# -- the browser check's requirements -----------------------------------------


def _check_rendered():
    spec = importlib.util.spec_from_file_location(
        "check_rendered", ROOT / "docs" / "check_rendered.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_rendered_says_what_to_install(tmp_path):
    missing = tmp_path / "nowhere"
    command = [sys.executable, str(ROOT / "docs" / "check_rendered.py"), str(tmp_path)]
    command += ["--chromium", str(missing / "chromium")]
    command += ["--chromedriver", str(missing / "chromedriver")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "apt-get install chromium`" in result.stderr
    assert "apt-get install chromium-driver`" in result.stderr


def test_check_rendered_without_selenium(tmp_path, monkeypatch, capsys):
    check_rendered = _check_rendered()
    monkeypatch.setitem(sys.modules, "selenium", None)  # as if not installed
    found = ["--chromium", sys.executable, "--chromedriver", sys.executable]
    assert check_rendered.main([str(tmp_path), *found]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("check_rendered.py cannot open a browser: install selenium")
    assert err.strip().endswith("(`pip install selenium`).")
    assert "chromium" not in err


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
