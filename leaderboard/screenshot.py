"""Serve the leaderboard and look at it with headless Chromium: a screenshot and the rendered DOM.

    python -m leaderboard.screenshot --results results --out docs/leaderboard.png

The server is started the way users start it (``zoobench leaderboard --results DIR --port P``) and
stopped afterwards. Chromium's flags are those of shared/STACK.md §7: with a virtual-time budget under
30 s it shoots the page before Streamlit has drawn it. ``tests/leaderboard/test_browser.py`` (``make
test-browser``) uses this module; rerun the command above to refresh the README's picture.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["chromium", "serve", "capture"]

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
READY = ("zoobench leaderboard", 'data-testid="stDataFrame"')  # in the DOM once the overview is drawn
VIRTUAL_TIME_MS = 60_000  # >= 30 s (STACK.md §7); the full page needs about 60 s on a busy 2-core machine


def chromium() -> str | None:
    """The path of a Chromium-family browser, or None."""
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(results: str | Path, port: int | None = None, timeout: float = 90.0) -> Iterator[str]:
    """Run ``zoobench leaderboard`` on ``results`` until the block ends; yields the page's URL.

    Raises:
        RuntimeError: the server exited or did not answer its health check within ``timeout`` seconds.
    """
    port = port or _free_port()
    cmd = [sys.executable, "-m", "harness.cli", "leaderboard", "--results", str(results), "--port", str(port)]
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"the leaderboard server exited: {log.read().decode(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(url + "_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the leaderboard server did not answer on {url} within {timeout:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()  # exec'd into streamlit: this pid is the server itself
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def capture(
    url: str,
    out: str | Path,
    *,
    expect: Sequence[str] = READY,
    width: int = 1400,
    height: int = 1000,
    attempts: int = 4,
) -> str:
    """Load ``url`` in headless Chromium, write a PNG screenshot to ``out`` and return the rendered DOM.

    A page still drawing (the first visit of a fresh server imports and reads everything) is shot again,
    up to ``attempts`` times, until its DOM holds every string of ``expect``.

    Returns:
        The rendered DOM of the page in the screenshot.

    Raises:
        RuntimeError: no Chromium, Chromium failed, or the page never showed ``expect``.
    """
    browser = chromium()
    if browser is None:
        raise RuntimeError(f"no Chromium found ({', '.join(BROWSERS)}); `make test-browser` installs it")
    dom = ""
    for _ in range(attempts):
        with tempfile.TemporaryDirectory(prefix="zoobench-chromium-") as profile:
            flags = [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--virtual-time-budget={VIRTUAL_TIME_MS}",
                f"--screenshot={Path(out).resolve()}",
                "--dump-dom",
            ]
            done = subprocess.run([browser, *flags, url], capture_output=True, text=True, timeout=180)
        if done.returncode != 0 or not Path(out).exists():
            raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
        dom = done.stdout
        if all(text in dom for text in expect):
            return dom
    missing = [text for text in expect if text not in dom]
    raise RuntimeError(f"the page never showed {missing} in {attempts} attempts")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leaderboard.screenshot", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="results folder (default: results)")
    parser.add_argument("--out", default="docs/leaderboard.png", help="PNG to write (default: docs/leaderboard.png)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args(argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with serve(args.results) as url:
        capture(url, args.out, width=args.width, height=args.height)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
