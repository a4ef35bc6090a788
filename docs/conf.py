"""Sphinx configuration for the continuity documentation.

Builds with Sphinx alone: no extensions, the default theme.
"""

import os
import re

_HERE = os.path.dirname(os.path.abspath(__file__))


def _version():
    # Read the version without importing continuity (and so Fabric).
    with open(os.path.join(_HERE, "..", "continuity", "__init__.py"), encoding="utf-8") as f:
        match = re.search(r'^__version__ = "([^"]+)"', f.read(), re.MULTILINE)
    return match.group(1) if match else "unknown"


project = "continuity"
author = "the continuity authors"
copyright = "2026, the continuity authors"
release = _version()
version = ".".join(release.split(".")[:2])

extensions = []
root_doc = "index"
exclude_patterns = ["_build"]
highlight_language = "none"
pygments_style = "sphinx"

html_theme = "alabaster"
html_title = "continuity {}".format(release)
html_theme_options = {
    "description": "Fabric tasks that keep master a candidate release.",
    "fixed_sidebar": False,
}
