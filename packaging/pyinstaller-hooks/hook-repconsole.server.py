"""Bundle the customer support pages the queue server serves (``static/``).

The server reads them through :mod:`importlib.resources`, which in a bundle
looks under ``repconsole/server/static/``; the package lives in a directory
of its own name, so ``collect_data_files`` maps the paths correctly.
"""

from __future__ import annotations

from PyInstaller.utils.hooks import collect_data_files

datas = collect_data_files("repconsole.server", includes=["static/*"])
