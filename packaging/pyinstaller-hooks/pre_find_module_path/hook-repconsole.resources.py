"""Tell PyInstaller where ``repconsole.resources`` really lives.

In a source checkout the package is the top-level ``resources/`` directory,
mapped to ``repconsole.resources`` by ``[tool.setuptools] package-dir``.  An
editable install makes that mapping with an import hook that PyInstaller's
module finder never consults: it would look inside ``repconsole/`` only, find
nothing, and leave the icons and the chime out of the bundle.

So ask the build interpreter's own import system where the package is and
search the directory that holds it.  For an installed wheel that directory
is ``repconsole/`` itself, so the hook changes nothing there.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from PyInstaller.depend.imphookapi import PreFindModulePathAPI


def pre_find_module_path(api: PreFindModulePathAPI) -> None:
    spec = find_spec(api.module_name)
    if spec is None or spec.origin is None:
        raise ImportError(
            f"{api.module_name} is not importable by the Python running PyInstaller; "
            "install repconsole into it first (pip install -e .)"
        )
    # origin is .../resources/__init__.py; the finder is given the directory
    # that contains the package directory.
    api.search_dirs = [str(Path(spec.origin).parent.parent)]
