"""repconsole: a desktop representative console for live remote-support teams.

Only :mod:`repconsole.ui` imports Qt.  :mod:`repconsole.core` holds the
Qt-free, I/O-free queue engine; :mod:`repconsole.backend` holds the
pluggable backends that run it (in-process simulator, WebSocket client).
"""

__version__ = "0.1.0"
