"""Bundle repconsole's distribution metadata (its ``.dist-info``).

The About dialog reads the licence text through ``importlib.metadata`` (the
``License-File`` of the installed distribution), which works in the bundle
only if the ``.dist-info`` directory travels with it.

``copy_metadata("repconsole")`` is not used because it takes the first
distribution on ``sys.path``, and in a checkout that is the
``repconsole.egg-info`` that ``pip install -e`` leaves beside the sources:
stale, and without the licence file.  The installed ``.dist-info`` is
picked explicitly instead.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path


def _dist_info(name: str) -> Path:
    for dist in metadata.distributions(name=name):
        # PathDistribution keeps its directory in _path; PyInstaller's own
        # copy_metadata relies on the same attribute.
        path = getattr(dist, "_path", None)
        if path is not None and Path(path).suffix == ".dist-info":
            return Path(path)
    raise RuntimeError(f"no installed .dist-info for {name}: pip install -e . first")


_DIST_INFO = _dist_info("repconsole")
datas = [(str(_DIST_INFO), _DIST_INFO.name)]
