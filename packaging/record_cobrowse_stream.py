"""Record resources/cobrowse/shop.rrweb.json: a real rrweb stream of the demo shop, for the simulator.

    make cobrowse-stream        (needs /usr/bin/chromium and /usr/bin/chromedriver, and selenium)

Serves the customer pages (repconsole/server/static/) and the vendored
recorder (resources/rrweb/) on a loopback port, opens the shop in headless
Chromium and records it with rrweb exactly as the help-link snippet does
(``RepconsoleCobrowse.recordOptions``: every typed value masked, ``rc-mask``
text masked, ``rc-block`` left out), while it drives the pages as a
customer would: moves the mouse, hovers, types (masked), picks a delivery
option, scrolls, goes on to the payment page, types there (a password, a
masked note), points at the error.  The events are saved with their
timestamps; the page's loopback origin is replaced by ``https://shop.example``.

The file is a JSON object::

    {"format": "repconsole-cobrowse-stream/1", "rrweb": "@rrweb/record 2.1.6",
     "viewport": {"width": 1280, "height": 800}, "duration_ms": ...,
     "pages": ["https://shop.example/shop.html", ...], "events": [rrweb event, ...]}

``events`` is what an rrweb replayer takes: each page starts with a Meta and
a FullSnapshot event.  Nothing here is fetched from the network.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "repconsole" / "server" / "static"
RRWEB = ROOT / "resources" / "rrweb"
OUT = ROOT / "resources" / "cobrowse" / "shop.rrweb.json"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ORIGIN = "https://shop.example"
LIMIT = 1024 * 1024
WIDTH, HEIGHT = 1280, 800
# What the script types: none of it may be in the stream.
SECRETS = ("Ben Fox", "ben.fox@example.org", "07700 900123", "BENJAMIN FOX", "correct-horse-battery", "Happy birthday, Zelda")


class _Files(http.server.SimpleHTTPRequestHandler):
    """The static pages at /, the recorder at /vendor/rrweb/; nothing else."""

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0]
        if path.startswith("/vendor/rrweb/"):
            return str(RRWEB / Path(path).name)
        return str(STATIC / (Path(path).name or "shop.html"))

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve() -> tuple[http.server.ThreadingHTTPServer, str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Files, directory=str(STATIC)))
    threading.Thread(target=httpd.serve_forever, name="shop-files", daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


_START = """
const done = arguments[arguments.length - 1];
const go = () => {
  window.__rcEvents = [];
  const s = document.createElement("script");
  s.src = "/vendor/rrweb/record.min.js";
  s.onload = () => {
    window.__rcStop = rrwebRecord.record(RepconsoleCobrowse.recordOptions((e) => window.__rcEvents.push(e)));
    done(true);
  };
  s.onerror = () => done(false);
  document.head.appendChild(s);
};
const wait = () => (window.RepconsoleCobrowse ? go() : setTimeout(wait, 20));
wait();
"""


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def record(base: str, driver: Any) -> list[dict[str, Any]]:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    events: list[dict[str, Any]] = []

    def start(page: str) -> None:
        driver.get(f"{base}/{page}")
        if not driver.execute_async_script(_START):
            raise SystemExit("record.min.js did not load")
        _pause(0.6)

    def take() -> None:
        events.extend(driver.execute_script("return window.__rcEvents.splice(0)"))

    def el(css: str) -> Any:
        return driver.find_element(By.CSS_SELECTOR, css)

    def glide(css: str, pause: float = 0.5) -> None:
        ActionChains(driver, duration=400).move_to_element(el(css)).perform()
        _pause(pause)

    def typed(css: str, text: str) -> None:
        el(css).click()
        for ch in text:
            el(css).send_keys(ch)
            time.sleep(0.06)
        _pause(0.4)

    # The delivery page: look around, fill in the contact fields, pick a speed.
    start("shop.html")
    glide("h1")
    glide(".acme-cart li:nth-child(2)")
    glide("#full-name", 0.3)
    typed("#full-name", SECRETS[0])
    typed("#email", SECRETS[1])
    typed("#phone", SECRETS[2])
    driver.execute_script("window.scrollTo({top: 420, behavior: 'smooth'})")
    _pause(1.0)
    glide("label[for=speed-next]")
    el("label[for=speed-next]").click()
    _pause(0.6)
    glide("label[for=speed-collect]", 0.6)
    glide(".acme-help-inline", 0.8)
    driver.execute_script("window.scrollTo({top: 900, behavior: 'smooth'})")
    _pause(1.0)
    glide("#to-payment", 0.6)
    take()

    # The payment page: the declined card, a password, a private gift note.
    start("shop-checkout.html")
    glide("#payment-error", 1.0)
    glide("#card-name", 0.3)
    typed("#card-name", SECRETS[3])
    glide("#card-box", 0.6)  # rc-block: a blank box in the stream
    glide("#billing-postcode", 0.3)
    el("#billing-postcode").click()
    el("#billing-postcode").send_keys("\b\b\b\b\b\b\bPO1 3AY")
    _pause(0.5)
    driver.execute_script("window.scrollTo({top: 520, behavior: 'smooth'})")
    _pause(1.0)
    typed("#account-password", SECRETS[4])
    el("#gift-note").click()
    ActionChains(driver).send_keys(SECRETS[5]).perform()
    _pause(0.6)
    glide(".acme-pay", 0.8)
    driver.execute_script("window.scrollTo({top: 0, behavior: 'smooth'})")
    _pause(1.2)
    glide(".acme-help-inline", 0.8)
    take()
    return events


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help=f"where to write it (default: {OUT.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not tool.is_file():
            print(f"{tool} is missing (apt-get install chromium chromium-driver)", file=sys.stderr)
            return 2
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    httpd, base = _serve()
    options = Options()
    options.binary_location = str(CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="rc-record-") as profile:
        for flag in (
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
            f"--window-size={WIDTH},{HEIGHT}", "--lang=en-GB", f"--user-data-dir={profile}",
        ):  # fmt: skip
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            events = record(base, driver)
        finally:
            driver.quit()
            httpd.shutdown()

    text = json.dumps(events, ensure_ascii=False, separators=(",", ":"))
    text = text.replace(base, ORIGIN)
    leaked = [s for s in SECRETS if s in text]
    if leaked or re.search(r"127\.0\.0\.1:\d+", text):
        print(f"refusing to write: the stream holds {leaked or 'the loopback address'}", file=sys.stderr)
        return 1
    events = json.loads(text)
    pages = [e["data"]["href"] for e in events if e["type"] == 4]
    doc = {
        "format": "repconsole-cobrowse-stream/1",
        "rrweb": "@rrweb/record 2.1.6",
        "viewport": {"width": WIDTH, "height": HEIGHT},
        "duration_ms": events[-1]["timestamp"] - events[0]["timestamp"],
        "pages": pages,
        "events": events,
    }
    out = json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"
    size = len(out.encode())
    if size > LIMIT:
        print(f"refusing to write: {size:,} bytes is over {LIMIT:,}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(out, encoding="utf-8")
    print(f"wrote {args.out}: {len(events)} events over {doc['duration_ms'] / 1000:.1f} s, {size:,} bytes, pages {pages}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
