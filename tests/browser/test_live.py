"""The live view, snapshots and camera controls in headless Chromium against
a virtual board: the stream plays (its frames change), a second viewer is
told someone else is watching, a control moved in settings changes the
picture."""

import re
from urllib.parse import urlsplit

from playwright.sync_api import expect

from browser.helpers import ADMIN_PASSWORD, wait_state

# mean grey of what an <img> shows now, and a digest of its pixels
PIXELS = """el => {
  const c = document.createElement('canvas');
  c.width = el.naturalWidth; c.height = el.naturalHeight;
  if (!c.width) return null;
  const g = c.getContext('2d');
  g.drawImage(el, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  let sum = 0, digest = 0;
  for (let i = 0; i < d.length; i += 4) { sum += d[i]; digest = (digest * 31 + d[i]) | 0; }
  return [sum / (d.length / 4), digest, c.width, c.height];
}"""


def pixels(page):
    return page.eval_on_selector("#snap", PIXELS)


def test_live_view_plays_and_stops(board, open_page):
    page = open_page(board)
    wait_state(page, "live")
    expect(page.locator("#live-btn")).to_have_attribute("aria-pressed", "false")
    streams = lambda: [r for r in page.requests if urlsplit(r.url).path == "/stream"]  # noqa: E731
    assert streams() == []  # nothing until tapped
    page.click("#live-btn")
    expect(page.locator("#live-btn")).to_have_attribute("aria-pressed", "true")
    page.wait_for_function("document.getElementById('snap').naturalWidth > 0")
    first = pixels(page)
    assert first[2:] == [160, 120]
    page.wait_for_function("d => { const p = (" + PIXELS + ")(document.getElementById('snap'));"
                           " return p && p[1] !== d; }", arg=first[1], timeout=10000)
    assert streams()
    page.click("#live-btn")
    expect(page.locator("#live-btn")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#snap")).to_have_attribute("src", re.compile("^snapshot"))
    assert page.errors == []


def test_a_second_viewer_is_told_someone_else_is_watching(board, open_page):
    first = open_page(board)
    wait_state(first, "live")
    first.click("#live-btn")
    first.wait_for_function("document.getElementById('snap').naturalWidth > 0")
    second = open_page(board)
    wait_state(second, "live")
    second.click("#live-btn")
    expect(second.locator("#live-note")).to_contain_text("Someone else is watching", timeout=15000)
    expect(second.locator("#live-btn")).to_have_attribute("aria-pressed", "false")
    first.click("#live-btn")


def test_moving_a_control_changes_the_picture(own_board, open_page):
    page = open_page(own_board)
    wait_state(page, "live")
    page.wait_for_function("document.getElementById('snap').naturalWidth > 0")
    before = pixels(page)[0]
    page.click("#settings summary")
    slider = page.locator("#set-brightness")
    expect(slider).to_have_attribute("type", "range")
    slider.fill("2")
    expect(page.locator("label[for=set-brightness] output")).to_have_text("2")
    expect(page.locator("#set-special_effect")).to_have_js_property("tagName", "SELECT")
    page.fill("#admin-pw", ADMIN_PASSWORD)
    page.click("#settings-form button[type=submit]")
    expect(page.locator("#settings-msg")).to_contain_text("Saved: brightness")
    page.click("#snap-btn")
    page.wait_for_function("b => { const el = document.getElementById('snap');"
                           " return el.complete && (" + PIXELS + ")(el)[0] > b + 25; }",
                           arg=before, timeout=15000)
    assert page.errors == []


def test_episodes_show_their_thumbnails_also_on_a_page_opened_later(board, open_page):
    page = open_page(board)
    wait_state(page, "live")
    # an episode seen live: its row gets the start picture, then the peak
    row = page.locator("#episodes li[data-id]").first
    expect(row).to_have_attribute("data-thumb", re.compile(r"^episodes/\d+-start\.jpg$"),
                                  timeout=30000)
    expect(row).to_have_attribute("data-thumb", re.compile(r"^episodes/\d+-peak\.jpg$"),
                                  timeout=30000)
    ident = row.get_attribute("data-id")
    img = row.locator("img")
    expect(img).to_be_visible()
    assert img.evaluate("el => [el.naturalWidth, el.naturalHeight]") == [160, 120]
    # a phone that opens the page afterwards sees the same episode, picture and all
    later = open_page(board)
    wait_state(later, "live")
    again = later.locator("#episodes li[data-id='%s']" % ident)
    expect(again).to_have_count(1, timeout=15000)
    expect(again.locator("img")).to_be_visible()
    assert again.locator("img").evaluate("el => el.naturalWidth") == 160
    assert page.errors == [] and later.errors == []
