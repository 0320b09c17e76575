"""Browser tests: the dashboard in headless Chromium against a virtual board.

Fixtures:

- ``browser``: one Chromium per session (Debian's ``/usr/bin/chromium``,
  driven by Playwright; ``make test`` installs it).
- ``board``: a virtual board playing the default scene, with an admin
  password and fast telemetry, shared by the read-only tests of a module.
- ``own_board``: the same, for one test only (Wi-Fi drops, restarts,
  settings writes); ``make_board(**settings)`` for one with other settings.
- ``open_page(board, color_scheme="light")``: a phone-sized page on the
  board's dashboard; every request it makes is kept in ``page.requests`` and
  every console error or uncaught exception in ``page.errors``.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/, for the shared conftest helpers

from browser.helpers import ADMIN_PASSWORD  # noqa: E402
from conftest import board_flash, free_port, write_settings  # noqa: E402
from tools.vboard import VirtualBoard  # noqa: E402

CHROMIUM = os.environ.get("CAMWATCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
SCENE_ENV = {"CAMWATCH_SCENE": "default"}
# telemetry every second keeps the suite fast; the rest are the defaults
BOARD_SETTINGS = {"telemetry_s": 1}


class Board:
    """A virtual board that can be killed and started again on the same
    flash folder and port (a power cycle), or lose its Wi-Fi for a while."""

    def __init__(self, fs, tmp_path, **settings):
        self.tmp = tmp_path
        self.flash = tmp_path / "flash"
        self.romfs = board_flash(self.flash)  # the modules and web/ in ROMFS
        write_settings(self.flash, admin_password=ADMIN_PASSWORD, **dict(BOARD_SETTINGS, **settings))
        self.port = free_port()
        self.vb = None

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self.port

    def start(self):
        self.vb = VirtualBoard(str(self.flash), str(self.tmp / "tty"), http_port=self.port,
                               env=SCENE_ENV, romfs=self.romfs)
        self.vb.start()
        self.vb.wait_http(timeout=30)
        return self

    def stop(self):
        if self.vb is not None:
            self.vb.stop()
            self.vb = None

    def wifi_drop(self, seconds):
        return self.vb.wifi_drop(seconds)

    def console(self):
        return self.vb.console() if self.vb else ""


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("no Chromium at %s (`make test` installs Debian's chromium)" % CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def board(vboard_fs, tmp_path_factory):
    b = Board(vboard_fs, tmp_path_factory.mktemp("board")).start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def own_board(vboard_fs, tmp_path):
    b = Board(vboard_fs, tmp_path).start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def make_board(vboard_fs, tmp_path):
    """``make_board(**settings)``: a board of this test's own with extra settings."""
    boards = []

    def make(**settings):
        b = Board(vboard_fs, tmp_path / ("b%d" % len(boards)), **settings)
        boards.append(b)
        return b.start()

    yield make
    for b in boards:
        b.stop()


@pytest.fixture
def open_page(browser):
    contexts = []

    def open_(board, color_scheme="light", path=""):
        ctx = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, color_scheme=color_scheme,
                                  service_workers="block")
        contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(15000)
        page.requests = []
        page.errors = []
        page.on("request", lambda r: page.requests.append(r))
        page.on("pageerror", lambda e: page.errors.append("uncaught: %s" % e))
        page.on("console", lambda m: m.type == "error" and page.errors.append(
            "console: %s (%s)" % (m.text, m.location.get("url", ""))))
        page.loads = []  # one per (re)load of the page
        page.on("framenavigated", lambda f: f == page.main_frame and page.loads.append(f.url))
        # "commit": the page reloads itself if a file never arrives, which
        # would interrupt a goto that waits for the load event
        page.goto(board.url + path, wait_until="commit")
        return page

    yield open_
    for ctx in contexts:
        ctx.close()
