"""Checks the local dashboard page the way a person sees it: in headless Chromium.

Run by `local drill --browser` (through scripts/tools browser's environment):

    check_dashboard.py --url http://127.0.0.1:PORT/ --out DIR --name SHOT
        [--range SECONDS] [--require-data] [--expect ALARM=STATE ...] [--timeout S]

It opens the page, waits for the widgets to be drawn, and checks:

- with --require-data, that every widget draws data (no widget empty, in error, or
  showing only metrics the local stack does not produce);
- with --expect, that the alarm widget shows each named alarm in that state (it waits,
  as the page refreshes every two seconds, up to --timeout).

It saves a full-page screenshot as DIR/SHOT.png, the first screen as DIR/SHOT-top.png,
and prints a JSON summary. Exit code 0
when every check holds, 1 when one does not, 2 when the browser cannot run.

Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM), started with the flags this
closed network needs: without --disable-background-networking and its friends its
connections are refused many at a time.
"""

import argparse
import json
import os
import sys
import time

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def widget_states(page):
    return page.eval_on_selector_all(
        ".widget",
        """ws => ws.map(w => ({
            index: Number(w.dataset.index),
            title: (w.querySelector('h3') || {}).textContent || '',
            state: w.dataset.state,
            text: w.textContent.slice(0, 200),
        }))""",
    )


def alarm_states(page):
    return page.eval_on_selector_all(
        "li[data-alarm]",
        "ls => Object.fromEntries(ls.map(l => [l.dataset.alarm, l.dataset.state]))",
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--range", type=int, default=0)
    parser.add_argument("--require-data", action="store_true")
    parser.add_argument("--expect", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()

    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        print(json.dumps({"error": f"playwright is not installed: {e}"}))
        return 2
    executable = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(executable):
        print(json.dumps({"error": f"no Chromium at {executable} (Debian's chromium package)"}))
        return 2

    expected = dict(pair.split("=", 1) for pair in args.expect)
    url = args.url + (f"?range={args.range}" if args.range else "")
    os.makedirs(args.out, exist_ok=True)
    shot = os.path.join(args.out, f"{args.name}.png")
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=executable, args=FLAGS, headless=True)
        except Exception as e:  # noqa: BLE001 - reported, not raised
            print(json.dumps({"error": f"Chromium did not start: {e}"}))
            return 2
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url, wait_until="load")
        deadline = time.monotonic() + args.timeout
        widgets, alarms = [], {}
        while True:
            # Every widget drawn at least once.
            page.wait_for_function(
                "() => document.body.dataset.refreshed && "
                "[...document.querySelectorAll('.widget')].every(w => w.dataset.state !== 'loading')",
                timeout=max(1000, int((deadline - time.monotonic()) * 1000)),
            )
            widgets = widget_states(page)
            alarms = alarm_states(page)
            undrawn = [w for w in widgets if w["state"] != "data"] if args.require_data else []
            wrong = {a: s for a, s in expected.items() if alarms.get(a) != s}
            if (not undrawn and not wrong) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        page.screenshot(path=shot, full_page=True)
        page.screenshot(path=os.path.join(args.out, f"{args.name}-top.png"))
        browser.close()

    undrawn = [w for w in widgets if w["state"] != "data"] if args.require_data else []
    wrong = {a: {"expected": s, "shown": alarms.get(a)} for a, s in expected.items() if alarms.get(a) != s}
    summary = {
        "screenshot": shot,
        "widgets": len(widgets),
        "drawn": sum(1 for w in widgets if w["state"] == "data"),
        "not_drawn": undrawn,
        "alarms": alarms,
        "wrong_alarms": wrong,
        "page_errors": errors,
    }
    print(json.dumps(summary))
    return 0 if not undrawn and not wrong and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
