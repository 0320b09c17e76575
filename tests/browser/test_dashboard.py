"""The dashboard in headless Chromium, against a virtual board playing the
default scene (an object crossing the frame every few seconds)."""

import json
import os
import re
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from playwright.sync_api import expect

from browser.helpers import ADMIN_PASSWORD, log_rows, parse_id, wait_state

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHOTS = os.path.join(ROOT, "build", "screenshots")


def board_json(board, path):
    with urllib.request.urlopen(board.url + path, timeout=5) as r:
        return json.load(r)


def unexpected(errors):
    """Console errors other than the refused requests of a board that is away."""
    return [e for e in errors if "ERR_CONNECTION_REFUSED" not in e and "ERR_EMPTY_RESPONSE" not in e]


def telemetry_count(page):
    return page.locator("#log-list li.k-telemetry").count()


def wait_events(page, n, kind="telemetry", timeout=15000):
    try:
        page.wait_for_function(
            "([k, n]) => document.querySelectorAll('#log-list li.k-' + k).length >= n",
            arg=[kind, n], timeout=timeout)
    except Exception:
        raise AssertionError("fewer than %d %s events on the page; connection %r; log (oldest "
                             "first): %s" % (n, kind, page.get_attribute("#conn", "data-state"),
                                             log_rows(page)[-12:]))


def test_loads_from_the_board_only(board, open_page):
    page = open_page(board)
    wait_state(page, "live")
    wait_events(page, 1)
    # every file arrived the first time: the page did not have to reload itself
    assert len(page.loads) == 1, page.loads
    # the picture and the lazily loaded settings module are requests too
    page.wait_for_function("document.getElementById('snap').complete")
    page.click("#settings summary")
    expect(page.locator("#set-sensitivity")).to_be_visible()

    origins = {urlsplit(r.url).netloc for r in page.requests if not r.url.startswith("data:")}
    assert origins == {"127.0.0.1:%d" % board.port}, origins
    paths = {urlsplit(r.url).path for r in page.requests}
    for needed in ("/", "/style.css", "/app.js", "/events", "/api/status", "/snapshot"):
        assert needed in paths, (needed, sorted(paths))
    # every static file the page asked for was there
    for r in page.requests:
        resp = r.response()
        if resp is not None and r.resource_type not in ("eventsource",):
            assert resp.status in (200, 304), (r.url, resp.status)
    # what the files weighed on the wire (the picture and API answers aside)
    static = [r for r in page.requests
              if urlsplit(r.url).path not in ("/events", "/snapshot") and "/api/" not in r.url
              and "/episodes/" not in r.url]  # a motion thumbnail, when motion came first
    wire = sum(r.sizes()["responseBodySize"] for r in static if r.response())
    print("first load on the wire: %d bytes in %d files" % (wire, len(static)))
    assert 0 < wire <= 20 * 1024, wire
    assert page.errors == []


def test_motion_box_moves(board, open_page):
    page = open_page(board)
    wait_state(page, "live")
    badge = page.locator("#motion-state")
    expect(badge).to_have_text("Motion now", timeout=20000)
    bbox = page.locator("#bbox")
    expect(bbox).to_have_attribute("data-bbox", re.compile(r"^\d+,\d+,\d+,\d+$"))
    first = bbox.get_attribute("data-bbox")
    # the box follows the object: its numbers change while it crosses
    page.wait_for_function(
        "b => document.getElementById('bbox').dataset.bbox !== b", arg=first, timeout=10000)
    second = bbox.get_attribute("data-bbox")
    assert second != first
    # drawn over the picture, in the frame's coordinates
    view = page.get_attribute("#overlay", "viewBox").split()
    assert int(view[2]) > 0 and int(view[3]) > 0
    x, y, w, h = map(int, second.split(","))
    assert w > 0 and h > 0 and x + w <= int(view[2]) and y + h <= int(view[3])
    expect(page.locator("#episodes li.now")).to_have_count(1)
    # the episode ends and lands in the timeline with a duration and a peak
    expect(badge).to_have_text("No motion", timeout=20000)
    done = page.locator("#episodes li:not(.now):not(.empty)").first
    expect(done).to_contain_text(re.compile(r"\d+\.\d s"))
    expect(done).to_contain_text("peak")
    # the picture was fetched again for the motion, cache-busted
    snaps = [r.url for r in page.requests if urlsplit(r.url).path == "/snapshot"]
    assert len(set(snaps)) >= 2, snaps
    assert page.evaluate("document.getElementById('snap').naturalWidth") > 0
    assert page.errors == []


