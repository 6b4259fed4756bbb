"""Co-browsing on loopback: change to rep, late join, relay bytes, and the queue beside 200 streams.

    python -m bench.bench_cobrowse                     # 5 runs of each; 200 streams beside 500 consoles
    python -m bench.bench_cobrowse --runs 10 --sessions 400 --consoles 1000 --phase-seconds 15
    python -m bench.bench_cobrowse --only browser      # or: --only queue

Every knob also reads ``REPCONSOLE_BENCH_COBROWSE_<NAME>`` (``..._RUNS=10``).
Each figure is printed as the **median over the runs [min–max]** of a
per-run value.  Two parts, each on its own ``repconsole-server`` process:

1. **The browser part.**  A merchant's site on another origin
   (``http://localhost:PORT``; the server is ``127.0.0.1``) pastes the
   help-link snippet; headless system Chromium (``/usr/bin/chromium`` +
   ``chromedriver``, Selenium) asks for help and consents, as a customer.
   The link's rep is a raw ``/rep`` WebSocket client (typed by
   :mod:`repconsole.protocol`) that accepts and watches; a batch counts as
   applied when its last part has been read off the rep's socket.

   * **change -> rep**: the page changes a line of its own every 50 ms
     (100 changes a run), writing ``Date.now()`` into it; latency is the rep's
     ``time.time()`` at the batch holding it minus that (one machine, one
     clock): p50 and p95 per run.
   * **relay bytes/s**: the bytes of the ``cobrowse`` frames the rep
     receives while the customer types into a form (Selenium keystrokes,
     6 a second by default; every input masked, so the values go as one
     unchanging mask, but the page shows a character count that changes)
     and while the page scrolls (750 px/s, the page's own timer).
   * **late join**: a ~1 MiB page (4,096 paragraphs of text) is shared and in
     the relay's buffer; then, each run, (a) a second console connection
     sends ``cobrowse_watch`` and is timed to the last part of the page's
     full snapshot, and (b) the rep's ``cobrowse_ticket`` address (the
     console's "Open in browser") is opened in a second headless Chromium,
     and timed from navigation start to the first animation frame whose
     replica (the vendored rrweb replayer of ``/cobrowse/view``) holds the
     page's last paragraph.

2. **The queue part.**  ``--consoles`` passive consoles (a load generator
   process, :mod:`bench.bench_server`'s) in teams of 50, one working console
   per team in this process, ``--waiting`` customers waiting, and
   ``--rate`` queue commands a second (bench_server's mix: arrivals,
   accepts, transfers, ends, team chat).  A streamer process
   (:mod:`bench.cobrowse_streams`) holds ``--sessions`` browser-sharing
   sessions (started through ``/customer`` with a link, accepted and watched
   by ``--watchers`` more consoles), each recorder replaying the shipped
   rrweb recording of the demo shop (``resources/cobrowse/shop.rrweb.json``:
   two pages, 29 s, 105 KB, full snapshots included) at its recorded pace,
   looped, from a different place for each session, in batches of 100 ms as
   the snippet sends them.  The load runs in phases of
   ``--phase-seconds``, alternately with the recorders silent and
   streaming; a pair is a run.  Printed: the p99 of **queue event
   delivery** (command sent -> event read by a passive console) without and
   with the streams, their ratio per run, and each process's CPU: on a
   machine shared with other work the figures are only as quiet as it is
   (the load average is printed too).

Targets (issue 10): change -> rep p50 <= 250 ms, p95 <= 500 ms; late join
<= 1.5 s for a 1 MiB page; queue delivery p99 <= 100 ms with 200 sessions
streaming.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.bench_server import (
    LoadGen,
    Worker,
    cpu_seconds,
    drive,
    login,
    percentile,
    raise_fd_limit,
    rep_id,
    seed,
    site_toml,
    start_server,
)
from bench.cobrowse_streams import RepConn, Streamer, watchers_toml
from repconsole.protocol import CHUNK_CHARS, CommandName

__all__ = ["main"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TARGET_P50_MS, TARGET_P95_MS = 250.0, 500.0
TARGET_JOIN_S = 1.5
TARGET_P99_MS = 100.0
LINK = "link-bench"
CUSTOMER = "Bench Customer"
BIG_PARAGRAPHS, BIG_CHARS = 4096, 256  # ~1 MiB of text


def _env(name: str, default: Any) -> Any:
    raw = os.environ.get(f"REPCONSOLE_BENCH_COBROWSE_{name.upper()}")
    return type(default)(raw) if raw else default


def _load() -> str:
    """The machine's load: the figures below are only as quiet as it is."""
    one, five, _ = os.getloadavg()
    return f"(load average {one:.1f} now, {five:.1f} over 5 min, on {os.cpu_count()} cores)"


