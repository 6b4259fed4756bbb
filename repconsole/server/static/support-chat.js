/*
 * The customer's chat with a repconsole support server: the part the
 * support site (support.js) and the help-link snippet (cobrowse.js) share.
 *
 * It speaks the customer endpoint of docs/protocol.md over one WebSocket
 * (/customer on the server that served this script), keeps the session's
 * token in sessionStorage, and resumes with it after a reload, a page of
 * the same site, or a dropped connection.  Nothing from the server is ever
 * parsed as HTML: every text goes into the page as a text node.
 *
 * It defines one global, window.RepconsoleChat: the DOM and form helpers,
 * ChatView (the chat panel), SupportConnection (the socket) and chat()
 * (the two wired together).  It draws into whatever root it is given: the
 * support site's document, or the snippet's shadow root on a merchant's page.
 */
(function () {
  "use strict";

  if (window.RepconsoleChat) return; // loaded twice (a page that also embeds the snippet)

  // The server that served this file: the same origin as the page on the
  // support site, the support server when a merchant's page loads the snippet.
  var SCRIPT = document.currentScript;
  var SERVER = SCRIPT && SCRIPT.src ? new URL(SCRIPT.src, location.href).origin : location.origin;
  var SOCKET_URL = SERVER.replace(/^http/, "ws") + "/customer";

  // The server's limits (repconsole/core/intake.py, the engine's chat limit,
  // the protocol's frame size).  Lengths are in characters as Python counts
  // them: code points, not UTF-16 units.
  var LIMITS = { short: 100, details: 1024, chat: 4000, pageUrl: 2048, frame: 64 * 1024 };

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
    // A start answered "retryable", or whose connection dropped before its
    // answer, is tried again this many times (with the same retry_key), after
    // backoffMs: retryFirstMs, then twice as long each time.
    startRetries: 3,
    // Typing indicators (docs/protocol.md, Typing): at most one "typing" sent
    // every typingEveryMs while the customer types; the rep's "… is typing"
    // shows until their line arrives or typingClearMs pass without another.
    typingEveryMs: 2000,
    typingClearMs: 5000,
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
    link_revoked: "This help link has been switched off. Please contact us another way.",
    link_expired: "This help link has expired. Please contact us another way.",
    origin_refused: "Live help isn't available on this website yet: the support server doesn't accept it.",
    not_browser: "This chat can't share the page.",
    session_ended: "This chat has already ended.",
    token_unknown: "This chat is no longer available.",
    internal_error: "Something went wrong on our side. Please try again.",
    network: "We couldn't reach the support server. Check your connection and try again.",
    disconnected: "The connection to the support server was lost. Please try again.",
    timeout: "The support server did not answer in time. Please try again.",
    no_link: "Live help isn't set up on this page yet.",
    recorder: "Page sharing couldn't start: the support server's page recorder did not load.",
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

  /** The element with ``id`` in the same tree as ``node`` (the document, or a shadow root). */
  function byIdNear(node, id) {
    var root = node.getRootNode ? node.getRootNode() : document;
    return root.getElementById ? root.getElementById(id) : byId(id);
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

  /**
   * A chat kept in sessionStorage under ``key`` (per tab and per origin, gone
   * when the tab closes): the token, and what the page needs to pick it up.
   */
  function Store(key) {
    this.key = key;
  }

  Store.prototype = {
    load: function () {
      try {
        var raw = sessionStorage.getItem(this.key);
        var saved = raw ? JSON.parse(raw) : null;
        return saved && typeof saved.token === "string" ? saved : null;
      } catch (e) {
        return null;
      }
    },
    save: function (state) {
      try {
        sessionStorage.setItem(this.key, JSON.stringify(state));
      } catch (e) {
        // Storage may be disabled: the chat still works, a reload just loses it.
      }
    },
    forget: function () {
      try {
        sessionStorage.removeItem(this.key);
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
    var err = byIdNear(control, id);
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
   *
   * options: customerName, say(text) and leave(), onDone, finishLabel;
   * sharing (the rep sees this page live: the status says so, see
   * setSharing); titleAlerts (false: never touch the page's title, for a
   * merchant's page).
   */
  function ChatView(options) {
    this.options = options;
    this.sharing = !!options.sharing;
    this.repName = "";
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
    // "Alice Ng is typing…": a status of its own, outside the log (it is no message).
    this.typingNote = h("p", { class: "rc-typing", role: "status", hidden: true });
    this.typingTimer = null;
    this.typedAt = -Infinity; // when this page last said the customer is typing

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
      this.typingNote,
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
      self.typed();
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

  /** "Alice Ng is typing…" (a rep's name as the server gives it; none: "Your representative"). */
  function typingText(name) {
    return (name || "Your representative") + " is typing\u2026";
  }

  /** A rep of the session is typing: say so until their line comes or typingClearMs pass. */
  ChatView.prototype.typing = function (name) {
    var self = this;
    if (this.finished) return;
    this.typingNote.textContent = typingText(name);
    this.typingNote.hidden = false;
    if (this.typingTimer !== null) clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(function () { self.stopTyping(); }, config.typingClearMs);
  };

  ChatView.prototype.stopTyping = function () {
    if (this.typingTimer !== null) clearTimeout(this.typingTimer);
    this.typingTimer = null;
    this.typingNote.hidden = true;
    this.typingNote.textContent = "";
  };

  /** The customer typed: tell the rep, at most once every typingEveryMs (and not for an empty box). */
  ChatView.prototype.typed = function () {
    var now = Date.now();
    if (!this.input.value.trim() || this.finished || now - this.typedAt < config.typingEveryMs) return;
    this.typedAt = now;
    if (this.options.typing) this.options.typing();
  };

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

  /** The rep sees this page live (true), or no longer (the customer stopped sharing). */
  ChatView.prototype.setSharing = function (on) {
    this.sharing = !!on;
    if (this.state === "active") this.sub.textContent = this.activeText();
  };

  ChatView.prototype.activeText = function () {
    return this.sharing ? "They can see this page while you share it." : "They can read everything you write here.";
  };

  ChatView.prototype.setBadge = function (content) {
    this.badge.replaceChildren();
    append(this.badge, content);
  };

  /** "About 2–4 minutes." from a status's estimate ({low, high} in whole minutes), or null: no number.
   *  The words of repconsole.core.estimate.describe: "less than 3 minutes" for a range from 0, not "about 0–3". */
  function estimateText(estimate) {
    if (!estimate) return "We are busier than usual.";
    if (estimate.high <= 1) return "Estimated wait: less than a minute.";
    if (estimate.low === 0) return "Estimated wait: less than " + estimate.high + " minutes.";
    if (estimate.low === estimate.high) return "Estimated wait: about " + estimate.high + " minutes.";
    return "Estimated wait: about " + estimate.low + "\u2013" + estimate.high + " minutes.";
  }

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
        // A team's queue: the estimated wait (docs/protocol.md), null when there is too little data.
        if ("estimate" in msg) append(this.sub, [" ", h("span", { class: "rc-estimate" }, estimateText(msg.estimate))]);
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
      this.repName = msg.rep_name || "";
      this.sub.textContent = this.activeText();
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
      this.stopTyping(); // the line they were typing is here
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
    if (!document.hidden || this.options.titleAlerts === false) return;
    this.unread += 1;
    document.title = "(" + this.unread + ") New message · " + this.baseTitle;
  };

  ChatView.prototype.markRead = function () {
    if (this.options.titleAlerts === false) return;
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
    this.stopTyping();
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
   *
   * options: url (the endpoint, /customer on this script's server by
   * default), store (a Store; the site's by default), onFinish() (the
   * session is over for this page: ended, left, or unknown to the server).
   */
  function SupportConnection(view, saved, options) {
    options = options || {};
    this.view = view;
    this.url = options.url || SOCKET_URL;
    this.store = options.store || SITE_STORE;
    this.onFinish = options.onFinish || null;
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
    RepconsoleChat.current = this;
  }

  SupportConnection.prototype.persist = function () {
    if (!this.token || this.finished || this.leaving) return;
    this.store.save({ token: this.token, session: this.session, nextId: this.nextId, extra: this.extra });
  };

  SupportConnection.prototype.open = function () {
    var self = this;
    return new Promise(function (resolve, reject) {
      var ws;
      try {
        ws = new WebSocket(self.url);
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
    } else if (msg.type === "typing") {
      this.view.typing(msg.name);
    }
  };

  /** The customer is typing: a transient, never answered (docs/protocol.md, Typing); dropped when offline. */
  SupportConnection.prototype.sendTyping = function () {
    var ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !this.token || this.finished) return;
    ws.send(JSON.stringify({ type: "typing", id: this.nextId++ }));
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

  // The wait before the attempt after `tries` failed ones: doubling from
  // retryFirstMs up to retryMaxMs, jittered by ±20% so pages do not come back together.
  function backoffMs(tries) {
    return Math.min(config.retryMaxMs, config.retryFirstMs * Math.pow(2, tries)) * (0.8 + Math.random() * 0.4);
  }

  SupportConnection.prototype.schedule = function () {
    var self = this;
    this.view.connection("reconnecting");
    var delay = backoffMs(this.attempt);
    this.attempt += 1;
    this.timer = setTimeout(function () {
      self.timer = null;
      self.reconnect();
    }, delay);
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

  // A start's retry_key (docs/protocol.md, Customer endpoint): made once per
  // start and sent with every attempt of it, so that a retry never makes a
  // second session (a server of a cluster may answer "retryable" a start its
  // leader did make).  The customer's own "try again" of the same form (the
  // same content) is the same start too: the key is kept until one succeeds.
  var lastStart = null; // { content, key }

  function startContent(message) {
    var copy = {};
    Object.keys(message).forEach(function (k) {
      if (k !== "id" && k !== "retry_key" && k !== "page_url" && k !== "page_html") copy[k] = message[k];
    });
    return JSON.stringify(copy);
  }

  function newRetryKey() {
    var bytes = new Uint8Array(16); // 128 bits: 22 base64url characters
    window.crypto.getRandomValues(bytes);
    return btoa(String.fromCharCode.apply(null, bytes)).replace(/[+/=]/g, function (c) {
      return c === "+" ? "-" : c === "/" ? "_" : "";
    });
  }

  /**
   * Start a session.  Resolves with `started`; rejects with the server's
   * error, or with network / origin_refused when no connection opened.  An
   * answer "retryable", or a connection that dropped before the answer, is
   * retried (config.startRetries times) with the same retry_key.
   */
  SupportConnection.prototype.start = function (message, extra) {
    var self = this;
    this.extra = extra || {};
    var content = startContent(message);
    if (!lastStart || lastStart.content !== content) lastStart = { content: content, key: newRetryKey() };
    message.retry_key = lastStart.key;
    var retries = 0;

    function again(dropped) {
      if (dropped && self.ws) {
        // No answer on this connection (a timeout): a fresh one, so a late answer cannot land on it.
        var ws = self.ws;
        self.ws = null;
        ws.close(1000);
      }
      var delay = backoffMs(retries);
      retries += 1;
      return new Promise(function (resolve) {
        setTimeout(resolve, delay);
      }).then(attempt);
    }

    function attempt() {
      if (self.finished) return Promise.reject(failure("disconnected")); // given up meanwhile
      var opened = self.ws && self.ws.readyState === WebSocket.OPEN ? Promise.resolve(self.ws) : self.open();
      return opened.then(function () {
        return self.request(message);
      }, function (err) {
        return reachable().then(function (up) {
          throw up ? failure("origin_refused", "The support server refused the connection from " + location.origin + ".") : err;
        });
      }).then(function (reply) {
        if (reply.type === "error" && reply.data && reply.data.retryable === true && retries < config.startRetries) return again(false);
        if (reply.type !== "started") {
          self.shutdown();
          throw reply;
        }
        lastStart = null;
        self.token = reply.token;
        self.session = reply.session;
        self.persist();
        self.view.connection("online");
        return reply;
      }, function (err) {
        if ((err.reason === "disconnected" || err.reason === "timeout") && retries < config.startRetries) return again(true);
        self.shutdown();
        throw err;
      });
    }

    return attempt();
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
      this.store.forget();
      this.view.end("You left the chat.");
    }
  };

  SupportConnection.prototype.finish = function () {
    if (this.finished) return;
    this.finished = true;
    this.store.forget();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("pagehide", this.onHide);
    window.removeEventListener("pageshow", this.onShow);
    if (this.onFinish) this.onFinish();
  };

  SupportConnection.prototype.shutdown = function () {
    this.finish();
    var ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
  };

  /**
   * A ChatView and its connection, wired together.  options: customerName,
   * sharing, titleAlerts, finishLabel, onDone (the view's) and saved, url,
   * store, onFinish (the connection's).
   */
  function chat(options) {
    var conn = null;
    var view = new ChatView({
      customerName: options.customerName,
      sharing: options.sharing,
      titleAlerts: options.titleAlerts,
      finishLabel: options.finishLabel,
      onDone: function () {
        if (conn) conn.shutdown();
        if (options.onDone) options.onDone();
      },
      say: function (text) { return conn.say(text); },
      typing: function () { conn.sendTyping(); },
      leave: function () { conn.leave(); },
    });
    conn = new SupportConnection(view, options.saved, { url: options.url, store: options.store, onFinish: options.onFinish });
    return { view: view, conn: conn };
  }

  /**
   * Whether the support server answers at all.  A WebSocket handshake the
   * server refuses (an origin it does not allow) fails exactly like one
   * that never reached it; a no-cors request tells them apart: it succeeds
   * (with an opaque answer) whenever the server answers anything.
   */
  function reachable() {
    if (!window.fetch) return Promise.resolve(false);
    return fetch(SERVER + "/healthz", { mode: "no-cors", cache: "no-store", credentials: "omit" }).then(
      function () { return true; },
      function () { return false; });
  }

  var SITE_STORE = new Store("repconsole.customer");

  var RepconsoleChat = {
    SERVER: SERVER,
    LIMITS: LIMITS,
    FRIENDLY: FRIENDLY,
    config: config,
    current: null,
    h: h,
    append: append,
    uid: uid,
    chars: chars,
    capped: capped,
    sentence: sentence,
    typingText: typingText,
    firstName: firstName,
    initials: initials,
    intake: intake,
    failure: failure,
    errorAlert: errorAlert,
    setFieldError: setFieldError,
    clearErrors: clearErrors,
    showAlert: showAlert,
    counter: counter,
    validate: validate,
    nameCheck: nameCheck,
    lengthCheck: lengthCheck,
    showRefusal: showRefusal,
    busy: busy,
    reachable: reachable,
    Store: Store,
    siteStore: SITE_STORE,
    ChatView: ChatView,
    SupportConnection: SupportConnection,
    chat: chat,
  };
  window.RepconsoleChat = RepconsoleChat;
})();
