"""The server's HTTP answers for co-browsing, and the response every HTTP answer is made with.

* ``GET /vendor/rrweb/<file>``: the vendored rrweb (``resources/rrweb/``:
  ``record.min.js`` for the customer's page, ``replay.min.js`` and
  ``replay.min.css`` for a live view);
* ``GET /cobrowse.js`` and ``GET /cobrowse/<file>``: the help-link snippet
  and its files (``resources/cobrowse/``), unless the page directory
  (``repconsole/server/static/``) has a ``cobrowse.js`` of its own;
* ``GET /cobrowse/view?ticket=…``: a rep's live view of a customer's page in
  a browser (``cobrowse_ticket``), this page and its script
  (``/cobrowse/view.js``), which opens ``/cobrowse/watch?ticket=…``;
* ``GET /api/link/<id>``: what the snippet is told about its link, with
  CORS headers for the link's origins (the snippet runs on the merchant's page).

Files are read through :mod:`importlib.resources` (the package
``repconsole.resources``), one name at a time, never a path built from the
request: a name is letters, digits, ``.``, ``_`` and ``-``, no directories,
and only ``.js``, ``.css`` and ``.html`` files are served.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from repconsole.protocol import CobrowseState, MessageType, Reason, RrwebType, encode
from repconsole.server.links import LinkBook

__all__ = ["CONTENT_TYPES", "STATIC_NAME", "CobrowseWeb", "response"]

STATIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.(html|js|css)$")
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
VENDOR_PREFIX = "/vendor/rrweb/"
COBROWSE_PREFIX = "/cobrowse/"
LINK_PREFIX = "/api/link/"
_LINK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def response(status: HTTPStatus, body: bytes, content_type: str, extra: Iterable[tuple[str, str]] = ()) -> Response:
    headers = Headers([
        ("Date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())),
        ("Connection", "close"),
        ("Content-Length", str(len(body))),
        ("Content-Type", content_type),
        ("Cache-Control", "no-cache"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        *extra,
    ])  # fmt: skip
    return Response(status.value, status.phrase, headers, body)


def _read(root: Traversable, *names: str) -> bytes | None:
    node = root
    for name in names:
        node = node.joinpath(name)
    try:
        return node.read_bytes() if node.is_file() else None
    except OSError:
        return None


class CobrowseWeb:
    """Answers the co-browsing HTTP requests (:meth:`answer`; None: not one of them).

    Args:
        links: the site's links.
        resources: the root of ``repconsole.resources``.
        static_dir: the page directory (its ``cobrowse.js`` wins over the resources').
        origin_allowed: whether a request's Origin may use a link (for CORS).
    """

    def __init__(
        self, links: LinkBook, resources: Traversable, static_dir: Path, origin_allowed: Callable[[Request, str | None], bool]
    ) -> None:
        self.links = links
        self.resources = resources
        self.static_dir = static_dir
        self.origin_allowed = origin_allowed

    def answer(self, request: Request, path: str) -> Response | None:
        if path.startswith(VENDOR_PREFIX):
            return self._file("rrweb", path.removeprefix(VENDOR_PREFIX))
        if path == "/cobrowse.js":
            if (self.static_dir / "cobrowse.js").is_file():
                return None  # the page directory's own: the static handler serves it
            return self._file("cobrowse", "cobrowse.js")
        if path == VIEW_PAGE:
            return response(HTTPStatus.OK, VIEW_HTML, CONTENT_TYPES[".html"], _view_headers(request))
        if path == VIEW_SCRIPT:
            return response(HTTPStatus.OK, VIEW_JS, CONTENT_TYPES[".js"])
        if path.startswith(COBROWSE_PREFIX):
            return self._file("cobrowse", path.removeprefix(COBROWSE_PREFIX))
        if path.startswith(LINK_PREFIX):
            return self._link(request, path.removeprefix(LINK_PREFIX))
        return None

    def _file(self, folder: str, name: str) -> Response:
        body = _read(self.resources, folder, name) if STATIC_NAME.match(name) else None
        if body is None:
            return response(HTTPStatus.NOT_FOUND, b"Not found\n", "text/plain; charset=utf-8")
        return response(HTTPStatus.OK, body, CONTENT_TYPES[Path(name).suffix])

    def _link(self, request: Request, link_id: str) -> Response:
        origin = request.headers.get("Origin")
        cors: list[tuple[str, str]] = [("Vary", "Origin")]
        if origin is not None and _LINK_ID.match(link_id) and self.origin_allowed(request, link_id):
            cors.append(("Access-Control-Allow-Origin", origin))
        answer: dict[str, Any] | None = self.links.public(link_id) if _LINK_ID.match(link_id) else None
        if answer is None:
            body = encode({"id": link_id, "available": False, "reason": Reason.UNKNOWN_LINK.value})
            return response(HTTPStatus.NOT_FOUND, body, "application/json", cors)
        return response(HTTPStatus.OK, encode(answer), "application/json", cors)


def _view_headers(request: Request) -> list[tuple[str, str]]:
    """The live view replays someone else's page: its images and styles come from anywhere, its scripts never run."""
    host = request.headers.get("Host", "")
    sockets = f" ws://{host} wss://{host}" if re.fullmatch(r"[A-Za-z0-9.:\[\]-]+", host) else ""
    policy = "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        f"connect-src 'self'{sockets}",
        "style-src 'self' 'unsafe-inline' http: https: data:",
        "img-src http: https: data: blob:",
        "font-src http: https: data:",
        "media-src http: https: data: blob:",
        "frame-src 'self' about: blob: data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])  # fmt: skip
    return [("Content-Security-Policy", policy), ("X-Frame-Options", "DENY")]


# ---------------------------------------------------------------- the live view

VIEW_PAGE = "/cobrowse/view"
VIEW_SCRIPT = "/cobrowse/view.js"
WATCH_PATH = "/cobrowse/watch"

_LABELS = {
    CobrowseState.WAITING: "Waiting for the customer's page…",
    CobrowseState.LIVE: "Live",
    CobrowseState.RESYNC: "Catching up…",
    CobrowseState.STOPPED: "The customer stopped sharing their page.",
    CobrowseState.ENDED: "The session has ended.",
}

VIEW_HTML = b"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Customer's page - live view</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="../vendor/rrweb/replay.min.css">
<style>
html, body { margin: 0; height: 100%; font: 14px/1.4 system-ui, sans-serif; background: #eef1f6; color: #1c2430; }
body { display: flex; flex-direction: column; }
header { display: flex; gap: 1em; align-items: center; padding: 6px 12px; background: #fff; border-bottom: 1px solid #d5dbe5; }
#state { font-weight: 600; }
#state[data-state="live"]::before { content: ""; display: inline-block; width: 8px; height: 8px; margin-right: 6px; border-radius: 50%; background: #1f9d55; }
#page { color: #5a6473; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#stage { position: relative; flex: 1; overflow: hidden; }
#stage .replayer-wrapper { position: absolute; top: 0; left: 0; transform-origin: top left; background: #fff; box-shadow: 0 1px 4px rgba(0,0,0,.2); }
#stage[data-state="resync"] .replayer-wrapper, #stage[data-state="waiting"] .replayer-wrapper { opacity: .55; }
</style>
<script src="../vendor/rrweb/replay.min.js" defer></script>
<script src="view.js" defer></script>
</head>
<body>
<header><span id="state" role="status">Connecting\xe2\x80\xa6</span><span id="page"></span></header>
<main id="stage" aria-label="The customer's page, as they see it"></main>
</body>
</html>
"""

_VIEW_JS = """// The rep's live view of a customer's page (repconsole-server: /cobrowse/view?ticket=...).
(function () {
  "use strict";
  var CHUNK = %(chunk)s, STATUS = %(status)s, ERROR = %(error)s;
  var META = %(meta)d, FULL = %(full)d;
  var LABELS = %(labels)s;
  var ENDED = %(ended)s, STOPPED = %(stopped)s;
  var stateEl = document.getElementById("state");
  var pageEl = document.getElementById("page");
  var stage = document.getElementById("stage");
  var replayer = null, parts = null, size = null, over = false;

  var ticket = new URLSearchParams(location.search).get("ticket");
  // The ticket is single-use: keep it out of the address bar and the history.
  if (window.history && history.replaceState) history.replaceState(null, "", location.pathname);
  if (!ticket) { show(null, "This page opens from the console's \\u201cOpen in browser\\u201d."); return; }
  var url = new URL("watch", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.search = "?ticket=" + encodeURIComponent(ticket);
  var ws = new WebSocket(url.href);
  ws.onmessage = function (m) {
    var msg;
    try { msg = JSON.parse(m.data); } catch (e) { return; }
    if (msg.type === CHUNK) chunk(msg);
    else if (msg.type === STATUS) status(msg);
    else if (msg.type === ERROR) { over = true; show(null, msg.detail); }
  };
  ws.onclose = function () {
    if (!over) show(null, "The live view was closed. Open it again from the console.");
  };

  function show(state, text) {
    stateEl.textContent = text;
    stateEl.setAttribute("data-state", state || "closed");
    stage.setAttribute("data-state", state || "closed");
  }

  function status(msg) {
    show(msg.state, msg.detail && msg.state !== %(live)s ? LABELS[msg.state] + " (" + msg.detail + ")" : LABELS[msg.state]);
    pageEl.textContent = msg.title ? msg.title + " \\u2014 " + msg.url : msg.url;
    if (msg.state === STOPPED || msg.state === ENDED) {
      // The customer withdrew their page, or the session is over: nothing of it stays on screen.
      if (replayer) { replayer.destroy(); replayer = null; }
      stage.textContent = "";
      parts = null;
      if (msg.state === ENDED) over = true;
    }
  }

  function chunk(c) {
    if (c.part === 0) parts = { batch: c.batch, got: [] };
    if (!parts || parts.batch !== c.batch || parts.got.length !== c.part) { parts = null; return; }
    parts.got.push(c.data);
    if (parts.got.length < c.parts) return;
    var text = parts.got.join("");
    parts = null;
    var events;
    try { events = JSON.parse(text); } catch (e) { return; }
    for (var i = 0; i < events.length; i++) add(events[i]);
  }

  function add(e) {
    if (!replayer) {
      if (e.type !== META && e.type !== FULL) return;  // a replay starts from a snapshot
      // useVirtualDom off: events applied at once ("synchronously") must reach the page now, not at the next flush.
      replayer = new rrwebReplay.Replayer([], { root: stage, liveMode: true, mouseTail: false, useVirtualDom: false });
      replayer.on("resize", function (d) { size = d; fit(); });
      // Every event is applied as it arrives (its time is before the baseline): the server relays them as they happen.
      replayer.startLive(Date.now() + 365 * 86400e3);
    }
    replayer.addEvent(e);
  }

  function fit() {
    var wrapper = stage.querySelector(".replayer-wrapper");
    if (!wrapper || !size || !size.width || !size.height) return;
    var scale = Math.min(stage.clientWidth / size.width, stage.clientHeight / size.height, 1);
    wrapper.style.transform = "scale(" + scale + ")";
  }
  window.addEventListener("resize", fit);
})();
"""


def _js(value: object) -> str:
    return encode(value).decode()


VIEW_JS = (
    _VIEW_JS
    % {
        "chunk": _js(MessageType.COBROWSE.value),
        "status": _js(MessageType.COBROWSE_STATE.value),
        "error": _js(MessageType.ERROR.value),
        "meta": RrwebType.META,
        "full": RrwebType.FULL_SNAPSHOT,
        "labels": _js({k.value: v for k, v in _LABELS.items()}),
        "ended": _js(CobrowseState.ENDED.value),
        "stopped": _js(CobrowseState.STOPPED.value),
        "live": _js(CobrowseState.LIVE.value),
    }
).encode()
