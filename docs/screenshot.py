"""Screenshot of the demo dashboard for the README: `python docs/screenshot.py [--out docs/dashboard.png]`."""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(base: str, server: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"pactwatch serve exited with {server.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit("pactwatch serve did not answer in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--page", default="/agreements/istanbul-2025", help="path to capture, with its query")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1100)
    parser.add_argument("--full-page", action="store_true", help="capture the whole page, not the first screen")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or sys.exit("chromium not found: apt-get install chromium")
    pactwatch = shutil.which("pactwatch", path=str(Path(sys.executable).parent)) or "pactwatch"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PACTWATCH_DATABASE_URL": f"sqlite:///{tmp}/demo.db", "PACTWATCH_PUBLIC_READ": "true"}
        server = subprocess.Popen([pactwatch, "serve", "--demo", "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_serving(base, server)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": args.width, "height": args.height},
                                        device_scale_factor=1, locale="en-GB")
                page.goto(base + args.page, wait_until="load")
                page.screenshot(path=str(args.out), full_page=args.full_page)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
