"""Sphinx configuration for the skvae documentation.

Build with warnings as errors, from the repository root::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Set ``SKVAE_DOCS_FAST=1`` to run the gallery examples on less data and fewer
epochs (for quick checks; the figures are then rougher).
"""

import os
import re
from datetime import date

import torch
from threadpoolctl import threadpool_limits

import skvae

# The gallery trains small networks and fits small mixtures, which one thread
# runs fastest: more threads only compete with each other and with other
# processes on a busy machine. SKVAE_DOCS_THREADS overrides it.
_threads = int(os.environ.get("SKVAE_DOCS_THREADS", "1"))
torch.set_num_threads(_threads)
threadpool_limits(_threads)

project = "skvae"
author = "The skvae developers"
copyright = f"{date.today().year}, {author}"
version = release = skvae.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
root_doc = "index"
default_role = "literal"

# -- autodoc / autosummary / numpydoc -----------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False


def _fix_docstring(app, what, name, obj, options, lines):
    """Adapt docstrings written for other documentation to this one.

    Methods inherited from scikit-learn (``set_output``, ...) cite labels of
    scikit-learn's documentation, which do not exist here: keep their text.
    A bare ``n_features_in_`` is a reST link to a missing target; quote it
    (as scikit-learn's docstrings do: ``(`n_features_in_`,)``).
    """
    sklearn = getattr(obj, "__module__", "").startswith("sklearn.")
    for i, line in enumerate(lines):
        if sklearn:
            line = re.sub(r":ref:`([^`<]*?)\s*<[^`>]*>`", r"\1", line)
            line = re.sub(r":ref:`([^`]*)`", r"``\1``", line)
        lines[i] = line.replace("(n_features_in_,)", "(`n_features_in_`,)")


def setup(app):
    app.connect("autodoc-process-docstring", _fix_docstring, priority=400)


# -- sphinx-gallery -----------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Only the plot_*.py scripts are gallery examples; the other scripts in
    # examples/ are plain command-line programs.
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"^(?!plot_).*\.py$",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("skvae",),
    "backreferences_dir": "gen_modules",
    "reference_url": {"skvae": None},
    "abort_on_example_error": True,
    "write_computation_times": False,
    "download_all_examples": False,
    "matplotlib_animations": False,
}

# -- HTML ---------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skvae {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_prev_next": False,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path = []
html_show_sourcelink = False