def _ms(values: Sequence[float]) -> list[float]:
    return [v * 1000 for v in values]


def summary(values: Sequence[float], unit: str = "ms", fmt: str = "{:.0f}") -> str:
    """The median of per-run values, and their range."""
    if not values:
        return "no runs"
    return f"{fmt.format(statistics.median(values))} {unit} [{fmt.format(min(values))}–{fmt.format(max(values))}]"


# ---------------------------------------------------------------- the merchant's site


def _pages(server_http: str) -> dict[str, str]:
    snippet = f'<script src="{server_http}/cobrowse.js" data-link="{LINK}" async></script>'

    def page(title: str, body: str) -> str:
        return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
                f"<style>body {{ font: 16px/1.5 sans-serif; margin: 24px; }}</style></head>"
                f"<body><main><h1>{title}</h1>{body}</main>{snippet}</body></html>")  # fmt: skip

    words = ["walnut", "desk", "organiser", "brass", "reading", "lamp", "delivery", "standard", "order", "total", "payment"]
    rng = random.Random(3)

    def text(n: int) -> str:
        out = ""
        while len(out) < n:
            out += rng.choice(words) + " "
        return out[:n]

    big = "".join(f"<p>{i:04d} {text(BIG_CHARS - 5)}</p>" for i in range(BIG_PARAGRAPHS))
    tall = "".join(f"<p>{text(200)}</p>" for _ in range(300))
    return {
        "latency.html": page(
            "Acme latency",
            """<p id="mark">mark-0-0-0</p>
<script>
  window.benchMarks = function (run, count, every) {
    var i = 0, mark = document.getElementById("mark");
    var timer = setInterval(function () {
      i += 1;
      mark.textContent = "mark-" + run + "-" + i + "-" + Date.now();
      if (i >= count) clearInterval(timer);
    }, every);
  };
</script>""",
        ),
        "typing.html": page(
            "Acme typing page",
            """<form><label for="name">Name</label> <input id="name" type="text" size="60">
<p><label for="note">Note</label></p><textarea id="note" rows="6" cols="60"></textarea></form>
<p id="count">0 characters typed</p>
<script>
  // The page reacts to typing, as many forms do (a character count): rrweb sends that change, while every
  // input's value goes as the same mask, which rrweb sends once.
  document.querySelector("form").addEventListener("input", function (e) {
    document.getElementById("count").textContent = e.target.value.length + " characters typed";
  });
</script>""",
        ),
        "scroll.html": page(
            "Acme scrolling page",
            tall
            + """<script>
  window.benchScroll = function (seconds, speed) {
    var dir = 1, end = Date.now() + seconds * 1000;
    var timer = setInterval(function () {
      if (Date.now() > end) { clearInterval(timer); return; }
      var max = document.documentElement.scrollHeight - innerHeight;
      if ((dir > 0 && scrollY >= max) || (dir < 0 && scrollY <= 0)) dir = -dir;
      scrollBy(0, dir * speed * 16 / 1000);
    }, 16);
  };
</script>""",
        ),
        "big.html": page("Acme big page", big + '<p id="bench-end">The end of the big page.</p>'),
    }


class Merchant:
    """The merchant's website on an origin of its own (another host name and port than the server)."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        merchant = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = merchant.pages.get(self.path.split("?", 1)[0].lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, name="merchant", daemon=True).start()
        self.origin = f"http://localhost:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------- Chromium


def _chromium(profile: Path, window: str = "1280,900") -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)  # never let Selenium Manager look for (or download) a browser
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--window-size={window}", "--lang=en-US", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    return driver


def _wait(driver: Any, check: Callable[[Any], Any], what: str, seconds: float = 20.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    def ok(d: Any) -> Any:
        try:
            return check(d)
        except Exception:
            return False

    return WebDriverWait(driver, seconds, poll_frequency=0.05).until(ok, f"never: {what}")


def _widget(driver: Any, css: str) -> Any:
    """An element of the snippet's widget (a closed shadow root, which WebDriver reaches into)."""
    return driver.find_element("css selector", "repconsole-help").shadow_root.find_element("css selector", css)


