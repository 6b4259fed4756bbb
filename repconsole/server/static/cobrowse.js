/*
 * repconsole help link: live help with browser sharing, for any website.
 *
 *   <script src="SUPPORT-SERVER/cobrowse.js" data-link="LINK-ID" async></script>
 *
 * (SUPPORT-SERVER: the support server's address, e.g. its https origin.)
 *
 * Optional attributes on that <script>:
 *   data-button="none"   no floating button: elements of the page marked
 *                        data-repconsole-help open the chat (they always do)
 *   data-label="Help"    the floating button's text
 *
 * What it does, in order:
 *   1. shows a help button (in a closed shadow root: the page's CSS and ours
 *      never meet; nothing in the page's flow moves);
 *   2. the customer gives a name (and picks an issue if the link asks:
 *      GET /api/link/LINK-ID says, and whether the link is still on), then
 *      consents in a banner: "The support agent will see this page. Typed
 *      text is hidden.";  nothing is recorded, nothing loaded, before Allow;
 *   3. starts the chat (support-chat.js, the support site's own chat code)
 *      on /customer?link=LINK-ID, and records the page with rrweb
 *      (/vendor/rrweb/record.min.js from the same server), every typed
 *      value masked here, in the browser; the events go in batches every
 *      100 ms over /cobrowse?link=LINK-ID (repconsole/protocol/cobrowse.py);
 *   4. a bar says the page is shared, who is viewing it, and has Stop; a
 *      rep's pointer shows as a ring; the chat goes on after Stop;
 *   5. on the next page of the same site (or a reload), the snippet there
 *      resumes the chat with the token in sessionStorage and, if the
 *      customer had not stopped, shares that page too: the consent holds
 *      for the session.
 *
 * Privacy: rrweb runs with maskAllInputs (every field's value becomes
 * "********" before it leaves the page), passwords always masked, the text
 * of elements with class rc-mask masked, elements with class rc-block (and
 * file and hidden inputs, and this widget) not recorded at all.
 *
 * The page needs, in a Content-Security-Policy: script-src, style-src and
 * connect-src (https: and wss:) for the support server.
 */
