/*
 * The customer pages of a repconsole support server.
 *
 * One file for both pages, chosen by <body data-page="…">:
 *
 *   "site": the public support site (index.html, served at / and /support):
 *           issue form, session key, or pick a representative;
 *   "shop": a web page carrying a help link ([data-repconsole-help]) that
 *           starts a browser-sharing session in a chat overlay.
 *
 * It speaks the customer endpoint of docs/protocol.md over one WebSocket
 * (/customer on the server that served this script), keeps the session's
 * token in sessionStorage, and resumes with it after a reload or a dropped
 * connection.  Nothing from the server is ever parsed as HTML: every text
 * goes into the page as a text node.
 */
(function () {
  "use strict";

  // The server that served this file: the same origin as the page on the
  // support site, the support server when a merchant embeds the help link.
  var SCRIPT = document.currentScript;
  var SERVER = SCRIPT && SCRIPT.src ? new URL(SCRIPT.src, location.href).origin : location.origin;
  var SOCKET_URL = SERVER.replace(/^http/, "ws") + "/customer";
  var SITE_URL = SERVER + "/api/site";

  // The server's limits (repconsole/core/intake.py, the engine's chat limit,
  // the protocol's frame size).  Lengths are in characters as Python counts
  // them: code points, not UTF-16 units.
  var LIMITS = { short: 100, details: 1024, chat: 4000, pageUrl: 2048, frame: 64 * 1024 };
  var KEY_MIN = 5; // session keys are 5 to 32 letters and digits (site.key_length; 7 by default)
  var KEY_MAX = 32;
  var STORE_KEY = "repconsole.customer";

  var config = {
    // How often the hold message repeats while the customer waits.
    holdEverySeconds: 45,
    // How often the list of connected representatives is refreshed.
    repsEverySeconds: 15,
    // Reconnect backoff: the first retry, and the longest pause between two.
    retryFirstMs: 500,
    retryMaxMs: 15000,
    // A request the server has not answered in this time is given up.
    requestTimeoutMs: 20000,
  };

  var FRIENDLY = {
    invalid: "Please check the highlighted field.",
    unknown_issue: "That issue is no longer on offer. Please choose another one.",
    key_unknown: "We couldn't find that session key. Check it with your representative and try again.",
    key_expired: "That session key has expired. Ask your representative for a new one.",
    key_used: "That session key has already been used. Ask your representative for a new one.",
    key_rate_limited: "Too many wrong session keys were tried from your network. Please wait a minute before trying again.",
    rate_limited: "Too many chats were started from your network just now. Please wait a minute and try again.",
    unknown_rep: "That representative is no longer available. Please choose someone else.",
    rep_offline: "That representative has just gone offline. Please choose someone else, or describe your issue instead.",
    unknown_button: "This Support Button is not set up on the support server.",
    button_expired: "This Support Button has expired.",
    unknown_link: "This help link is not set up on the support server.",
    session_ended: "This chat has already ended.",
    token_unknown: "This chat is no longer available.",
    internal_error: "Something went wrong on our side. Please try again.",
    network: "We couldn't reach the support server. Check your connection and try again.",
    disconnected: "The connection to the support server was lost. Please try again.",
    too_large: "The page was too large to send.",
    timeout: "The support server did not answer in time. Please try again.",
    no_link: "Live help isn't set up on this page yet.",
  };

  // ------------------------------------------------------------------ DOM

  /** An element; children are nodes or strings (always text, never HTML). */
  function h(tag, props) {
    var node = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (key) {
        var value = props[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "class") node.className = value;
        else if (key === "text") node.textContent = value;
        else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : String(value));
      });
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) child.forEach(function (c) { append(node, c); });
    else node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  function byId(id) {
    return document.getElementById(id);
  }

  var uidCount = 0;
  function uid(prefix) {
    uidCount += 1;
    return prefix + "-" + uidCount;
  }

  /** Characters as the server counts them (code points). */
  function chars(text) {
    return Array.from(text).length;
  }

  function firstName(name) {
    return name.trim().split(/\s+/)[0] || name;
  }

  function initials(name) {
    var words = name.trim().split(/\s+/).filter(Boolean);
    var letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
    return letters.map(function (w) { return Array.from(w)[0]; }).join("").toUpperCase() || "?";
  }

  function sentence(text) {
    var t = String(text || "").trim();
    if (!t) return "";
    t = t.charAt(0).toUpperCase() + t.slice(1);
    return /[.!?]$/.test(t) ? t : t + ".";
  }

  function clock(at) {
    var when = typeof at === "number" ? new Date(at * 1000) : new Date();
    return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function capped(text, limit) {
    return Array.from(text).slice(0, limit).join("");
  }

  /** What the rep's console shows as the customer's platform, e.g. "Chrome 126 on Windows". */
  function platform() {
    var ua = navigator.userAgent;
    var browser = "A browser";
    var m;
    if ((m = /Edg\/(\d+)/.exec(ua))) browser = "Edge " + m[1];
    else if ((m = /(?:Firefox|FxiOS)\/(\d+)/.exec(ua))) browser = "Firefox " + m[1];
    else if ((m = /(?:HeadlessChrome|Chrome|CriOS)\/(\d+)/.exec(ua))) browser = "Chrome " + m[1];
    else if ((m = /Version\/(\d+)[.\d]* .*Safari/.exec(ua))) browser = "Safari " + m[1];
    var os = /Windows/.test(ua) ? "Windows"
      : /Android/.test(ua) ? "Android"
      : /iPhone|iPad|iPod/.test(ua) ? "iOS"
      : /Mac OS X/.test(ua) ? "macOS"
      : /CrOS/.test(ua) ? "ChromeOS"
      : /Linux/.test(ua) ? "Linux" : "";
    return capped(os ? browser + " on " + os : browser, LIMITS.short);
  }

  function portal() {
    var meta = document.querySelector('meta[name="repconsole-portal"]');
    return capped((meta && meta.content) || location.host, LIMITS.short);
  }

  /** The intake fields, without the empty ones. */
  function intake(fields) {
    var out = {};
    Object.keys(fields).forEach(function (key) {
      if (fields[key] !== "" && fields[key] !== undefined) out[key] = fields[key];
    });
    out.platform = platform();
    if (navigator.language) out.locale = capped(navigator.language, LIMITS.short);
    out.portal = portal();
    return out;
  }

  // -------------------------------------------------------------- storage

  var Store = {
    load: function () {
      try {
        var raw = sessionStorage.getItem(STORE_KEY);
        var saved = raw ? JSON.parse(raw) : null;
        return saved && typeof saved.token === "string" ? saved : null;
      } catch (e) {
        return null;
      }
    },
    save: function (state) {
      try {
        sessionStorage.setItem(STORE_KEY, JSON.stringify(state));
      } catch (e) {
        // Storage may be disabled: the chat still works, a reload just loses it.
      }
    },
    forget: function () {
      try {
        sessionStorage.removeItem(STORE_KEY);
      } catch (e) {
        // As above.
      }
    },
  };

  // ------------------------------------------------------------- messages

  function failure(reason, detail) {
    return { type: "error", reason: reason, detail: detail || FRIENDLY[reason] || reason, data: {} };
  }

  /** An alert explaining a refusal: our sentence, then the server's own words. */
  function errorAlert(err) {
    var friendly = FRIENDLY[err.reason];
    var detail = err.detail ? sentence(err.detail) : "";
    var box = h("div", { class: "rc-alert rc-alert-error", role: "alert", "data-reason": err.reason || "" });
    append(box, h("p", null, h("strong", null, friendly || detail || "Something went wrong.")));
    if (friendly && detail && detail !== friendly) append(box, h("p", { class: "rc-server-detail" }, detail));
    return box;
  }

  // ----------------------------------------------------------- form bits

  function fieldBox(control) {
    return control.closest(".rc-field") || control.parentNode;
  }

  function describe(control, id, on) {
    var ids = (control.getAttribute("aria-describedby") || "").split(/\s+/).filter(Boolean);
    ids = ids.filter(function (x) { return x !== id; });
    if (on) ids.push(id);
    if (ids.length) control.setAttribute("aria-describedby", ids.join(" "));
    else control.removeAttribute("aria-describedby");
  }

  function setFieldError(control, message) {
    var box = fieldBox(control);
    var id = (control.id || uid("rc-field")) + "-error";
    var err = byId(id);
    if (!message) {
      control.removeAttribute("aria-invalid");
      if (err) err.remove();
      describe(control, id, false);
      return;
    }
    if (!err) {
      err = h("p", { class: "rc-field-error", id: id });
      box.appendChild(err);
    }
    err.textContent = message;
    control.setAttribute("aria-invalid", "true");
    describe(control, id, true);
  }

  function clearErrors(form) {
    form.querySelectorAll("[aria-invalid]").forEach(function (c) { setFieldError(c, ""); });
    var alert = form.querySelector(".rc-form-alert");
    if (alert) alert.replaceChildren();
  }

  function showAlert(form, node) {
    var slot = form.querySelector(".rc-form-alert");
    slot.replaceChildren(node);
    slot.scrollIntoView({ block: "nearest" });
  }

  /** A live "n / limit" counter under a text field. */
  function counter(control, limit) {
    var out = h("span", { class: "rc-counter", id: (control.id || uid("rc")) + "-count" });
    var update = function () {
      var n = chars(control.value);
      out.textContent = n.toLocaleString() + " / " + limit.toLocaleString();
      out.classList.toggle("rc-over", n > limit);
    };
    control.addEventListener("input", update);
    update();
    describe(control, out.id, true);
    return out;
  }

  /**
   * Check a form's fields the way the server will.  Returns the first
   * control in error (focused), or null.
   */
  function validate(checks) {
    var first = null;
    checks.forEach(function (check) {
      var message = check.test();
      setFieldError(check.control, message || "");
      if (message && !first) first = check.control;
    });
    if (first) first.focus();
    return first;
  }

  function nameCheck(control) {
    return {
      control: control,
      test: function () {
        var v = control.value.trim();
        if (!v) return "Please enter your name.";
        if (chars(v) > LIMITS.short) return "Please keep your name to " + LIMITS.short + " characters.";
        return "";
      },
    };
  }

  function lengthCheck(control, limit, what) {
    return {
      control: control,
      test: function () {
        var n = chars(control.value.trim());
        return n > limit ? what + " can be at most " + limit.toLocaleString() + " characters (now " + n.toLocaleString() + ")." : "";
      },
    };
  }

  /** Show a refusal on a form: the alert, and the field it is about. */
  function showRefusal(form, err) {
    showAlert(form, errorAlert(err));
    var field = err.data && err.data.field;
    var control = field ? form.querySelector('[data-intake="' + field + '"]') : null;
    if (!control && /^key_(unknown|expired|used)$/.test(err.reason)) control = form.querySelector("[data-key]");
    if (control) {
      setFieldError(control, sentence(err.detail));
      control.focus();
    }
  }

  function busy(button, on, label) {
    if (on) {
      button.dataset.label = button.textContent;
      button.disabled = true;
      button.replaceChildren(h("span", { class: "rc-spinner", "aria-hidden": "true" }), label);
    } else {
      button.disabled = false;
      button.textContent = button.dataset.label || button.textContent;
    }
  }

  // ------------------------------------------------------------ the chat

  /**
   * The chat panel: the status (greeting, position, rep), the log, the
   * composer and Leave.  It only draws; a SupportConnection feeds it.
   */
  function ChatView(options) {
    this.options = options;
    this.lines = new Map(); // n -> <li>
    this.state = "connecting";
    this.holdTimer = null;
    this.unread = 0;
    this.baseTitle = document.title;
    this.finished = false;

    var titleId = uid("rc-chat-title");
    this.badge = h("div", { class: "rc-chat-badge", "aria-hidden": "true" }, h("span", { class: "rc-spinner" }));
    this.title = h("h2", { class: "rc-chat-title", id: titleId }, "Connecting…");
    this.sub = h("p", { class: "rc-chat-sub" });
    this.connText = h("span");
    this.conn = h("p", { class: "rc-conn", role: "status", hidden: true }, h("span", { class: "rc-spinner", "aria-hidden": "true" }), this.connText);
    this.log = h("ol", { class: "rc-log", role: "log", "aria-live": "polite", "aria-label": "Chat messages", tabindex: "0" });

    var inputId = uid("rc-message");
    this.input = h("textarea", {
      class: "rc-input", id: inputId, rows: "1", placeholder: "Type your message…",
      autocomplete: "off", "aria-describedby": inputId + "-help",
    });
    this.send = h("button", { class: "rc-button", type: "submit" }, "Send");
    this.composer = h("form", { class: "rc-composer", novalidate: true },
      h("label", { class: "rc-sr-only", for: inputId }, "Message"), this.input, this.send);
    this.composerError = h("p", { class: "rc-field-error rc-composer-error", role: "alert", hidden: true });
    this.leaveButton = h("button", { class: "rc-button rc-button-danger", type: "button" }, "Leave chat");
    this.doneButton = h("button", { class: "rc-button", type: "button", hidden: true }, options.finishLabel || "Close");
    this.help = h("span", { id: inputId + "-help" }, "Enter sends · Shift+Enter adds a line");
    this.root = h("section", { class: "rc-chat", "data-state": "connecting", "aria-labelledby": titleId },
      h("div", { class: "rc-chat-status", role: "status" }, this.badge, h("div", null, this.title, this.sub)),
      this.conn,
      this.log,
      this.composer,
      this.composerError,
      h("div", { class: "rc-chat-foot" }, this.help, this.leaveButton, this.doneButton));

    var self = this;
    this.composer.addEventListener("submit", function (e) {
      e.preventDefault();
      self.submit();
    });
    this.input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        self.submit();
      }
    });
    this.input.addEventListener("input", function () {
      self.autosize();
      if (!self.composerError.hidden && chars(self.input.value.trim()) <= LIMITS.chat) self.composerError.hidden = true;
    });
    this.leaveButton.addEventListener("click", function () { self.leave(); });
    this.doneButton.addEventListener("click", function () {
      self.destroy();
      if (options.onDone) options.onDone();
    });
    this.onVisible = function () {
      if (!document.hidden) self.markRead();
    };
    document.addEventListener("visibilitychange", this.onVisible);
    this.note("Hi " + firstName(options.customerName || "there") + ", thanks for contacting us. A representative will be with you shortly.", "greeting");
  }

  ChatView.prototype.autosize = function () {
    this.input.style.height = "auto";
    this.input.style.height = Math.min(this.input.scrollHeight + 2, 160) + "px";
  };

  ChatView.prototype.focus = function () {
    (this.input.disabled ? this.doneButton : this.input).focus({ preventScroll: true });
  };

  ChatView.prototype.setState = function (state) {
    this.state = state;
    this.root.setAttribute("data-state", state);
  };

  ChatView.prototype.setBadge = function (content) {
    this.badge.replaceChildren();
    append(this.badge, content);
  };

  /** A status push from the server. */
  ChatView.prototype.status = function (msg) {
    if (this.finished) return;
    if (msg.state === "waiting") {
      this.setState("waiting");
      if (msg.held) {
        this.title.textContent = "On hold";
        this.sub.textContent = "Your representative has put this chat on hold and will be back with you shortly.";
        this.setBadge("…");
      } else if (typeof msg.position === "number") {
        this.title.textContent = "Waiting for a representative";
        this.sub.replaceChildren();
        if (msg.position === 1) append(this.sub, ["You're ", h("span", { class: "rc-position", "data-position": "1" }, "next"), " in line."]);
        else append(this.sub, ["You're number ", h("span", { class: "rc-position", "data-position": String(msg.position) }, String(msg.position)), " in line."]);
        this.setBadge(String(msg.position));
      } else {
        this.title.textContent = "Waiting for a representative";
        this.sub.textContent = "Please stay on this page.";
        this.setBadge(h("span", { class: "rc-spinner" }));
      }
      this.held = !!msg.held;
      this.startHold();
    } else if (msg.state === "active") {
      this.setState("active");
      this.stopHold();
      var rep = msg.rep_name || "a representative";
      this.title.textContent = "You're chatting with " + rep;
      this.sub.textContent = this.options.sharing
        ? "They can see this page as it was when you started the chat."
        : "They can read everything you write here.";
      this.setBadge(msg.rep_name ? initials(msg.rep_name) : "✓");
    } else if (msg.state === "ended") {
      this.end(msg.detail === "customer left" ? "You left the chat." : msg.detail ? sentence(msg.detail) : "");
    }
  };

  ChatView.prototype.startHold = function () {
    var self = this;
    if (this.holdTimer !== null) return;
    this.holdTimer = setInterval(function () {
      self.note(self.held
        ? "Your representative will be back with you shortly. Thank you for holding."
        : "Thanks for your patience. Our representatives are helping other customers; please stay on this page and we'll be with you as soon as we can.", "hold");
    }, config.holdEverySeconds * 1000);
  };

  ChatView.prototype.stopHold = function () {
    if (this.holdTimer !== null) clearInterval(this.holdTimer);
    this.holdTimer = null;
  };

  ChatView.prototype.nearBottom = function () {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 80;
  };

  ChatView.prototype.place = function (item, n) {
    var stick = this.nearBottom();
    var before = null;
    if (typeof n === "number") {
      this.lines.forEach(function (li, other) {
        if (other > n && (!before || other < Number(before.dataset.n))) before = li;
      });
    }
    this.log.insertBefore(item, before);
    if (stick || item.classList.contains("rc-line-customer")) this.log.scrollTop = this.log.scrollHeight;
  };

  /** A chat line the customer may see (server numbered; a line arrives at most once). */
  ChatView.prototype.line = function (line) {
    if (this.lines.has(line.n)) return;
    var li;
    if (line.author === "customer") {
      li = h("li", { class: "rc-line rc-line-customer" },
        h("div", { class: "rc-line-meta" }, h("span", { class: "rc-line-author" }, "You"), h("time", null, clock(line.at))),
        h("p", { class: "rc-bubble" }, line.text));
    } else if (line.author === "rep") {
      li = h("li", { class: "rc-line rc-line-rep" },
        h("div", { class: "rc-line-meta" }, h("span", { class: "rc-line-author" }, line.author_name || "Representative"), h("time", null, clock(line.at))),
        h("p", { class: "rc-bubble" }, line.text));
      this.unseen();
    } else {
      li = h("li", { class: "rc-line rc-line-event", title: clock(line.at) }, h("p", null, line.text));
    }
    li.dataset.n = String(line.n);
    this.lines.set(line.n, li);
    this.place(li, line.n);
  };

  /** A line of our own (greeting, hold message): not from the server, not numbered. */
  ChatView.prototype.note = function (text, kind) {
    this.place(h("li", { class: "rc-line rc-line-note", "data-note": kind || "" }, h("p", null, text)), null);
  };

  ChatView.prototype.unseen = function () {
    if (!document.hidden) return;
    this.unread += 1;
    document.title = "(" + this.unread + ") New message · " + this.baseTitle;
  };

  ChatView.prototype.markRead = function () {
    this.unread = 0;
    document.title = this.baseTitle;
  };

  ChatView.prototype.connection = function (state) {
    if (this.finished) return;
    if (state === "online") {
      this.conn.hidden = true;
      this.send.disabled = false;
    } else {
      this.connText.textContent = state === "resuming" ? "Reconnecting to your chat…" : "Connection lost. Reconnecting…";
      this.conn.hidden = false;
      this.send.disabled = true;
    }
  };

  ChatView.prototype.submit = function () {
    var self = this;
    var text = this.input.value.trim();
    if (!text || this.send.disabled || this.finished) return;
    if (chars(text) > LIMITS.chat) {
      this.composerError.textContent = "A message can be at most " + LIMITS.chat.toLocaleString() + " characters.";
      this.composerError.hidden = false;
      return;
    }
    this.send.disabled = true;
    this.options.say(text).then(function (line) {
      self.line(line);
      if (self.input.value.trim() === text) self.input.value = "";
      self.autosize();
      self.composerError.hidden = true;
    }, function (err) {
      self.composerError.textContent = sentence(FRIENDLY[err.reason] && err.reason !== "invalid" ? FRIENDLY[err.reason] : err.detail);
      self.composerError.hidden = false;
    }).then(function () {
      if (!self.finished && self.conn.hidden) self.send.disabled = false;
      self.input.focus();
    });
  };

  ChatView.prototype.leave = function () {
    this.leaveButton.disabled = true;
    this.options.leave();
  };

  /** The session is over: say so, and offer what comes next. */
  ChatView.prototype.end = function (detail) {
    if (this.finished) return;
    this.finished = true;
    this.stopHold();
    this.setState("ended");
    this.title.textContent = "The session has ended";
    this.sub.textContent = detail || "Thank you for contacting us.";
    this.setBadge("✓");
    this.conn.hidden = true;
    this.input.disabled = true;
    this.input.placeholder = "This chat has ended";
    this.send.disabled = true;
    this.leaveButton.hidden = true;
    this.help.textContent = "You can close this page.";
    this.doneButton.hidden = false;
    this.note("The session has ended." + (detail ? " " + detail : ""), "ended");
  };

  ChatView.prototype.destroy = function () {
    this.stopHold();
    this.markRead();
    document.removeEventListener("visibilitychange", this.onVisible);
    this.root.remove();
  };

  // ------------------------------------------------------ the connection

  /**
   * The customer's WebSocket: start (or resume) a session, push what the
   * server says into a ChatView, and come back with the token when the
   * connection drops, until the session ends.
   */
  function SupportConnection(view, saved) {
    this.view = view;
    this.ws = null;
    this.pending = new Map();
    this.token = saved ? saved.token : null;
    this.session = saved ? saved.session : null;
    // The last chat line this page shows: after a reload it shows none, so it asks for all of them.
    this.lastLine = 0;
    this.nextId = saved ? saved.nextId || 1 : 1;
    this.extra = saved ? saved.extra || {} : {};
    this.finished = false;
    this.leaving = false;
    this.attempt = 0;
    this.timer = null;
    var self = this;
    this.onOnline = function () {
      if (self.timer !== null) {
        clearTimeout(self.timer);
        self.timer = null;
        self.reconnect();
      }
    };
    // A page the browser keeps in its back-forward cache would keep its
    // socket open, and the server would think the customer still there:
    // close it on the way out, come back with the token on the way back.
    this.onHide = function (e) {
      if (e.persisted) self.suspend();
    };
    this.onShow = function (e) {
      if (e.persisted) self.wake();
    };
    window.addEventListener("online", this.onOnline);
    window.addEventListener("pagehide", this.onHide);
    window.addEventListener("pageshow", this.onShow);
    this.suspended = false;
    RepconsoleSupport.current = this;
  }

  SupportConnection.prototype.persist = function () {
    if (!this.token || this.finished || this.leaving) return;
    Store.save({ token: this.token, session: this.session, nextId: this.nextId, extra: this.extra });
  };

  SupportConnection.prototype.open = function () {
    var self = this;
    return new Promise(function (resolve, reject) {
      var ws;
      try {
        ws = new WebSocket(SOCKET_URL);
      } catch (e) {
        reject(failure("network"));
        return;
      }
      var opened = false;
      ws.onopen = function () {
        opened = true;
        self.ws = ws;
        resolve(ws);
      };
      ws.onmessage = function (ev) { self.receive(ws, ev.data); };
      ws.onclose = function (ev) {
        if (!opened) reject(failure("network"));
        else self.closed(ws, ev);
      };
    });
  };

  SupportConnection.prototype.request = function (message) {
    var self = this;
    var ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(failure("disconnected"));
    message.id = this.nextId++;
    this.persist();
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () {
        self.pending.delete(message.id);
        reject(failure("timeout"));
      }, config.requestTimeoutMs);
      self.pending.set(message.id, {
        resolve: function (reply) { clearTimeout(timer); resolve(reply); },
        reject: function (err) { clearTimeout(timer); reject(err); },
      });
      ws.send(JSON.stringify(message));
    });
  };

  SupportConnection.prototype.receive = function (ws, data) {
    if (ws !== this.ws) return;
    var msg;
    try {
      msg = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (msg.id !== undefined && this.pending.has(msg.id)) {
      var waiter = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      waiter.resolve(msg);
      return;
    }
    if (msg.type === "status") {
      this.view.status(msg);
      if (msg.state === "ended") this.finish();
    } else if (msg.type === "chat") {
      this.seen(msg.line);
    }
  };

  SupportConnection.prototype.seen = function (line) {
    if (line.n > this.lastLine) this.lastLine = line.n;
    this.view.line(line);
  };

  SupportConnection.prototype.closed = function (ws, ev) {
    if (ws !== this.ws) return;
    this.ws = null;
    var reason = ev.code === 1009 ? "too_large" : "disconnected";
    this.pending.forEach(function (waiter) { waiter.reject(failure(reason)); });
    this.pending.clear();
    if (this.finished || this.suspended || !this.token) return;
    this.schedule();
  };

  SupportConnection.prototype.suspend = function () {
    if (this.finished) return;
    this.suspended = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    var ws = this.ws;
    this.ws = null;
    this.pending.forEach(function (waiter) { waiter.reject(failure("disconnected")); });
    this.pending.clear();
    if (ws) ws.close(1000, "page hidden");
  };

  SupportConnection.prototype.wake = function () {
    if (this.finished || !this.suspended) return;
    this.suspended = false;
    if (this.token) this.resume();
  };

  SupportConnection.prototype.schedule = function () {
    var self = this;
    this.view.connection("reconnecting");
    var delay = Math.min(config.retryMaxMs, config.retryFirstMs * Math.pow(2, this.attempt));
    this.attempt += 1;
    this.timer = setTimeout(function () {
      self.timer = null;
      self.reconnect();
    }, delay * (0.8 + Math.random() * 0.4));
  };

  SupportConnection.prototype.reconnect = function () {
    var self = this;
    if (this.finished) return Promise.resolve();
    return this.open().then(function () {
      return self.request({ type: "resume", token: self.token, last_line: self.lastLine });
    }, function () {
      self.schedule();
      return null;
    }).then(function (reply) {
      if (!reply) return;
      if (reply.type === "started") {
        self.attempt = 0;
        self.session = reply.session;
        self.view.connection("online");
        if (self.leaving) self.sendLeave();
      } else {
        // The server no longer knows this chat (token_unknown): it is over.
        self.view.end(FRIENDLY[reply.reason] || sentence(reply.detail));
        self.shutdown();
      }
    }, function () {
      // The connection dropped before the answer: closed() schedules the next try.
    });
  };

  /** Start a session.  Resolves with `started`; rejects with the server's error. */
  SupportConnection.prototype.start = function (message, extra) {
    var self = this;
    this.extra = extra || {};
    return this.open().then(function () {
      return self.request(message);
    }).then(function (reply) {
      if (reply.type !== "started") {
        self.shutdown();
        throw reply;
      }
      self.token = reply.token;
      self.session = reply.session;
      self.persist();
      self.view.connection("online");
      return reply;
    }, function (err) {
      self.shutdown();
      throw err;
    });
  };

  /** Resume a session this tab started before (a reload). */
  SupportConnection.prototype.resume = function () {
    this.view.connection("resuming");
    return this.reconnect();
  };

  SupportConnection.prototype.say = function (text) {
    return this.request({ type: "say", text: text }).then(function (reply) {
      if (reply.type !== "result") throw reply;
      return reply.result.line;
    });
  };

  SupportConnection.prototype.sendLeave = function () {
    var self = this;
    this.request({ type: "leave" }).then(function (reply) {
      if (reply.type === "error") {
        // session_ended: it was over already.
        self.view.end(sentence(reply.detail));
        self.finish();
      }
    }, function () {
      // Dropped: the next resume sends it again.
    });
  };

  SupportConnection.prototype.leave = function () {
    this.leaving = true;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.sendLeave();
    } else {
      // Offline: the chat is over for the customer now; the server is told
      // as soon as a connection comes back (or ends it after its grace period).
      Store.forget();
      this.view.end("You left the chat.");
    }
  };

  SupportConnection.prototype.finish = function () {
    this.finished = true;
    Store.forget();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("pagehide", this.onHide);
    window.removeEventListener("pageshow", this.onShow);
  };

  SupportConnection.prototype.shutdown = function () {
    this.finish();
    var ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
  };

  /** A ChatView and its connection, wired together. */
  function chat(options) {
    var conn = null;
    var view = new ChatView({
      customerName: options.customerName,
      sharing: options.sharing,
      finishLabel: options.finishLabel,
      onDone: function () {
        if (conn) conn.shutdown();
        if (options.onDone) options.onDone();
      },
      say: function (text) { return conn.say(text); },
      leave: function () { conn.leave(); },
    });
    conn = new SupportConnection(view, options.saved);
    return { view: view, conn: conn };
  }

  // -------------------------------------------------------- the site API

  function loadSite() {
    return fetch(SITE_URL, { cache: "no-store", headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    });
  }

  // ---------------------------------------------------------- site page

  function initSite() {
    var startCard = byId("start");
    var chatCard = byId("chat");
    var siteAlert = byId("site-alert");
    var tabs = Array.from(document.querySelectorAll('[role="tab"]'));
    var repsTimer = null;
    var site = null;
    var current = null;
    var lastName = "";
    var nameFields = Array.from(document.querySelectorAll("[data-name-field]"));

    // Tabs: click, or arrow keys / Home / End on the tab list.
    function select(tab, focus) {
      tabs.forEach(function (t) {
        var on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
        byId(t.getAttribute("aria-controls")).hidden = !on;
      });
      if (focus) tab.focus();
      var panel = byId(tab.getAttribute("aria-controls"));
      var name = panel.querySelector("[data-name-field]");
      if (name && !name.value && lastName) name.value = lastName;
      if (tab.id === "tab-rep") {
        refreshReps();
        if (repsTimer === null) repsTimer = setInterval(refreshReps, config.repsEverySeconds * 1000);
      } else if (repsTimer !== null) {
        clearInterval(repsTimer);
        repsTimer = null;
      }
    }
    tabs.forEach(function (tab, i) {
      tab.addEventListener("click", function () { select(tab, false); });
      tab.addEventListener("keydown", function (e) {
        var to = e.key === "ArrowRight" ? (i + 1) % tabs.length
          : e.key === "ArrowLeft" ? (i + tabs.length - 1) % tabs.length
          : e.key === "Home" ? 0 : e.key === "End" ? tabs.length - 1 : -1;
        if (to >= 0) {
          e.preventDefault();
          select(tabs[to], true);
        }
      });
    });
    nameFields.forEach(function (field) {
      field.addEventListener("input", function () { lastName = field.value; });
    });
    document.querySelectorAll("[data-show-tab]").forEach(function (b) {
      b.addEventListener("click", function () { select(byId(b.getAttribute("data-show-tab")), true); });
    });

    // Counters.
    document.querySelectorAll("textarea[data-limit]").forEach(function (t) {
      var foot = t.parentNode.querySelector(".rc-field-foot");
      foot.appendChild(counter(t, Number(t.getAttribute("data-limit"))));
    });

    // What the site offers.
    function fill(data) {
      site = data;
      siteAlert.replaceChildren();
      fillIssues(data.issues || []);
      fillReps(data.reps || []);
    }

    function load() {
      return loadSite().then(fill, function () {
        var retry = h("button", { class: "rc-link-button", type: "button" }, "Try again");
        retry.addEventListener("click", function () { siteAlert.replaceChildren(); load(); });
        siteAlert.replaceChildren(h("div", { class: "rc-alert rc-alert-error", role: "alert" },
          h("p", null, h("strong", null, "We couldn't load the support options.")),
          h("p", null, "Check your connection. ", retry)));
      });
    }

    function fillIssues(issues) {
      var select = byId("issue-issue");
      var chosen = select.value || new URLSearchParams(location.search).get("issue") || "";
      select.replaceChildren(h("option", { value: "" }, issues.length ? "Choose the closest match…" : "No issues are listed"));
      var groups = new Map();
      issues.forEach(function (issue) {
        var category = issue.category || "Other";
        if (!groups.has(category)) {
          groups.set(category, h("optgroup", { label: category }));
          select.appendChild(groups.get(category));
        }
        groups.get(category).appendChild(h("option", { value: issue.code }, issue.name));
      });
      if (issues.some(function (i) { return i.code === chosen; })) select.value = chosen;
      select.disabled = !issues.length;
      byId("issue-loading").hidden = true;
    }

    function fillReps(reps) {
      var list = byId("rep-list");
      var chosen = (list.querySelector("input:checked") || {}).value;
      var empty = byId("rep-empty");
      var dot = byId("online-dot");
      var online = byId("online-text");
      byId("rep-loading").hidden = true;
      dot.classList.toggle("rc-dot-on", reps.length > 0);
      online.textContent = reps.length === 1 ? "1 representative online"
        : reps.length ? reps.length + " representatives online" : "No representatives online right now";
      list.replaceChildren();
      empty.hidden = reps.length > 0;
      list.hidden = reps.length === 0;
      byId("rep-submit").disabled = reps.length === 0;
      reps.forEach(function (rep) {
        var input = h("input", { type: "radio", name: "rep", value: rep.id, "data-intake": "rep" });
        if (rep.id === chosen) input.checked = true;
        list.appendChild(h("label", { class: "rc-rep" }, input,
          h("span", { class: "rc-avatar", "aria-hidden": "true" }, initials(rep.name)),
          h("span", null, h("span", { class: "rc-rep-name" }, rep.name),
            h("span", { class: "rc-rep-state" }, h("span", { class: "rc-dot rc-dot-on", "aria-hidden": "true" }), "Online"))));
      });
      if (chosen && !list.querySelector("input:checked") && reps.length) {
        setFieldError(list, "The representative you chose has gone offline. Please choose someone else.");
      }
    }

    function refreshReps() {
      if (current) return;
      loadSite().then(fill, function () { /* keep the list we have */ });
    }

    // Starting.
    function begin(form, button, message, name) {
      clearErrors(form);
      busy(button, true, "Connecting…");
      var session = chat({ customerName: name, finishLabel: "Start a new request", onDone: reset });
      session.conn.start(message, { name: name }).then(function () {
        busy(button, false);
        showChat(session);
      }, function (err) {
        busy(button, false);
        showRefusal(form, err);
        if (err.reason === "unknown_issue" || err.reason === "unknown_rep" || err.reason === "rep_offline") load();
      });
    }

    function showChat(session) {
      current = session;
      if (repsTimer !== null) clearInterval(repsTimer);
      repsTimer = null;
      startCard.hidden = true;
      byId("assurances").hidden = true;
      chatCard.replaceChildren(session.view.root);
      chatCard.hidden = false;
      session.view.focus();
      // The whole chat in view, its status first (a phone shows less than the card).
      var box = chatCard.getBoundingClientRect();
      if (box.top < 0 || box.bottom > window.innerHeight) window.scrollBy(0, box.top - 8);
    }

    function reset() {
      current = null;
      chatCard.hidden = true;
      chatCard.replaceChildren();
      startCard.hidden = false;
      byId("assurances").hidden = false;
      document.querySelectorAll(".rc-start form").forEach(function (f) {
        clearErrors(f);
        f.querySelectorAll("textarea, [data-key]").forEach(function (c) { c.value = ""; c.dispatchEvent(new Event("input")); });
      });
      load();
      var selected = tabs.filter(function (t) { return t.getAttribute("aria-selected") === "true"; })[0];
      select(selected, true);
    }

    byId("panel-issue").addEventListener("submit", function (e) {
      e.preventDefault();
      var form = e.currentTarget;
      var name = byId("issue-name");
      var company = byId("issue-company");
      var issue = byId("issue-issue");
      var details = byId("issue-details");
      var ticket = byId("issue-ticket");
      clearErrors(form);
      var wrong = validate([
        nameCheck(name),
        lengthCheck(company, LIMITS.short, "The company name"),
        { control: issue, test: function () { return issue.value ? "" : "Please choose what you need help with."; } },
        lengthCheck(details, LIMITS.details, "The description"),
        lengthCheck(ticket, LIMITS.short, "The ticket number"),
      ]);
      if (wrong) return;
      begin(form, form.querySelector('[type="submit"]'), {
        type: "start", via: "issue", issue: issue.value,
        intake: intake({
          customer_name: name.value.trim(), company: company.value.trim(),
          details: details.value.trim(), external_key: ticket.value.trim(),
        }),
      }, name.value.trim());
    });

    var keyInput = byId("key-key");
    byId("panel-key").addEventListener("submit", function (e) {
      e.preventDefault();
      var form = e.currentTarget;
      var name = byId("key-name");
      var key = keyInput.value.toUpperCase().replace(/[^A-Z0-9]/g, "");
      clearErrors(form);
      var wrong = validate([
        nameCheck(name),
        {
          control: keyInput,
          test: function () {
            if (!key) return "Please enter the session key your representative gave you.";
            if (/[^A-Za-z0-9\s-]/.test(keyInput.value)) return "A session key has only letters and digits (spaces and dashes are fine).";
            if (key.length < KEY_MIN || key.length > KEY_MAX) return "That doesn't look like a session key: check that you typed all of it.";
            return "";
          },
        },
      ]);
      if (wrong) return;
      begin(form, form.querySelector('[type="submit"]'), {
        type: "start", via: "key", key: key,
        intake: intake({ customer_name: name.value.trim() }),
      }, name.value.trim());
    });

    byId("panel-rep").addEventListener("submit", function (e) {
      e.preventDefault();
      var form = e.currentTarget;
      var name = byId("rep-name");
      var details = byId("rep-details");
      var list = byId("rep-list");
      var picked = list.querySelector("input:checked");
      clearErrors(form);
      var wrong = validate([
        nameCheck(name),
        { control: list, test: function () { return picked ? "" : "Please choose a representative."; } },
        lengthCheck(details, LIMITS.details, "The description"),
      ]);
      if (wrong) {
        if (wrong === list) (list.querySelector("input") || list).focus();
        return;
      }
      begin(form, form.querySelector('[type="submit"]'), {
        type: "start", via: "rep", rep: picked.value,
        intake: intake({ customer_name: name.value.trim(), details: details.value.trim() }),
      }, name.value.trim());
    });
    byId("rep-list").addEventListener("change", function () { setFieldError(byId("rep-list"), ""); });

    var params = new URLSearchParams(location.search);
    if (params.get("key")) {
      keyInput.value = params.get("key");
      select(byId("tab-key"), false);
    }

    var saved = Store.load();
    load();
    if (saved) {
      var session = chat({ customerName: saved.extra && saved.extra.name, saved: saved, finishLabel: "Start a new request", onDone: reset });
      showChat(session);
      session.conn.resume();
    }
  }

  // ----------------------------------------------------- the help link

  /** Copy what the customer typed into the copy's attributes, masking what must not leave the page. */
  function reflect(live, copy) {
    var tag = live.tagName;
    var type = (live.getAttribute("type") || "").toLowerCase();
    var auto = (live.getAttribute("autocomplete") || "").toLowerCase();
    var secret = type === "password" || type === "hidden" || type === "file" || /\bcc-|one-time-code|password/.test(auto) ||
      live.hasAttribute("data-repconsole-private");
    if (tag === "TEXTAREA") {
      copy.textContent = secret ? "" : live.value;
    } else if (tag === "SELECT") {
      Array.from(live.options).forEach(function (opt, i) {
        if (opt.selected) copy.options[i].setAttribute("selected", "");
        else copy.options[i].removeAttribute("selected");
      });
    } else if (type === "checkbox" || type === "radio") {
      if (live.checked) copy.setAttribute("checked", "");
      else copy.removeAttribute("checked");
    } else if (secret) {
      if (type === "hidden" || type === "file") copy.removeAttribute("value");
      else copy.setAttribute("value", live.value ? "••••••••" : "");
    } else {
      copy.setAttribute("value", live.value);
    }
  }

  /**
   * The page as the customer sees it now, for the rep: current field values,
   * no scripts, no chat widget, no card numbers or passwords.
   */
  function pageSnapshot() {
    var root = document.documentElement;
    var copy = root.cloneNode(true);
    var live = root.querySelectorAll("input, textarea, select");
    var copies = copy.querySelectorAll("input, textarea, select");
    live.forEach(function (control, i) { reflect(control, copies[i]); });
    copy.querySelectorAll("script, noscript, template, iframe, .rc-widget").forEach(function (n) { n.remove(); });
    var head = copy.querySelector("head");
    if (head) head.insertBefore(h("base", { href: location.href }), head.firstChild);
    var doctype = document.doctype ? "<!DOCTYPE " + document.doctype.name + ">\n" : "";
    return doctype + copy.outerHTML;
  }

  /** The page's HTML, cut to what fits in one frame with the rest of `message`. */
  function fitPage(message, html) {
    var encoder = new TextEncoder();
    var size = function (text) { return encoder.encode(JSON.stringify(text)).length; };
    var budget = LIMITS.frame - encoder.encode(JSON.stringify(message)).length - 64;
    if (size(html) <= budget) return html;
    var marker = "\n<!-- The rest of the page was too large to share. -->";
    var cut = function (n) {
      var code = html.charCodeAt(n - 1);
      return html.slice(0, code >= 0xd800 && code <= 0xdbff ? n - 1 : n);
    };
    var lo = 0;
    var hi = html.length;
    while (lo < hi) {
      var mid = (lo + hi + 1) >> 1;
      if (size(cut(mid) + marker) <= budget) lo = mid;
      else hi = mid - 1;
    }
    return cut(lo) + marker;
  }

  function pageUrl() {
    var url = location.href;
    if (chars(url) > LIMITS.pageUrl) url = location.origin + location.pathname;
    return capped(url, LIMITS.pageUrl);
  }

  /** Which browser-sharing link to start with: ?link=, the help link's data-repconsole-link, else the site's first. */
  function chooseLink(trigger) {
    var fromUrl = new URLSearchParams(location.search).get("link");
    if (fromUrl) return Promise.resolve(fromUrl);
    var marked = (trigger && trigger.getAttribute("data-repconsole-link")) ||
      (document.querySelector("[data-repconsole-link]") || { getAttribute: function () { return null; } }).getAttribute("data-repconsole-link");
    if (marked) return Promise.resolve(marked);
    return loadSite().then(function (site) {
      var links = site.links || [];
      if (!links.length) throw failure("no_link");
      return links[0].id;
    }, function () {
      throw failure("network");
    });
  }

  function HelpWidget() {
    this.root = null;
    this.trigger = null;
    this.session = null;
  }

  HelpWidget.prototype.build = function () {
    var self = this;
    var titleId = uid("rc-widget-title");
    this.close = h("button", { class: "rc-widget-close", type: "button", "aria-label": "Minimize the chat" }, "×");
    this.body = h("div", { class: "rc-widget-body" });
    this.root = h("div", { class: "rc-widget", role: "dialog", "aria-labelledby": titleId, hidden: true },
      h("div", { class: "rc-widget-head" }, h("h2", { id: titleId }, "Chat with us"), this.close),
      this.body);
    this.close.addEventListener("click", function () { self.hide(); });
    this.root.addEventListener("keydown", function (e) {
      if (e.key === "Escape") self.hide();
    });
    document.body.appendChild(this.root);
  };

  HelpWidget.prototype.intro = function () {
    var self = this;
    var nameId = uid("rc-help-name");
    var detailsId = uid("rc-help-details");
    var name = h("input", { class: "rc-input", id: nameId, type: "text", autocomplete: "name", "data-intake": "customer_name", required: true });
    var details = h("textarea", { class: "rc-input", id: detailsId, rows: "3", "data-intake": "details" });
    var submit = h("button", { class: "rc-button rc-button-block", type: "submit" }, "Start chat");
    var form = h("form", { class: "rc-widget-intro", novalidate: true },
      h("div", { class: "rc-alert rc-alert-info rc-share-note" },
        h("p", null, "A support representative will see this page as it looks now, to help you with it. Card numbers and passwords are never shared.")),
      h("div", { class: "rc-form-alert" }),
      h("div", { class: "rc-field" }, h("label", { for: nameId }, "Your name"), name),
      h("div", { class: "rc-field" },
        h("label", { for: detailsId }, "How can we help? ", h("span", { class: "rc-optional" }, "(optional)")),
        details,
        h("div", { class: "rc-field-foot" }, counter(details, LIMITS.details))),
      submit);
    // The name the customer already typed on the page, if any.
    var known = document.querySelector('main input[autocomplete~="name"], input[data-repconsole-name]');
    if (known && known.value) name.value = capped(known.value.trim(), LIMITS.short);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      clearErrors(form);
      if (validate([nameCheck(name), lengthCheck(details, LIMITS.details, "The description")])) return;
      self.start(form, submit, name.value.trim(), details.value.trim());
    });
    this.form = form;
    this.body.replaceChildren(form);
  };

  HelpWidget.prototype.open = function (trigger) {
    if (!this.root) this.build();
    if (trigger) this.trigger = trigger;
    var wasHidden = this.root.hidden;
    this.root.hidden = false;
    if (this.session) {
      this.session.view.focus();
      return;
    }
    if (!this.form) this.intro();
    if (wasHidden) this.form.querySelector("input").focus();
  };

  HelpWidget.prototype.hide = function () {
    if (!this.root) return;
    this.root.hidden = true;
    if (this.trigger) this.trigger.focus();
  };

  HelpWidget.prototype.start = function (form, button, name, details) {
    var self = this;
    busy(button, true, "Connecting…");
    chooseLink(this.trigger).then(function (link) {
      var message = {
        type: "start", via: "link", link: link,
        intake: intake({ customer_name: name, details: details }),
        page_url: pageUrl(),
      };
      message.page_html = fitPage(message, pageSnapshot());
      var session = chat({
        customerName: name, sharing: true, finishLabel: "Close",
        onDone: function () { self.session = null; self.form = null; self.hide(); },
      });
      return session.conn.start(message, { name: name, sharing: true }).then(function () {
        self.show(session);
      });
    }).catch(function (err) {
      if (!err || !err.reason) {
        if (window.console) console.error(err);
        err = failure("network");
      }
      showRefusal(form, err);
    }).then(function () {
      busy(button, false);
    });
  };

  HelpWidget.prototype.show = function (session) {
    this.session = session;
    this.form = null;
    this.body.replaceChildren(session.view.root);
    session.view.focus();
  };

  function initShop() {
    var widget = new HelpWidget();
    document.querySelectorAll("[data-repconsole-help]").forEach(function (link) {
      link.addEventListener("click", function (e) {
        e.preventDefault();
        widget.open(link);
      });
    });
    var saved = Store.load();
    if (saved) {
      widget.build();
      widget.root.hidden = false;
      var session = chat({
        customerName: saved.extra && saved.extra.name, sharing: !!(saved.extra && saved.extra.sharing), saved: saved, finishLabel: "Close",
        onDone: function () { widget.session = null; widget.form = null; widget.hide(); },
      });
      widget.show(session);
      session.conn.resume();
    }
  }

  // ----------------------------------------------------------------- go

  var RepconsoleSupport = {
    config: config,
    current: null,
    pageSnapshot: pageSnapshot,
    fitPage: fitPage,
    ChatView: ChatView,
    SupportConnection: SupportConnection,
  };
  window.RepconsoleSupport = RepconsoleSupport;

  function init() {
    var page = document.body.getAttribute("data-page");
    if (page === "site") initSite();
    else initShop();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