def _consent(driver: Any, url: str) -> None:
    """The customer asks for help on ``url``, gives a name, picks an issue and consents."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    driver.get(url)
    _wait(driver, lambda d: _widget(d, ".rc-cb-launcher").is_displayed() and _widget(d, ".rc-cb-launcher"), "the help button").click()
    _wait(driver, lambda d: _widget(d, "#rc-cb-name").is_displayed() and _widget(d, "#rc-cb-name"), "the start form").click()
    ActionChains(driver).send_keys(CUSTOMER).perform()
    Select(_widget(driver, "#rc-cb-issue")).select_by_index(1)
    _widget(driver, ".rc-widget-intro [type=submit]").click()
    _wait(driver, lambda d: _widget(d, "[data-consent=allow]").is_displayed() and _widget(d, "[data-consent=allow]"), "the consent banner").click()
    _wait(driver, lambda d: "Sharing this page" in _widget(d, ".rc-cb-bar").text, "the sharing bar")


def _type(driver: Any, text: str, per_second: float) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    chain = ActionChains(driver)
    for ch in text:
        chain.send_keys(ch).pause(1 / per_second)
    chain.perform()


# The first animation frame whose replica holds the big page's last paragraph, on the view page.
_RENDER_PROBE = """
if (window.top === window) {
  (function poll() {
    var frame = document.querySelector('#stage iframe');
    var doc = frame && frame.contentDocument;
    if (doc && doc.getElementById('bench-end')) { window.benchRendered = performance.now(); return; }
    requestAnimationFrame(poll);
  })();
}
"""


# ---------------------------------------------------------------- part 1: the browser


async def _browser_part(args: argparse.Namespace) -> None:
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        print(f"== co-browsing in Chromium: skipped, {CHROMIUM} and {CHROMEDRIVER} are needed ==")
        return
    work = Path(tempfile.mkdtemp(prefix="repconsole-bench-cobrowse-"))
    merchant = Merchant()
    config = work / "site.toml"
    config.write_text(site_toml(1, 3) + f'\n[[links]]\nid = "{LINK}"\nname = "Acme help"\ntarget = "rep:{rep_id(0, 0)}"\norigins = ["{merchant.origin}"]\n')
    server = start_server(config, work / "data")
    server_http = f"http://127.0.0.1:{server.port}"
    merchant.pages = _pages(server_http)
    drivers: list[Any] = []
    rep: RepConn | None = None
    runs = args.runs
    print(f"== co-browsing in headless Chromium: a merchant page on {merchant.origin}, the server on {server_http}, "
          f"the rep a raw /rep client ({runs} runs of each) ==")  # fmt: skip
    print(_load())
    try:
        rep = await RepConn.login(server.port, rep_id(0, 0))
        customer = await asyncio.to_thread(_chromium, work / "customer")
        drivers.append(customer)
        await asyncio.to_thread(_consent, customer, merchant.origin + "/latency.html")
        await rep.until(lambda: CUSTOMER in rep.sessions, "the session in the rep's queue")
        sid = rep.sessions[CUSTOMER]
        await rep.ok(CommandName.ACCEPT.value, session=sid)
        await rep.ok("cobrowse_watch", session=sid)

        async def page_shown(marker: str) -> None:
            await rep.until(lambda: any(marker in text for _, s, text in rep.batches if s == sid), f"{marker!r} at the rep")

        await page_shown("mark-0-0-0")

        # change -> rep
        p50s, p95s, n_marks = [], [], 0
        for run in range(1, runs + 1):
            await asyncio.to_thread(customer.execute_script, "benchMarks(arguments[0], arguments[1], 50)", run, args.changes)
            pattern = re.compile(rf"mark-{run}-(\d+)-(\d+)")
            seen: dict[int, float] = {}

            def complete(pattern: re.Pattern[str] = pattern, seen: dict[int, float] = seen) -> bool:
                for at, _, text in rep.batches[-50:]:
                    for m in pattern.finditer(text):
                        seen.setdefault(int(m[1]), at - int(m[2]) / 1000)
                return args.changes in seen

            await rep.until(complete, f"change {args.changes} of run {run}", seconds=args.changes * 0.05 + 30)
            lat = _ms(list(seen.values()))
            n_marks += len(lat)
            p50s.append(percentile(lat, 50))
            p95s.append(percentile(lat, 95))
        print(f"change -> rep (batch read at the rep's socket), {args.changes} changes a run at 20/s:")
        print(f"  p50 {summary(p50s)}   target <= {TARGET_P50_MS:.0f} ms: {'met' if statistics.median(p50s) <= TARGET_P50_MS else 'MISSED'}")
        print(f"  p95 {summary(p95s)}   target <= {TARGET_P95_MS:.0f} ms: {'met' if statistics.median(p95s) <= TARGET_P95_MS else 'MISSED'}"
              f"   ({n_marks} changes seen of {args.changes * runs})")  # fmt: skip

        # relay bytes/s: typing
        await asyncio.to_thread(customer.get, merchant.origin + "/typing.html")
        await page_shown("Acme typing page")
        text = "the parcel never came and the tracking page says delivered yesterday " * 4
        typing = []
        for run in range(runs):
            field = "#name" if run % 2 == 0 else "#note"
            await asyncio.to_thread(lambda f=field: customer.find_element("css selector", f).click())
            await asyncio.sleep(0.5)
            chars = round(args.seconds * args.typing_cps)
            t0 = time.time()
            await asyncio.to_thread(_type, customer, text[run * 7 : run * 7 + chars], args.typing_cps)
            t1 = time.time()
            await asyncio.sleep(0.5)
            typing.append(rep.bytes_between(t0, t1 + 0.5) / (t1 - t0))
        print(f"relay bytes/s to a watching rep, customer typing {args.typing_cps:g} keys/s for {args.seconds:g} s "
              f"(every input masked; the page counts characters): {summary([b / 1024 for b in typing], 'KiB/s', '{:.1f}')}")  # fmt: skip

        # relay bytes/s: scrolling
        await asyncio.to_thread(customer.get, merchant.origin + "/scroll.html")
        await page_shown("Acme scrolling page")
        scrolling = []
        for _ in range(runs):
            await asyncio.sleep(0.5)
            t0 = time.time()
            await asyncio.to_thread(customer.execute_script, "benchScroll(arguments[0], arguments[1])", args.seconds, args.scroll_speed)
            await asyncio.sleep(args.seconds)
            t1 = time.time()
            await asyncio.sleep(0.5)
            scrolling.append(rep.bytes_between(t0, t1 + 0.5) / (t1 - t0))
        print(f"relay bytes/s to a watching rep, customer scrolling {args.scroll_speed:g} px/s for {args.seconds:g} s: "
              f"{summary([b / 1024 for b in scrolling], 'KiB/s', '{:.1f}')}")  # fmt: skip

        # late join, 1 MiB
        await asyncio.to_thread(customer.get, merchant.origin + "/big.html")
        await page_shown("The end of the big page.")
        snapshot = next(len(text.encode()) for _, s, text in reversed(rep.batches) if s == sid and "The end of the big page." in text)
        page_bytes = len(merchant.pages["big.html"].encode())
        viewer = await asyncio.to_thread(_chromium, work / "viewer")
        drivers.append(viewer)
        await asyncio.to_thread(viewer.execute_cdp_cmd, "Page.addScriptToEvaluateOnNewDocument", {"source": _RENDER_PROBE})
        sockets, renders, ticket_rtts = [], [], []
        for _ in range(runs):
            late = await RepConn.login(server.port, rep_id(0, 0))
            t0 = time.time()
            await late.ok("cobrowse_watch", session=sid)
            await late.until(lambda late=late: any("The end of the big page." in text for _, _, text in late.batches), "the big page at a late joiner")
            sockets.append(next(at for at, _, text in late.batches if "The end of the big page." in text) - t0)
            await late.close()

            t0 = time.time()
            ticket = await rep.ok("cobrowse_ticket", session=sid)
            ticket_rtts.append(time.time() - t0)
            await asyncio.to_thread(viewer.get, ticket["url"])
            rendered = await asyncio.to_thread(
                _wait, viewer, lambda d: d.execute_script("return window.benchRendered || null"), "the replica of the big page", 60
            )
            renders.append(float(rendered) / 1000)
            await asyncio.to_thread(viewer.get, "about:blank")
        print(f"late join to a {page_bytes / 1024:,.0f} KiB page (its full snapshot: {snapshot / 1024:,.0f} KiB, "
              f"{-(-snapshot // CHUNK_CHARS)} parts), from the relay's buffer:")  # fmt: skip
        print(f"  cobrowse_watch -> the whole snapshot read at a console's socket: {summary(_ms(sockets))}")
        print(f"  view page opened (Open in browser's ticket address) -> first frame with the page rendered: {summary(renders, 's', '{:.2f}')}"
              f"   target <= {TARGET_JOIN_S:g} s: {'met' if statistics.median(renders) <= TARGET_JOIN_S else 'MISSED'}"
              f"   (plus the ticket's round trip: {summary(_ms(ticket_rtts), 'ms', '{:.1f}')})")  # fmt: skip
        if server.problems():
            print("server reported problems:\n  " + "\n  ".join(server.problems()[:10]))
    finally:
        for driver in drivers:
            await asyncio.to_thread(driver.quit)
        if rep is not None:
            await rep.close()
        server.stop()
        merchant.close()
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- part 2: the queue beside co-browsing


async def _queue_part(args: argparse.Namespace) -> None:
    teams, per_team = max(1, args.consoles // 50), 51  # in each team, 50 passive consoles and one working
    consoles = teams * (per_team - 1)
    fd_limit = raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="repconsole-bench-cobrowse-queue-"))
    config = work / "site.toml"
    config.write_text(site_toml(teams, per_team) + watchers_toml(args.watchers))
    print(f"== queue event delivery to {consoles:,} consoles ({teams} teams), {args.waiting:,} waiting, {args.rate:.0f} commands/s, "
          f"with {args.sessions} co-browse sessions streaming (watched by {args.watchers} consoles) and without; "
          f"{args.runs} runs of {args.phase_seconds:g} s each way (fd limit {fd_limit}) ==")  # fmt: skip
    print(_load())
    server = start_server(config, work / "data")
    gen: LoadGen | None = None
    streamer: Streamer | None = None
    try:
        took = await seed(server.port, args.waiting, teams)
        print(f"seeded {args.waiting:,} waiting customers in {took:.1f} s")
        passive = [rep_id(t, i) for t in range(teams) for i in range(1, per_team)]
        gen = LoadGen(server.port, passive, work / "loadgen.json")
        gen.wait_ready()
        workers = [Worker(t, (await login(server.port, rep_id(t, 0)))[0]) for t in range(teams)]
        streamer = Streamer(server.port, args.sessions, args.watchers)
        n, seconds = streamer.ready()
        print(f"{consoles:,} passive consoles logged in; {n} sessions sharing their pages, each watched, set up in {seconds:.1f} s")

        rng = random.Random(1)
        phases: list[tuple[bool, float, float]] = []  # (streaming, from, to): by send time
        accept_sent: dict[str, float] = {}
        # CPU seconds of each process (server, load generator, streamer, this driver) and wall seconds, by phase kind.
        pids = {"server": server.pid, "consoles": gen.proc.pid, "streamer": streamer.proc.pid}
        cpu: dict[bool, dict[str, float]] = {False: dict.fromkeys([*pids, "driver", "wall"], 0.0), True: dict.fromkeys([*pids, "driver", "wall"], 0.0)}
        behind: dict[bool, float] = {False: 0.0, True: 0.0}
        refused: dict[str, int] = {}
        for _ in range(args.runs):
            for streaming in (False, True):
                streamer.tell("GO" if streaming else "PAUSE")
                start = time.time()
                c0 = {name: cpu_seconds(pid) for name, pid in pids.items()} | {"driver": time.process_time(), "wall": time.perf_counter()}
                result = await drive(server.port, workers, teams, args.rate, args.phase_seconds, rng)
                c1 = {name: cpu_seconds(pid) for name, pid in pids.items()} | {"driver": time.process_time(), "wall": time.perf_counter()}
                for name in c0:
                    cpu[streaming][name] += c1[name] - c0[name]
                behind[streaming] = max(behind[streaming], result["late"])
                phases.append((streaming, start, start + result["seconds"]))
                accept_sent.update(result["accept_sent"])
                for reason, n in result["refused"].items():
                    refused[reason] = refused.get(reason, 0) + n
        stats = streamer.tell("STOP")
        await asyncio.sleep(0.5)
        out = gen.finish()

        timed: list[tuple[float, float]] = [(sent, lat) for values in out["samples"].values() for sent, lat in values]
        for sid, t in out["gone"]:
            sent = accept_sent.get(sid)
            if sent is not None:
                timed.append((sent, t - sent))
        per_phase: list[list[float]] = [[] for _ in phases]
        for sent, lat in timed:
            for k, (_, start, end) in enumerate(phases):
                if start <= sent < end:
                    per_phase[k].append(lat * 1000)
                    break
        quiet = [percentile(per_phase[k], 99) for k, p in enumerate(phases) if not p[0]]
        loud = [percentile(per_phase[k], 99) for k, p in enumerate(phases) if p[0]]
        ratios = [b / a for a, b in zip(quiet, loud, strict=True)]
        counts = [len(v) for v in per_phase]
        print(f"queue event delivery p99 (command sent -> event read by a console; {min(counts):,}–{max(counts):,} deliveries a phase):")
        print(f"  without co-browsing: {summary(quiet)}")
        print(f"  with {stats['sessions']} sessions streaming: {summary(loud)}   target <= {TARGET_P99_MS:.0f} ms: "
              f"{'met' if statistics.median(loud) <= TARGET_P99_MS else 'MISSED'}")  # fmt: skip
        print(f"  ratio with / without, per run: {summary(ratios, 'x', '{:.2f}')}")
        print(f"  ({args.runs * 2 * round(args.rate * args.phase_seconds):,} commands; refused, as the mix goes: {refused or 'none'})")
        streaming_s = stats["streaming_seconds"] or 1.0
        print(f"co-browse traffic while streaming: {stats['relayed_streaming'] / streaming_s / 1024:,.0f} KiB/s relayed to the watchers "
              f"(the recording averages {stats['per_session_rate'] / 1024:.1f} KiB/s of record frames a session); snapshot asks {stats['asks']}, "
              f"recorder errors {stats['errors'] or 'none'}, streams failed {stats['failed']}")  # fmt: skip
        for streaming in (False, True):
            c = cpu[streaming]
            print(f"CPU {'with' if streaming else 'without'} the streams (% of one core; 2 cores in all): "
                  + ", ".join(f"{name} {c[name] / c['wall'] * 100:.0f}%" for name in (*pids, "driver"))
                  + f"; the driver at most {behind[streaming] * 1000:.0f} ms behind its schedule; {c['wall']:.0f} s of phases")  # fmt: skip
        if server.problems():
            print("server reported problems:\n  " + "\n  ".join(server.problems()[:10]))
    finally:
        if streamer is not None:
            streamer.kill()
        if gen is not None:
            gen.kill()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.bench_cobrowse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=_env("runs", 5), help="runs of each measurement (at least 5 for the medians)")
    parser.add_argument("--changes", type=int, default=_env("changes", 100), help="page changes a latency run (20 a second)")
    parser.add_argument("--seconds", type=float, default=_env("seconds", 5.0), help="length of a typing or scrolling run")
    parser.add_argument("--typing-cps", type=float, default=_env("typing_cps", 6.0), help="keys a second")
    parser.add_argument("--scroll-speed", type=float, default=_env("scroll_speed", 750.0), help="px a second")
    parser.add_argument("--consoles", type=int, default=_env("consoles", 500), help="passive consoles (teams of 50)")
    parser.add_argument("--waiting", type=int, default=_env("waiting", 1000))
    parser.add_argument("--rate", type=float, default=_env("rate", 100.0), help="queue commands a second")
    parser.add_argument("--sessions", type=int, default=_env("sessions", 200), help="co-browse sessions streaming")
    parser.add_argument("--watchers", type=int, default=_env("watchers", 10), help="consoles watching them")
    parser.add_argument("--phase-seconds", type=float, default=_env("phase_seconds", 8.0))
    parser.add_argument("--only", choices=["browser", "queue"], default=_env("only", "") or None)
    args = parser.parse_args(argv)
    if args.only in (None, "browser"):
        asyncio.run(_browser_part(args))
    if args.only in (None, "queue"):
        if args.only is None:
            print()
        asyncio.run(_queue_part(args))


if __name__ == "__main__":
    main()