def test_telemetry_updates(board, open_page):
    page = open_page(board)
    wait_state(page, "live")
    heap = page.locator('.tile[data-key="heap_free"] .v')
    expect(heap).to_have_text(re.compile(r"^\d+\.\d KB$"))
    wait_events(page, 3)
    n = telemetry_count(page)
    wait_events(page, n + 2)
    # sparklines have points, the board panel is filled in
    points = page.get_attribute('.tile[data-key="heap_free"] polyline', "points")
    assert len(points.split()) >= 3
    expect(page.locator("#s-uptime")).to_have_text(re.compile(r"\d+ (s|min)"))
    expect(page.locator("#s-streams")).to_have_text(re.compile(r"^\d+ of \d+ in use$"))
    status = board_json(board, "api/status")
    expect(page.locator("#s-version")).to_have_text(str(status["version"]))
    expect(page.locator("#age")).to_have_text(re.compile(r"^\d+ s ago$"))
    assert page.errors == []


def test_wifi_drop_resumes_without_a_gap(own_board, open_page):
    page = open_page(own_board)
    wait_state(page, "live")
    wait_events(page, 2)
    own_board.wifi_drop(3)
    wait_state(page, ("reconnecting", "offline"), timeout=10000)
    expect(page.locator("#conn-text")).to_have_text(re.compile(r"Reconnecting|Offline"))
    wait_state(page, "live", timeout=30000)
    n = telemetry_count(page)
    wait_events(page, n + 2)

    rows = log_rows(page)
    assert not [r for r in rows if r[2] == "mark"], rows
    ids = [parse_id(r[1]) for r in rows if r[1]]
    assert len({tag for tag, _ in ids}) == 1, ids
    numbers = [n for _, n in ids]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
    assert unexpected(page.errors) == []


def test_restart_is_marked_in_the_log(own_board, open_page):
    page = open_page(own_board)
    wait_state(page, "live")
    wait_events(page, 2)
    before = {parse_id(r[1])[0] for r in log_rows(page) if r[1]}
    own_board.stop()
    wait_state(page, ("reconnecting", "offline"), timeout=10000)
    own_board.start()
    wait_state(page, "live", timeout=30000)
    reboot = page.locator("#log-list li.k-mark[data-name=reboot]")
    expect(reboot).to_have_count(1, timeout=15000)
    n = telemetry_count(page)
    wait_events(page, n + 1)
    tags = [parse_id(r[1])[0] for r in log_rows(page) if r[1]]
    assert set(tags) - before, "the ids after the restart carry a new boot tag"
    # the mark sits between the two boots' events
    rows = log_rows(page)
    at = [i for i, r in enumerate(rows) if r[0] == "reboot"][0]
    assert all(parse_id(r[1])[0] in before for r in rows[:at] if r[1])
    assert all(parse_id(r[1])[0] not in before for r in rows[at:] if r[1])
    assert unexpected(page.errors) == []


def test_settings_round_trip(own_board, open_page):
    page = open_page(own_board)
    wait_state(page, "live")
    page.click("#settings summary")
    field = page.locator("#set-sensitivity")
    expect(field).to_be_visible()
    # rendered from what the board returns, one field per key, typed by value
    start = board_json(own_board, "api/settings")
    controls = board_json(own_board, "api/live")["controls"]  # the camera's: sliders, lists
    for key, value in start.items():
        if key == "admin_password_set":
            continue  # a fact about the board, not a setting
        box = page.locator("#set-" + key)
        spec = controls.get(key, {})
        if spec.get("kind") == "choice":
            expect(box).to_have_js_property("tagName", "SELECT")
            expect(box).to_have_value(value)
        elif isinstance(value, bool):
            expect(box).to_have_attribute("type", "checkbox")
        elif isinstance(value, (int, float)):
            expect(box).to_have_attribute("type", "range" if spec.get("kind") == "int" else "number")
            expect(box).to_have_value(str(value))
        elif isinstance(value, str):
            expect(box).to_have_attribute("type", "text")
        else:
            expect(box).to_have_js_property("tagName", "TEXTAREA")
            assert json.loads(box.input_value()) == value
    new = 17 if start["sensitivity"] != 17 else 18

    # a wrong password is refused and nothing changes
    field.fill(str(new))
    page.fill("#admin-pw", "not the password")
    page.click("#settings-form button[type=submit]")
    expect(page.locator("#admin-pw-err")).not_to_be_empty()
    expect(page.locator("#admin-pw")).to_have_attribute("aria-invalid", "true")
    assert board_json(own_board, "api/settings")["sensitivity"] == start["sensitivity"]

    # a value out of range: the board names the field
    field.fill("500")
    page.fill("#admin-pw", ADMIN_PASSWORD)
    page.click("#settings-form button[type=submit]")
    expect(page.locator("#set-sensitivity-err")).not_to_be_empty()
    expect(field).to_have_attribute("aria-invalid", "true")
    assert board_json(own_board, "api/settings")["sensitivity"] == start["sensitivity"]

    # the right password and a good value: saved on the board
    field.fill(str(new))
    page.fill("#admin-pw", ADMIN_PASSWORD)
    page.click("#settings-form button[type=submit]")
    expect(page.locator("#settings-msg")).to_contain_text("Saved")
    expect(page.locator("#settings-msg")).to_contain_text("sensitivity")
    assert board_json(own_board, "api/settings")["sensitivity"] == new
    # the board announces it on the stream
    expect(page.locator("#log-list li.k-status", has_text="settings")).not_to_have_count(0)
    # and a fresh page shows the saved value
    page.reload()
    page.click("#settings summary")
    expect(page.locator("#set-sensitivity")).to_have_value(str(new))
    errors = [e for e in page.errors if "401" not in e and "400" not in e]
    assert errors == []


