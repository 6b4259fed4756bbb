/*
 * The public support site of a repconsole support server (index.html,
 * served at / and /support): the issue form, a session key, or pick a
 * representative, then the chat.
 *
 * The chat itself (the panel, the socket, resuming with the session's token
 * after a reload or a dropped connection) is support-chat.js, which the page
 * loads first; the help-link snippet for other sites is cobrowse.js.
 */
(function () {
  "use strict";

  var C = window.RepconsoleChat;
  if (!C) return; // support-chat.js did not load: nothing to drive the forms with

  var SITE_URL = C.SERVER + "/api/site";
  var LIMITS = C.LIMITS;
  var KEY_MIN = 5; // session keys are 5 to 32 letters and digits (site.key_length; 7 by default)
  var KEY_MAX = 32;
  var config = C.config;
  var h = C.h;
  var initials = C.initials;
  var intake = C.intake;
  var setFieldError = C.setFieldError;
  var clearErrors = C.clearErrors;
  var counter = C.counter;
  var validate = C.validate;
  var nameCheck = C.nameCheck;
  var lengthCheck = C.lengthCheck;
  var showRefusal = C.showRefusal;
  var busy = C.busy;
  var chat = C.chat;
  var Store = C.siteStore;

  function byId(id) {
    return document.getElementById(id);
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


  // ----------------------------------------------------------------- go

  // For tests and for a deployment's own tweaks: the timings, and the chat
  // connection of this page (RepconsoleSupport.current).
  var RepconsoleSupport = { config: config };
  Object.defineProperty(RepconsoleSupport, "current", { get: function () { return C.current; } });
  window.RepconsoleSupport = RepconsoleSupport;

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", initSite);
  else initSite();
})();
