"""Setting a board up from a phone, in headless Chromium at 390x844 against
the virtual board: from a captive-portal probe URL through the setup page to
"joined", and claiming a board that has no admin password from the dashboard.
"""

import json
import urllib.request
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from browser.helpers import wait_state
from conftest import board_flash, free_port
from tools.vboard import VirtualBoard

ADMIN = "phone-set pw"


class FreshBoard:
    """A board straight from the box (`make run FRESH=1`), or one on the LAN
    that was never given an admin password (``fresh=False``)."""

    def __init__(self, tmp_path, fresh=True):
        flash = tmp_path / "flash"
        rom = board_flash(flash)
        env = {"CAMWATCH_DNS_PORT": str(free_port()), "CAMWATCH_SCENE": "default"}
        if fresh:
            env["CAMWATCH_FRESH"] = "1"
        self.port = free_port()
        self.vb = VirtualBoard(str(flash), str(tmp_path / "tty"), http_port=self.port,
                               romfs=rom, env=env)
        self.vb.start()
        self.vb.wait_http(timeout=30)

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self.port

    def json(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.load(r)


@pytest.fixture
def fresh_board(vboard_fs, tmp_path):
    b = FreshBoard(tmp_path)
    yield b
    b.vb.stop()


@pytest.fixture
def unclaimed_board(vboard_fs, tmp_path):
    b = FreshBoard(tmp_path, fresh=False)
    yield b
    b.vb.stop()


def test_from_a_probe_url_through_the_setup_page_to_joined(fresh_board, open_page):
    # the URL Android opens on joining an access point; the board redirects it
    page = open_page(fresh_board, path="generate_204")
    page.wait_for_url("**/setup.html")
    networks = page.locator("#networks button")
    expect(networks.first).to_contain_text("camwatch-lab")
    expect(page.locator("#networks")).to_contain_text("Upstairs")
    page.locator("#networks button", has_text="Upstairs").click()
    expect(page.locator("#ssid")).to_have_value("Upstairs")
    expect(page.locator("#wifi-pw")).to_be_focused()  # a secured network asks for its password

    # a short admin password: refused by the board, the field says why
    page.fill("#wifi-pw", "not the password")
    page.fill("#admin-pw", "short")
    page.click("#setup button[type=submit]")
    expect(page.locator("#admin_password-err")).to_contain_text("8 to 64")

    # a wrong Wi-Fi password: saved, tried, and the page says why it failed
    page.fill("#admin-pw", ADMIN)
    page.click("#setup button[type=submit]")
    expect(page.locator("#setup-msg")).to_contain_text("wrong password", timeout=30000)
    expect(page.locator("#setup-msg")).to_have_attribute("data-tone", "bad")
    assert fresh_board.json("api/wifi")["state"] == "ap"

    # the right one: the board joins and the page says where to find it
    page.fill("#wifi-pw", "correct horse")
    page.click("#setup button[type=submit]")
    msg = page.locator("#setup-msg")
    expect(msg).to_contain_text("Joined Upstairs", timeout=30000)
    expect(msg).to_contain_text("http://camwatch.local/")
    w = fresh_board.json("api/wifi")
    assert (w["state"], w["ssid"]) == ("connected", "Upstairs")
    assert fresh_board.json("api/settings")["admin_password_set"] is True
    # nothing left the board's own address
    for r in page.requests:
        assert urlsplit(r.url).hostname == "127.0.0.1", r.url
    # Chromium logs the refused short password (a 400) as a console error
    assert [e for e in page.errors if "status of 400" not in e] == []


def test_a_board_without_an_admin_password_is_claimed_from_the_dashboard(unclaimed_board,
                                                                         open_page):
    page = open_page(unclaimed_board)
    wait_state(page, "live")
    page.click("#settings summary")
    page.fill("#claim-pw", "short")
    page.click("#claim-btn")
    expect(page.locator("#claim-err")).to_contain_text("8 characters")
    page.fill("#claim-pw", ADMIN)
    page.click("#claim-btn")
    expect(page.locator("#settings-msg")).to_contain_text("Admin password set")
    expect(page.locator("#claim-pw")).to_have_count(0)
    assert unclaimed_board.json("api/settings")["admin_password_set"] is True
    # the password just set now saves settings (it stays in the form)
    page.fill("#set-threshold", "23")
    page.click("#settings-form button[type=submit]")
    expect(page.locator("#settings-msg")).to_contain_text("Saved")
    assert unclaimed_board.json("api/settings")["threshold"] == 23
    assert page.errors == []