def test_phone_screenshots(board, open_page):
    os.makedirs(SHOTS, exist_ok=True)
    for scheme in ("light", "dark"):
        page = open_page(board, color_scheme=scheme)
        wait_state(page, "live")
        wait_events(page, 3)
        # catch the object in the picture: motion on and a picture in
        try:
            page.wait_for_function(
                """() => {
                  const s = document.getElementById('snap');
                  return document.getElementById('motion-state').dataset.on === '1'
                    && s.complete && s.naturalWidth > 0 && s.src.includes('?t=');
                }""", timeout=30000)
        except Exception:
            raise AssertionError("no motion with a picture: badge %r, picture %r, requests %s" % (
                page.inner_text("#motion-state"),
                page.evaluate("[document.getElementById('snap').src, "
                              "document.getElementById('snap').naturalWidth]"),
                [(r.url, r.response() and r.response().status) for r in page.requests
                 if "snapshot" in r.url][-5:]))
        # nothing wider than the phone: no sideways scrolling
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=os.path.join(SHOTS, "dashboard-%s.png" % scheme))
        page.screenshot(path=os.path.join(SHOTS, "dashboard-%s-full.png" % scheme), full_page=True)
        bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        dark = sum(int(c) for c in re.findall(r"\d+", bg)[:3]) < 200
        assert dark == (scheme == "dark"), bg
        assert page.errors == []
        page.context.close()  # one stream at a time on the board


def test_busy_board_keeps_trying(make_board, open_page):
    board = make_board(streams_max=1)
    first = open_page(board)
    wait_state(first, "live")
    second = open_page(board)
    wait_state(second, "busy", timeout=15000)
    expect(second.locator("#conn-text")).to_contain_text("Device busy")
    expect(second.locator("#log-list li[data-name=busy]")).to_have_count(1)
    # the slot frees up: the waiting page gets in by itself
    first.close()
    wait_state(second, "live", timeout=20000)
    wait_events(second, 1)
    assert unexpected(second.errors) == []


def test_a_drop_longer_than_the_ring_is_marked_as_a_gap(make_board, open_page):
    board = make_board(ring_size=8)  # the smallest ring: a few seconds away loses events
    page = open_page(board)
    wait_state(page, "live")
    wait_events(page, 2)
    board.wifi_drop(6)
    wait_state(page, ("reconnecting", "offline"), timeout=10000)
    wait_state(page, "live", timeout=30000)
    gap = page.locator("#log-list li.k-mark[data-name=gap]")
    expect(gap).to_have_count(1, timeout=10000)
    expect(gap).to_contain_text(re.compile(r"\d+ events? missed"))  # "1 event missed" too
    # the page fetched the board's status again after the gap
    statuses = [r for r in page.requests if urlsplit(r.url).path == "/api/status"]
    assert len(statuses) >= 2
    # ids after the gap continue from where the board resumed, one by one
    rows = log_rows(page)
    at = [i for i, r in enumerate(rows) if r[0] == "gap"][0]
    after = [parse_id(r[1])[1] for r in rows[at:] if r[1]]
    assert after == list(range(after[0], after[0] + len(after))), after
    assert unexpected(page.errors) == []


def test_log_filters_pause_and_bound(board, open_page):
    page = open_page(board)
    wait_state(page, "live")
    wait_events(page, 2)
    telemetry = page.locator("#log-list li.k-telemetry")
    # filter: unticking a type hides its rows, ticking shows them again
    page.get_by_role("checkbox", name="telemetry").uncheck()
    expect(telemetry.first).to_be_hidden()
    page.get_by_role("checkbox", name="telemetry").check()
    expect(telemetry.first).to_be_visible()
    # pause: the list stands still, events are kept and shown on resume
    page.click("#pause")
    expect(page.locator("#pause")).to_have_attribute("aria-pressed", "true")
    frozen = telemetry.count()
    expect(page.locator("#paused-note")).to_contain_text(re.compile(r"\d+ new event"), timeout=10000)
    assert telemetry.count() == frozen
    page.click("#pause")
    wait_events(page, frozen + 1)
    # the log keeps the last 200 rows, however many events come
    page.evaluate("() => { for (let i = 0; i < 450; i++) window.camwatch.log.add('other', 'x-' + i, 'test', 'filler'); }")
    assert page.locator("#log-list li").count() == 200
    assert page.errors == []