(function () {
  "use strict";

  var SCRIPT = document.currentScript;
  if (!SCRIPT || !SCRIPT.src || window.RepconsoleCobrowse) return; // twice on one page: once is enough

  var SERVER = new URL(SCRIPT.src, location.href).origin;
  var WS_SERVER = SERVER.replace(/^http/, "ws");
  var LINK = (SCRIPT.getAttribute("data-link") || "").trim();
  var SHOW_BUTTON = SCRIPT.getAttribute("data-button") !== "none";
  var LABEL = (SCRIPT.getAttribute("data-label") || "").trim() || "Help";

  // The wire (repconsole/protocol/cobrowse.py): characters of event JSON per
  // record part, parts per batch, and the page fields' limits.
  var CHUNK_CHARS = 20000;
  var MAX_PARTS = 4096;
  var TITLE_LIMIT = 512;
  var URL_LIMIT = 2048;
  var STORE_KEY = "repconsole.cobrowse";
  var CONSENT = "The support agent will see this page. Typed text is hidden.";
  var MASK = "********";
  var RECORD_JS = SERVER + "/vendor/rrweb/record.min.js";

  var config = {
    flushMs: 100, // a batch of events goes at most this long after its first event...
    flushChars: 64000, // ...or at once when it is this large
    pageEveryMs: 500, // how often the address and title are compared with the last sent
    pointerMs: 3000, // how long a rep's pointer ring stays
    highWater: 2 * 1024 * 1024, // bytes waiting in the socket: beyond, drop events and resync
    lowWater: 256 * 1024,
    retryFirstMs: 500,
    retryMaxMs: 15000,
    styleTimeoutMs: 4000, // show the widget even if its stylesheets are slow
  };

  // Errors the recorder cannot get past: sharing is over for this session.
  var FATAL = ["token_unknown", "session_ended", "not_browser", "link_revoked", "link_expired", "unknown_link"];

  // --------------------------------------------------------------- helpers

  function el(tag, props) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (key) {
      var value = props[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    });
    for (var i = 2; i < arguments.length; i++) add(node, arguments[i]);
    return node;
  }

  function add(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) child.forEach(function (c) { add(node, c); });
    else node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  function svg(path, size) {
    var ns = "http://www.w3.org/2000/svg"; // a namespace name, never fetched
    var s = document.createElementNS(ns, "svg");
    s.setAttribute("width", String(size || 20));
    s.setAttribute("height", String(size || 20));
    s.setAttribute("viewBox", "0 0 20 20");
    s.setAttribute("aria-hidden", "true");
    s.setAttribute("focusable", "false");
    var p = document.createElementNS(ns, "path");
    p.setAttribute("d", path);
    p.setAttribute("fill", "currentColor");
    s.appendChild(p);
    return s;
  }

  var ICON_CHAT = "M3 5.5A2.5 2.5 0 0 1 5.5 3h9A2.5 2.5 0 0 1 17 5.5v6a2.5 2.5 0 0 1-2.5 2.5H9l-4 3.5V14h.5A2.5 2.5 0 0 1 3 11.5z";
  var ICON_EYE = "M10 4C5.5 4 2.3 7.2 1 10c1.3 2.8 4.5 6 9 6s7.7-3.2 9-6c-1.3-2.8-4.5-6-9-6zm0 10a4 4 0 1 1 0-8 4 4 0 0 1 0 8zm0-2.2a1.8 1.8 0 1 0 0-3.6 1.8 1.8 0 0 0 0 3.6z";

  function capped(text, limit) {
    return Array.from(String(text || "")).slice(0, limit).join("");
  }

  function pageUrl() {
    var url = location.href;
    if (Array.from(url).length > URL_LIMIT) url = location.origin + location.pathname;
    return capped(url, URL_LIMIT);
  }

  function pageTitle() {
    return capped(document.title, TITLE_LIMIT);
  }

  function names(list) {
    list = (list || []).filter(Boolean);
    if (!list.length) return "";
    if (list.length === 1) return list[0] + " is viewing this page";
    if (list.length === 2) return list[0] + " and " + list[1] + " are viewing this page";
    return list[0] + " and " + (list.length - 1) + " others are viewing this page";
  }

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.src = src;
      s.async = true;
      s.onload = function () { resolve(); };
      s.onerror = function () { s.remove(); reject(new Error("could not load " + src)); };
      (document.head || document.documentElement).appendChild(s);
    });
  }

  /** The shared chat code (support-chat.js), once. */
  var chatLoading = null;
  function loadChat() {
    if (window.RepconsoleChat) return Promise.resolve(window.RepconsoleChat);
    if (!chatLoading) {
      chatLoading = loadScript(SERVER + "/support-chat.js").then(function () {
        if (!window.RepconsoleChat) throw new Error("support-chat.js defined nothing");
        return window.RepconsoleChat;
      });
      chatLoading.catch(function () { chatLoading = null; });
    }
    return chatLoading;
  }

  /**
   * rrweb's recorder, once.  Its UMD wrapper sets window.rrwebRecord; a
   * page that has its own (another recorder) gets its own back, and a page
   * with an AMD loader gets the named module instead of a global.
   */
  var rrwebLoading = null;
  function loadRrweb() {
    if (!rrwebLoading) {
      var had = Object.prototype.hasOwnProperty.call(window, "rrwebRecord");
      var theirs = window.rrwebRecord;
      rrwebLoading = loadScript(RECORD_JS).then(function () {
        var ours = window.rrwebRecord;
        if (had) window.rrwebRecord = theirs;
        else if (ours !== undefined) {
          try { delete window.rrwebRecord; } catch (e) { window.rrwebRecord = undefined; }
        }
        if (ours && ours !== theirs && typeof ours.record === "function") return ours;
        if (typeof window.define === "function" && window.define.amd && typeof window.require === "function") {
          return new Promise(function (resolve, reject) {
            window.require(["rrwebRecord"], function (m) {
              if (m && typeof m.record === "function") resolve(m);
              else reject(new Error("rrwebRecord: no record()"));
            }, reject);
          });
        }
        throw new Error("record.min.js defined no recorder");
      });
      rrwebLoading.catch(function () { rrwebLoading = null; });
    }
    return rrwebLoading;
  }

  /**
   * What the server says about the link (GET /api/link/ID): whether it is
   * on, and what the customer is asked.  {missing: true} for an unknown
   * link; null when the answer cannot be read (a server without that
   * address, or without CORS for this page): then only a name is asked, and
   * the start says what is wrong.
   */
  function fetchLink() {
    if (!window.fetch || !LINK) return Promise.resolve(null);
    return fetch(SERVER + "/api/link/" + encodeURIComponent(LINK), {
      mode: "cors", credentials: "omit", cache: "no-store", headers: { Accept: "application/json" },
    }).then(function (r) {
      if (r.status === 404) return { missing: true };
      return r.ok ? r.json() : null;
    }).then(function (info) {
      return info && (info.missing || typeof info.available === "boolean") ? info : null;
    }, function () {
      return null;
    });
  }

  function readStore() {
    try {
      var saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
      if (saved && typeof saved.token === "string" && saved.extra && saved.extra.server === SERVER) return saved;
    } catch (e) {
      // no storage: nothing to resume
    }
    return null;
  }

  function reducedMotion() {
    return !!(window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches);
  }

  /** rrweb's record() options: what is masked, what is left out, how often what is sampled. */
  function recordOptions(emit) {
    return {
      emit: emit,
      // Every typed value is masked here, before anything leaves the page...
      maskAllInputs: true,
      // ...(rrweb ignores this list when maskAllInputs is on; it is the floor if that ever changes)...
      maskInputOptions: { password: true },
      // ...as a fixed mask: not even a value's length leaves the page.
      maskInputFn: function (text) { return text ? MASK : ""; },
      // The text of .rc-mask elements is masked (rrweb keeps the word shapes: "**** ****").
      maskTextClass: "rc-mask",
      // .rc-block elements (and this widget) are not recorded at all, nor are
      // file inputs (their value is the file's name) and hidden inputs (tokens).
      blockClass: "rc-block",
      blockSelector: 'input[type="file" i], input[type="hidden" i]',
      slimDOMOptions: {
        script: true, comment: true, headFavicon: true, headWhitespace: true,
        headMetaSocial: true, headMetaRobots: true, headMetaHttpEquiv: true,
        headMetaVerification: true, headMetaAuthorship: true, headMetaDescKeywords: true,
      },
      sampling: { mousemove: 50, scroll: 150, media: 800 },
      recordAfter: "DOMContentLoaded",
      recordCanvas: false,
      collectFonts: false,
      inlineImages: false,
      recordCrossOriginIframes: false,
      // Never break the page: a recorder error is ours to swallow.
      errorHandler: function (err) {
        if (window.console) console.warn("repconsole: recorder error", err);
        return true;
      },
    };
  }

  // -------------------------------------------------------------- recorder

  /**
   * The page's recorder: one /cobrowse connection (re-opened with backoff
   * while sharing lasts) and one rrweb recording.  Nothing is recorded
   * before start(), which only ever follows the customer's consent.
   *
   * options: token, link, lib (rrweb's record module), onWatching(names),
   * onPointer(pointer), onFatal(error), onLive(bool), onReplaced(reason):
   * the server closed the connection on purpose (the session ended, or a
   * newer page of the session records now).
   */
  function Recorder(options) {
    this.o = options;
    this.ws = null;
    this.nextId = 1;
    this.batch = 0;
    this.buffer = [];
    this.bufferChars = 0;
    this.flushTimer = null;
    this.retryTimer = null;
    this.attempt = 0;
    this.attached = false;
    this.overflowed = false;
    this.stopRecording = null;
    this.over = false;
    this.suspended = false;
    this.lastPage = { url: "", title: "" };
    var self = this;
    this.pageTimer = setInterval(function () { self.checkPage(); }, config.pageEveryMs);
    this.onNav = function () { self.checkPage(); };
    this.onHide = function (e) {
      self.flush();
      if (e.persisted) self.suspend();
    };
    this.onShow = function (e) {
      if (e.persisted) self.wake();
    };
    this.onOnline = function () {
      if (self.retryTimer !== null) {
        clearTimeout(self.retryTimer);
        self.retryTimer = null;
        self.connect();
      }
    };
    window.addEventListener("popstate", this.onNav);
    window.addEventListener("hashchange", this.onNav);
    window.addEventListener("pagehide", this.onHide);
    window.addEventListener("pageshow", this.onShow);
    window.addEventListener("online", this.onOnline);
  }

  Recorder.prototype.start = function () {
    this.connect();
  };

  Recorder.prototype.connect = function () {
    var self = this;
    if (this.over || this.suspended) return;
    var ws;
    try {
      ws = new WebSocket(WS_SERVER + "/cobrowse?link=" + encodeURIComponent(this.o.link));
    } catch (e) {
      this.schedule();
      return;
    }
    this.ws = ws;
    this.attached = false;
    ws.onopen = function () {
      if (ws !== self.ws) return;
      self.lastPage = { url: pageUrl(), title: pageTitle() };
      self.send({ type: "attach", id: self.nextId++, token: self.o.token, page_url: self.lastPage.url, title: self.lastPage.title });
    };
    ws.onmessage = function (ev) {
      if (ws === self.ws) self.receive(ev.data);
    };
    ws.onclose = function (ev) {
      if (ws !== self.ws) return;
      self.ws = null;
      self.attached = false;
      self.dropBuffer();
      if (self.over || self.suspended) return;
      if (ev.code === 1000) {
        // The server closed it on purpose: the session ended (the chat says
        // so), or a newer page of this session records now (another tab).
        self.stop(false);
        self.o.onReplaced(ev.reason || "");
        return;
      }
      self.o.onLive(false);
      self.schedule();
    };
  };

  Recorder.prototype.schedule = function () {
    var self = this;
    if (this.retryTimer !== null) return;
    var delay = Math.min(config.retryMaxMs, config.retryFirstMs * Math.pow(2, this.attempt));
    this.attempt += 1;
    this.retryTimer = setTimeout(function () {
      self.retryTimer = null;
      self.connect();
    }, delay * (0.8 + Math.random() * 0.4));
  };

  Recorder.prototype.send = function (message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  };

  Recorder.prototype.receive = function (data) {
    var msg;
    try {
      msg = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (msg.type === "attached") {
      this.attached = true;
      this.attempt = 0;
      this.batch = 0;
      this.o.onWatching(msg.watching || []);
      this.o.onLive(true);
      this.record();
    } else if (msg.type === "snapshot_please") {
      this.snapshot();
    } else if (msg.type === "pointer") {
      this.o.onPointer(msg);
    } else if (msg.type === "watching") {
      this.o.onWatching(msg.reps || []);
    } else if (msg.type === "error") {
      if (FATAL.indexOf(msg.reason) >= 0) {
        this.stop(false);
        this.o.onFatal(msg);
      } else if (window.console) {
        console.warn("repconsole: the support server refused a message:", msg.reason, msg.detail);
      }
    }
  };

  /** Start rrweb (its first events are the page's full snapshot), or take a fresh snapshot. */
  Recorder.prototype.record = function () {
    var self = this;
    if (this.stopRecording) {
      this.snapshot();
      return;
    }
    this.stopRecording = this.o.lib.record(recordOptions(function (event) { self.emit(event); })) || null;
  };

  Recorder.prototype.snapshot = function () {
    if (!this.stopRecording || !this.attached) return;
    try {
      this.o.lib.record.takeFullSnapshot(true);
    } catch (e) {
      // not recording yet (the document is still loading): its first snapshot is on its way
    }
  };

  Recorder.prototype.emit = function (event) {
    if (!this.attached || this.overflowed) return;
    var text;
    try {
      text = JSON.stringify(event);
    } catch (e) {
      return;
    }
    this.buffer.push(text);
    this.bufferChars += text.length;
    var self = this;
    if (this.bufferChars >= config.flushChars) this.flush();
    else if (this.flushTimer === null) this.flushTimer = setTimeout(function () { self.flush(); }, config.flushMs);
  };

  Recorder.prototype.dropBuffer = function () {
    this.buffer = [];
    this.bufferChars = 0;
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
  };

  /** Send the waiting events as one batch: the text of a JSON array, in parts of at most CHUNK_CHARS. */
  Recorder.prototype.flush = function () {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (!this.buffer.length || !this.attached || !this.ws) return;
    if (this.ws.bufferedAmount > config.highWater) {
      this.overflow();
      return;
    }
    var text = "[" + this.buffer.join(",") + "]";
    this.buffer = [];
    this.bufferChars = 0;
    var parts = [];
    for (var i = 0; i < text.length;) {
      var end = Math.min(i + CHUNK_CHARS, text.length);
      var code = text.charCodeAt(end - 1);
      if (end < text.length && code >= 0xd800 && code <= 0xdbff) end -= 1; // never split a surrogate pair
      parts.push(text.slice(i, end));
      i = end;
    }
    if (parts.length > MAX_PARTS) {
      // Tens of megabytes in one batch (a page of huge inline images): nothing
      // a rep could use arrives in time anyway; the next snapshot may fit.
      if (window.console) console.warn("repconsole: a batch of " + text.length + " characters was too large to share");
      return;
    }
    var batch = this.batch++;
    for (var p = 0; p < parts.length; p++) {
      this.send({ type: "record", batch: batch, part: p, parts: parts.length, data: parts[p] });
    }
  };

  /**
   * The connection cannot keep up (a slow network, a huge page): drop what
   * is waiting, and once the socket has drained, send a fresh full snapshot
   * rather than a stream with a hole in it.
   */
  Recorder.prototype.overflow = function () {
    var self = this;
    this.dropBuffer();
    this.overflowed = true;
    var check = setInterval(function () {
      if (!self.ws || self.over) {
        clearInterval(check);
        self.overflowed = false;
      } else if (self.ws.bufferedAmount < config.lowWater) {
        clearInterval(check);
        self.overflowed = false;
        self.snapshot();
      }
    }, 200);
  };

  Recorder.prototype.checkPage = function () {
    if (!this.attached) return;
    var url = pageUrl();
    var title = pageTitle();
    if (url === this.lastPage.url && title === this.lastPage.title) return;
    this.lastPage = { url: url, title: title };
    this.flush();
    this.send({ type: "page", url: url, title: title });
  };

  /** The page went into the back-forward cache: let go of the connection until it comes back. */
  Recorder.prototype.suspend = function () {
    if (this.over) return;
    this.suspended = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    var ws = this.ws;
    this.ws = null;
    this.attached = false;
    this.dropBuffer();
    if (ws) ws.close(1000, "page hidden");
  };

  Recorder.prototype.wake = function () {
    if (this.over || !this.suspended) return;
    this.suspended = false;
    this.attempt = 0;
    this.connect();
  };

  /** Sharing is over: rrweb stops, and (tell: the customer pressed Stop) the server is told. */
  Recorder.prototype.stop = function (tell) {
    if (this.over) return;
    this.over = true;
    if (this.stopRecording) {
      try {
        this.stopRecording();
      } catch (e) {
        // already stopped
      }
    }
    this.stopRecording = null;
    if (tell) {
      this.flush();
      this.send({ type: "stop" });
    }
    this.dropBuffer();
    clearInterval(this.pageTimer);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    window.removeEventListener("popstate", this.onNav);
    window.removeEventListener("hashchange", this.onNav);
    window.removeEventListener("pagehide", this.onHide);
    window.removeEventListener("pageshow", this.onShow);
    window.removeEventListener("online", this.onOnline);
    var ws = this.ws;
    this.ws = null;
    this.attached = false;
    if (ws) ws.close(1000, tell ? "stopped" : "over");
  };

  // ---------------------------------------------------------------- widget

  /** The help button, the panel (form, consent, chat), the sharing bar and the pointer ring. */
  function Widget() {
    this.session = null; // {view, conn} of support-chat.js
    this.recorder = null;
    this.sharing = false;
    this.opener = null;
    this.unread = 0;
    this.opening = false;
  }

  Widget.prototype.build = function () {
    var self = this;
    // The host: a custom element outside the page's flow, not recorded
    // (rc-block), with every inherited style of the page reset.
    this.host = document.createElement("repconsole-help");
    this.host.className = "rc-block";
    var hs = this.host.style;
    [["all", "initial"], ["position", "fixed"], ["top", "0"], ["left", "0"], ["width", "0"], ["height", "0"],
      ["z-index", "2147483647"], ["display", "block"], ["overflow", "visible"], ["contain", "style"]].forEach(function (p) {
      hs.setProperty(p[0], p[1], "important");
    });
    this.root = this.host.attachShadow({ mode: "closed" });
    this.sheets = {};
    var shell = el("div", { class: "rc-cb", hidden: true });
    this.shell = shell;
    this.root.appendChild(shell);

    // The help button.
    this.badge = el("span", { class: "rc-cb-unread", hidden: true });
    this.launcher = el("button", { class: "rc-cb-launcher", type: "button", "aria-expanded": "false", hidden: !SHOW_BUTTON },
      svg(ICON_CHAT), el("span", { class: "rc-cb-launcher-text" }, LABEL), this.badge);
    this.launcher.addEventListener("click", function () { self.open(self.launcher); });

    // The panel.
    var titleId = "rc-cb-title";
    this.minimize = el("button", { class: "rc-widget-close", type: "button", "aria-label": "Minimize the chat" }, "×");
    this.body = el("div", { class: "rc-widget-body" });
    this.panel = el("div", { class: "rc-widget", id: "rc-cb-panel", role: "dialog", "aria-labelledby": titleId, hidden: true },
      el("div", { class: "rc-widget-head" }, el("h2", { id: titleId }, "Live help"), this.minimize),
      this.body);
    this.launcher.setAttribute("aria-controls", "rc-cb-panel");
    this.minimize.addEventListener("click", function () { self.hide(); });
    this.panel.addEventListener("keydown", function (e) {
      if (e.key === "Escape") self.hide();
    });

    // The sharing bar and the frame around the page while it is shared.
    this.barText = el("span", { class: "rc-cb-bar-text" }, "Sharing this page with support");
    this.barWho = el("span", { class: "rc-cb-bar-who" });
    this.stopButton = el("button", { class: "rc-cb-stop", type: "button", "aria-label": "Stop sharing this page" }, "Stop");
    this.stopButton.addEventListener("click", function () { self.stopSharing(); });
    this.bar = el("div", { class: "rc-cb-bar", role: "region", "aria-label": "Page sharing", hidden: true },
      el("span", { class: "rc-cb-dot", "aria-hidden": "true" }),
      el("span", { class: "rc-cb-bar-lines" }, this.barText, this.barWho),
      this.stopButton);
    this.frame = el("div", { class: "rc-cb-frame", "aria-hidden": "true", hidden: true });

    // The pointer ring, and a live region for what only a screen reader would miss.
    this.ringLabel = el("span", { class: "rc-cb-ring-label" });
    this.ring = el("div", { class: "rc-cb-ring", "aria-hidden": "true", hidden: true }, el("span", { class: "rc-cb-ring-dot" }), this.ringLabel);
    this.live = el("div", { class: "rc-sr-only", role: "status", "aria-live": "polite" });

    shell.appendChild(this.frame);
    shell.appendChild(this.ring);
    shell.appendChild(this.bar);
    shell.appendChild(this.panel);
    shell.appendChild(this.launcher);
    shell.appendChild(this.live);
    document.documentElement.appendChild(this.host);

    // The button's own small stylesheet now; the chat's (style.css) once there is a chat to show.
    this.styles("cobrowse.css").then(function () { shell.hidden = false; });

    // Back from the back-forward cache: this page may have been left sharing,
    // but the customer may have pressed Stop on a later page since.
    window.addEventListener("pageshow", function (e) {
      if (!e.persisted || !self.sharing) return;
      var saved = readStore();
      if (!saved || !saved.extra.sharing) self.sharingOver(true);
    });

    // The page's own help links open the chat too (then they are not links);
    // caught on the way down, so a page that stops clicks on links keeps them working.
    document.addEventListener("click", function (e) {
      var target = e.target && e.target.closest ? e.target.closest("[data-repconsole-help]") : null;
      if (!target) return;
      e.preventDefault();
      self.open(target);
    }, true);
  };

  /** A stylesheet of the support server in the shadow root, once; resolves when it is in (or given up on). */
  Widget.prototype.styles = function (name) {
    if (!this.sheets[name]) {
      var link = el("link", { rel: "stylesheet", href: SERVER + "/" + name });
      // Before cobrowse.css, whatever the order they are asked for: its rules refine style.css's.
      this.root.insertBefore(link, name === "style.css" ? this.root.firstChild : this.shell);
      this.sheets[name] = Promise.race([
        new Promise(function (resolve) {
          link.addEventListener("load", resolve);
          link.addEventListener("error", resolve);
        }),
        new Promise(function (resolve) { setTimeout(resolve, config.styleTimeoutMs); }),
      ]);
    }
    return this.sheets[name];
  };

  Widget.prototype.announce = function (text) {
    this.live.textContent = "";
    var live = this.live;
    setTimeout(function () { live.textContent = text; }, 50);
  };

  Widget.prototype.open = function (opener) {
    var self = this;
    this.opener = opener || this.launcher;
    if (this.opening) return;
    // The panel is drawn by style.css: it shows once that is in (at once, after the first time).
    this.opening = true;
    this.styles("style.css").then(function () {
      self.opening = false;
      self.reveal();
    });
  };

  Widget.prototype.reveal = function () {
    var wasHidden = this.panel.hidden;
    this.panel.hidden = false;
    this.launcher.hidden = true;
    this.launcher.setAttribute("aria-expanded", "true");
    this.setUnread(0);
    this.remember({ open: true });
    if (this.session) {
      this.session.view.focus();
      return;
    }
    if (!this.form) this.prepare();
    else if (wasHidden) this.focusFirst();
  };

  /** The start form, once the chat code and what the link asks are here; or why there is none. */
  Widget.prototype.prepare = function () {
    var self = this;
    var C = window.RepconsoleChat;
    this.form = el("div", { class: "rc-widget-intro rc-cb-loading", role: "status" },
      el("span", { class: "rc-spinner", "aria-hidden": "true" }), " Connecting to support…");
    this.body.replaceChildren(this.form);
    var ask = Promise.all([loadChat(), fetchLink(), this.styles("style.css")]);
    ask.then(function (got) {
      var info = got[1];
      if (info && info.missing) self.unavailable(got[0].failure("unknown_link"));
      else if (info && !info.available) self.unavailable(got[0].failure(info.reason || "link_revoked"));
      else self.showForm(info);
    }, function () {
      // support-chat.js did not load: the server is out of reach, or refuses this page.
      var probe = C ? C.reachable() : fetch(SERVER + "/healthz", { mode: "no-cors", cache: "no-store" }).then(
        function () { return true; }, function () { return false; });
      probe.then(function (up) {
        self.unavailable({ reason: up ? "origin_refused" : "network" }, !up);
      });
    });
  };

  /** Help cannot start here: say why (in the customer's words), with Try again when it may pass. */
  Widget.prototype.unavailable = function (err, retry) {
    var self = this;
    var C = window.RepconsoleChat;
    var words = {
      network: "We couldn't reach the support server. Check your connection and try again.",
      origin_refused: "Live help isn't available on this website yet: the support server doesn't accept it.",
    };
    var alert = C ? C.errorAlert(err) : el("div", { class: "rc-alert rc-alert-error", role: "alert", "data-reason": err.reason },
      el("p", null, el("strong", null, words[err.reason] || words.network)));
    var actions = el("div", { class: "rc-actions" });
    if (retry) {
      actions.appendChild(el("button", { class: "rc-button", type: "button", onclick: function () { self.prepare(); } }, "Try again"));
    }
    actions.appendChild(el("button", { class: "rc-button rc-button-secondary", type: "button", onclick: function () { self.hide(); } }, "Close"));
    this.form = el("div", { class: "rc-widget-intro rc-cb-unavailable" }, alert, actions);
    this.form.setAttribute("data-reason", err.reason);
    this.body.replaceChildren(this.form);
    this.form = retry ? null : this.form; // unreachable: the next open tries again
    (actions.querySelector("button") || this.minimize).focus();
  };

  Widget.prototype.hide = function () {
    this.panel.hidden = true;
    // Without a floating button, the page's own help link brings the panel back;
    // a chat in progress keeps the button, or it could not be found again.
    this.launcher.hidden = !SHOW_BUTTON && !this.session;
    this.launcher.setAttribute("aria-expanded", "false");
    this.remember({ open: false });
    var back = this.opener && this.opener.isConnected && this.opener !== this.launcher ? this.opener : this.launcher;
    if (back && !back.hidden) back.focus();
  };

  Widget.prototype.focusFirst = function () {
    var first = this.body.querySelector("[data-autofocus]") || this.body.querySelector("input, select, textarea, button");
    if (first) first.focus();
  };

  Widget.prototype.setUnread = function (n) {
    this.unread = n;
    this.badge.hidden = n === 0;
    this.badge.textContent = n ? String(n) : "";
    this.launcher.setAttribute("aria-label", n ? LABEL + " (" + n + (n === 1 ? " new message)" : " new messages)") : LABEL);
    if (!n) this.launcher.removeAttribute("aria-label");
  };

  Widget.prototype.remember = function (fields) {
    if (!this.session) return;
    var conn = this.session.conn;
    Object.keys(fields).forEach(function (k) { conn.extra[k] = fields[k]; });
    conn.persist();
  };

  // The start form: a name, the issue when the link asks (info: GET /api/link's answer, or null), details.
  Widget.prototype.showForm = function (info) {
    var self = this;
    var name = el("input", { class: "rc-input", id: "rc-cb-name", type: "text", autocomplete: "name", "data-intake": "customer_name", required: true, "data-autofocus": true });
    var issue = null;
    var fields = [el("div", { class: "rc-field" }, el("label", { for: "rc-cb-name" }, "Your name"), name)];
    var issues = info && info.ask_issue && Array.isArray(info.issues) ? info.issues : [];
    if (issues.length) {
      issue = el("select", { class: "rc-input", id: "rc-cb-issue", "data-intake": "issue", required: true },
        el("option", { value: "" }, "Choose the closest match…"));
      var groups = {};
      issues.forEach(function (i) {
        var category = i.category || "Other";
        if (!groups[category]) {
          groups[category] = el("optgroup", { label: category });
          issue.appendChild(groups[category]);
        }
        groups[category].appendChild(el("option", { value: i.code }, i.name));
      });
      fields.push(el("div", { class: "rc-field" }, el("label", { for: "rc-cb-issue" }, "What do you need help with?"), issue));
    }
    var details = el("textarea", { class: "rc-input", id: "rc-cb-details", rows: "3", "data-intake": "details" });
    fields.push(el("div", { class: "rc-field" },
      el("label", { for: "rc-cb-details" }, "How can we help? ", el("span", { class: "rc-optional" }, "(optional)")),
      details));
    var submit = el("button", { class: "rc-button rc-button-block", type: "submit" }, "Continue");
    var form = el("form", { class: "rc-widget-intro", novalidate: true },
      el("p", null, "Chat with our support team. Next, you choose whether to share this page with them."),
      el("div", { class: "rc-form-alert" }),
      fields, submit);
    // The name the customer already typed on the page, if any.
    var known = document.querySelector('input[autocomplete~="name"], input[data-repconsole-name]');
    if (known && known.value && !known.closest(".rc-mask, .rc-block")) name.value = capped(known.value.trim(), 100);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      loadChat().then(function (C) {
        C.clearErrors(form);
        var checks = [C.nameCheck(name), C.lengthCheck(details, C.LIMITS.details, "The description")];
        if (issue) checks.splice(1, 0, { control: issue, test: function () { return issue.value ? "" : "Please choose what you need help with."; } });
        if (C.validate(checks)) return;
        self.intake = { name: name.value.trim(), issue: issue ? issue.value : "", details: details.value.trim() };
        self.showConsent();
      });
    });
    this.form = form;
    this.body.replaceChildren(form);
    this.focusFirst();
  };

  // The consent banner: the required sentence, Allow and Cancel.
  Widget.prototype.showConsent = function () {
    var self = this;
    var allow = el("button", { class: "rc-button", type: "button", "data-consent": "allow" }, "Allow");
    var cancel = el("button", { class: "rc-button rc-button-secondary", type: "button", "data-consent": "cancel" }, "Cancel");
    var heading = el("h3", { id: "rc-cb-consent-title", tabindex: "-1", "data-autofocus": true }, "Share this page with support?");
    var banner = el("section", { class: "rc-cb-consent", "aria-labelledby": "rc-cb-consent-title", "aria-describedby": "rc-cb-consent-text" },
      el("div", { class: "rc-cb-consent-icon", "aria-hidden": "true" }, svg(ICON_EYE, 26)),
      heading,
      el("p", { class: "rc-cb-consent-text", id: "rc-cb-consent-text" }, CONSENT),
      el("p", { class: "rc-cb-consent-more" },
        "Sharing goes on as you move between pages of this site, until you press Stop. You can stop at any moment; the chat goes on."),
      el("div", { class: "rc-form-alert" }),
      el("div", { class: "rc-actions rc-cb-consent-actions" }, allow, cancel));
    allow.addEventListener("click", function () { self.allow(banner, allow, cancel); });
    cancel.addEventListener("click", function () {
      // Nothing was started and nothing recorded: back to the form (as filled in), closed.
      self.body.replaceChildren(self.form);
      self.hide();
    });
    this.body.replaceChildren(banner);
    heading.focus();
  };

  Widget.prototype.allow = function (banner, allow, cancel) {
    var self = this;
    var C = window.RepconsoleChat;
    C.clearErrors(banner);
    C.busy(allow, true, "Starting…");
    cancel.disabled = true;
    var lib = null;
    loadRrweb().then(function (loaded) {
      lib = loaded;
    }, function () {
      throw C.failure("recorder");
    }).then(function () {
      var info = self.intake;
      var session = self.newSession(C, null, info.name);
      var start = {
        type: "start", via: "link", link: LINK,
        intake: C.intake({ customer_name: info.name, details: info.details }),
        page_url: pageUrl(),
      };
      if (info.issue) start.issue = info.issue;
      return session.conn.start(start, { name: info.name, link: LINK, server: SERVER, sharing: true, open: true }).then(function () {
        self.showChat(session, true);
        self.startSharing(lib);
      });
    }).catch(function (err) {
      if (!err || !err.reason) {
        if (window.console) console.error(err);
        err = C.failure("network");
      }
      C.busy(allow, false);
      cancel.disabled = false;
      C.showAlert(banner, C.errorAlert(err));
      if (["link_revoked", "link_expired", "unknown_link", "origin_refused"].indexOf(err.reason) >= 0) {
        // Nothing the customer can do here: no Allow to press again.
        allow.hidden = true;
        cancel.textContent = "Close";
        cancel.focus();
      }
    });
  };

  /** A chat (support-chat.js) for this link, resumed from `saved` or to be started. */
  Widget.prototype.newSession = function (C, saved, name) {
    var self = this;
    var link = (saved && saved.extra.link) || LINK;
    var session = C.chat({
      customerName: name,
      sharing: !!(saved && saved.extra.sharing),
      titleAlerts: false,
      finishLabel: "Close",
      saved: saved,
      url: WS_SERVER + "/customer?link=" + encodeURIComponent(link),
      store: new C.Store(STORE_KEY),
      onFinish: function () { self.ended(); },
      onDone: function () {
        // The chat is over and the customer closed it: the next open starts afresh.
        self.session = null;
        self.form = null;
        self.body.replaceChildren();
        self.hide();
      },
    });
    // A rep's line while the panel is minimized lights the button up.
    new MutationObserver(function (records) {
      if (!self.panel.hidden) return;
      var n = 0;
      records.forEach(function (r) {
        r.addedNodes.forEach(function (node) {
          if (node.classList && node.classList.contains("rc-line-rep")) n += 1;
        });
      });
      if (n) self.setUnread(self.unread + n);
    }).observe(session.view.log, { childList: true });
    return session;
  };

  Widget.prototype.showChat = function (session, focus) {
    this.session = session;
    this.form = null;
    this.body.replaceChildren(session.view.root);
    if (focus) session.view.focus();
  };

  // ------------------------------------------------------------ sharing

  Widget.prototype.startSharing = function (lib) {
    var self = this;
    var conn = this.session.conn;
    this.sharing = true;
    this.session.view.setSharing(true);
    this.bar.hidden = false;
    this.frame.hidden = false;
    this.barWho.textContent = "Connecting…";
    this.recorder = new Recorder({
      token: conn.token,
      link: conn.extra.link || LINK,
      lib: lib,
      onWatching: function (reps) {
        var text = names(reps);
        self.barWho.textContent = text || "Waiting for a support agent to view it";
        if (text) self.announce(text + ".");
      },
      onLive: function (on) {
        self.bar.setAttribute("data-live", on ? "true" : "false");
        if (!on && self.sharing) self.barWho.textContent = "Reconnecting…";
      },
      onPointer: function (p) { self.point(p); },
      onReplaced: function (reason) {
        // This page no longer records: the chat ended (its own status says
        // so), or another page of this session shares now.  Keep the consent.
        if (/newer page/.test(reason) && self.session && !self.session.conn.finished) {
          self.session.view.note("This page is no longer shared: another page of this site is (another tab?).", "sharing");
        }
        self.sharingOver(true);
      },
      onFatal: function (err) {
        var C = window.RepconsoleChat;
        self.sharingOver();
        var why = (C && C.FRIENDLY[err.reason]) || err.detail || "";
        if (self.session && !self.session.conn.finished) self.session.view.note("Page sharing has ended. " + why, "sharing");
      },
    });
    this.recorder.start();
  };

  Widget.prototype.stopSharing = function () {
    if (!this.sharing) return;
    if (this.recorder) this.recorder.stop(true);
    this.sharingOver();
    if (this.session) this.session.view.note("You stopped sharing this page. The chat goes on.", "sharing");
    this.announce("You stopped sharing this page.");
    if (!this.panel.hidden && this.session) this.session.view.focus();
    else this.launcher.focus();
  };

  /**
   * Sharing is over (stopped, refused, or the chat ended): no bar, no
   * recorder.  keepConsent: only on this page (another page of the session
   * shares now), so the next page of this tab shares again.
   */
  Widget.prototype.sharingOver = function (keepConsent) {
    this.sharing = false;
    if (this.recorder) this.recorder.stop(false);
    this.recorder = null;
    this.bar.hidden = true;
    this.frame.hidden = true;
    this.ring.hidden = true;
    if (this.session) {
      this.session.view.setSharing(false);
      if (!keepConsent) this.remember({ sharing: false });
    }
  };

  /** The chat is over (ended, left, unknown): sharing with it. */
  Widget.prototype.ended = function () {
    if (this.sharing) this.sharingOver();
    this.launcher.hidden = !SHOW_BUTTON || !this.panel.hidden;
  };

  /** A rep points at (x, y) of the document: a ring there for a few seconds, scrolled into view. */
  Widget.prototype.point = function (p) {
    var self = this;
    if (!this.sharing) return;
    var x = Number(p.x);
    var y = Number(p.y);
    if (!isFinite(x) || !isFinite(y)) return;
    var margin = 40;
    var vx = x - window.scrollX;
    var vy = y - window.scrollY;
    if (vx < margin || vy < margin || vx > window.innerWidth - margin || vy > window.innerHeight - margin) {
      window.scrollTo({
        left: Math.max(0, x - window.innerWidth / 2),
        top: Math.max(0, y - window.innerHeight / 2),
        behavior: reducedMotion() ? "auto" : "smooth",
      });
    }
    this.ringLabel.textContent = p.by || "Support";
    this.ring.hidden = false;
    this.ring.classList.remove("rc-cb-ring-on");
    void this.ring.offsetWidth; // restart the animation
    this.ring.classList.add("rc-cb-ring-on");
    this.ring.setAttribute("data-x", String(x));
    this.ring.setAttribute("data-y", String(y));
    this.announce((p.by || "Your support agent") + " is pointing at part of this page.");
    var until = Date.now() + config.pointerMs;
    this.pointUntil = until;
    var place = function () {
      if (self.pointUntil !== until) return;
      if (Date.now() >= until || !self.sharing) {
        self.ring.hidden = true;
        return;
      }
      self.ring.style.transform = "translate(" + (x - window.scrollX) + "px, " + (y - window.scrollY) + "px)";
      requestAnimationFrame(place);
    };
    place();
  };

  // ---------------------------------------------------------------- start

  Widget.prototype.init = function () {
    var self = this;
    this.build();
    var saved = readStore();
    if (!saved) {
      if (!LINK && window.console) console.warn("repconsole: cobrowse.js needs data-link=\"LINK-ID\" on its <script>");
      return;
    }
    // A chat of this tab, on an earlier page of the site or before a reload: pick it up.
    var sharing = !!saved.extra.sharing;
    if (sharing) {
      // The bar before anything else: the customer sees at once that the page is shared.
      this.sharing = true;
      this.bar.hidden = false;
      this.frame.hidden = false;
      this.barWho.textContent = "Connecting…";
    }
    Promise.all([loadChat(), sharing ? loadRrweb().catch(function () { return null; }) : null, this.styles("style.css")]).then(function (loaded) {
      var C = loaded[0];
      var lib = loaded[1];
      if (saved.extra.open) {
        // The panel as the customer left it on the last page: open (without taking the focus).
        self.panel.hidden = false;
        self.launcher.hidden = true;
        self.launcher.setAttribute("aria-expanded", "true");
      }
      var session = self.newSession(C, saved, saved.extra.name);
      self.showChat(session, false);
      session.conn.resume();
      if (sharing && !session.conn.finished) {
        if (lib) {
          self.startSharing(lib);
        } else {
          self.sharingOver();
          session.view.note("Page sharing has ended. " + C.FRIENDLY.recorder, "sharing");
        }
      }
    }, function () {
      // The server is out of reach: the page stays as it is; the next page tries again.
      self.sharing = false;
      self.bar.hidden = true;
      self.frame.hidden = true;
      self.panel.hidden = true;
      self.launcher.hidden = !SHOW_BUTTON;
    });
  };

  var widget = new Widget();

  // For tests and for a site's own tweaks (timings): nothing here is needed to use the snippet.
  window.RepconsoleCobrowse = {
    config: config,
    server: SERVER,
    link: LINK,
    recordOptions: recordOptions, // packaging/record_cobrowse_stream.py records with exactly these
    open: function () { widget.open(null); },
    get recorder() { return widget.recorder; },
    get session() { return widget.session; },
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { widget.init(); });
  else widget.init();
})();
