"""Sphinx configuration of rnnumba's documentation.

Build it with ``sphinx-build -W -n -b html docs docs/_build/html`` (what CI
runs) after ``pip install -e ".[docs]"``. The gallery (``examples/``) runs
during the build; the benchmark page is drawn from ``benchmarks/results.json``.
"""

import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")

import rnnumba  # noqa: E402

project = "rnnumba"
author = "the rnnumba developers"
copyright = "2015-2026, the rnnumba developers"
release = rnnumba.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "sphinxarg.ext",
    "sphinx_copybutton",
    "sphinx_design",
    "rnnumba_docs",  # docs/_ext: the benchmark page from benchmarks/results.json
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_generated",
    "_build",
    "**.ipynb_checkpoints",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
]
templates_path = ["_templates"]
default_role = "py:obj"
# sphinx-argparse's domain cannot answer MyST's "any" lookups (a harmless notice per link)
suppress_warnings = ["myst.domains"]

# -- MyST (the Markdown pages) ----------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3  # `page.md#a-heading` links, as GitHub renders them

# -- API reference: autosummary + numpydoc ----------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"
numpydoc_show_class_members = False  # the class template lists the members
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = False
numpydoc_xref_param_type = False
# every documented public name has these sections; see docs/dev/docs.md
numpydoc_validation_checks = {"PR01", "PR02", "PR10", "RT01", "EX01", "SS01", "GL08"}
numpydoc_validation_exclude = {
    # properties and attributes, documented by one line
    r"\.(n_params|n_params_|theta_|directions|gates|kernel_family|is_fitted|n_chunks|name)$",
    # persistence helpers (to_state/from_state, to_dict/from_dict: what save and load call),
    # the tuple methods of DataFile, and the aliases and clean-up of DaskObjective
    r"\.(to_state|from_state|to_dict|from_dict|count|index|close|value_at)$",
    r"^rnnumba\.distributed\.DaskObjective\.loss_and_grad$",
    # the backend contract's members, documented once in docs/architecture.md
    r"^rnnumba\.distributed\.(DaskBackend|DaskData)\.",
    # scikit-learn's own methods, and the fields of a named tuple
    r"\.(get_metadata_routing|get_params|set_params)$",
    r"^rnnumba\.formats\.DataFile\.",
}

# -- nitpicky references (sphinx-build -n): names outside this site ----------
nitpick_ignore_regex = [
    # internals the API reference leaves to the developer guide (docs/architecture.md)
    (
        r"py:.*",
        r"rnnumba\.(data|layout|backends|segments|lockstep|bilockstep|solvers|engine|chunks|losses|validation)(\..*)?",
    ),
    (r"py:.*", r"rnnumba\.memory\.BLOCK_BYTES|rnnumba\.RNN\.(dropout|grad_h0)"),
    (r"py:.*", r"(LocalSGD|CELL|HIDDEN|CHECKPOINT|FULL|CHECKPOINTS|LOCKSTEP|cache_root|dropout|grad_h0)"),
    (r"py:.*", r"(numpy|np|scipy|sklearn|dask|distributed|torch|pandas|os|pathlib|matplotlib)(\..*)?"),
    (r"py:.*", r"(array_like|array-like|ndarray|callable|optional|default|path-like|file-like)"),
]

# -- the gallery ---------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": os.path.join(ROOT, "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # plot_*.py run; the GPU example is shown, not run
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "rnnumba_docs.example_order",  # the order a newcomer reads them in
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "show_memory": False,
    "image_scrapers": ("matplotlib",),
    "reference_url": {"rnnumba": None},
    "min_reported_time": 1,
    "abort_on_example_error": True,
    "backreferences_dir": "api/generated/backreferences",  # the API pages' "Examples in the gallery"
    "doc_module": ("rnnumba",),
}

# -- HTML ----------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"rnnumba {release}"
html_static_path = ["_static"]
html_css_files = ["rnnumba.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 7,
    "navbar_align": "left",
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "benchmarks": [], "coming-from/*": []}  # room for side-by-side code
html_show_sourcelink = False
# MathJax from its CDN; RNNUMBA_DOCS_MATHJAX names a local copy for offline viewing
if os.environ.get("RNNUMBA_DOCS_MATHJAX"):
    mathjax_path = os.environ["RNNUMBA_DOCS_MATHJAX"]

# the compile notices of the examples' first calls are expected, not build warnings
warnings.filterwarnings("ignore", category=rnnumba.CompileWarning)
warnings.filterwarnings("ignore", message="Matplotlib is currently using agg")
