"""The dashboard with detection's lighting and masking: a light switch is a
mark in the log, the automatic mask is drawn over the picture."""

import json

import pytest
from playwright.sync_api import expect

from browser.conftest import Board
from browser.helpers import wait_state
from tools.vboard import VirtualBoard

# Leaves swaying top right all the time; a lamp lighting the left half
# from 3 s to 7 s of every 10.
SCENE = {"loop_ms": 10000, "noise": 3, "cell": 4, "texture": [[16, 16]],
         "events": [{"at": 0, "for": 10 ** 6,
                     "object": {"w": 8, "h": 8, "from": [104 + 12 * k, 8 + 6 * (k % 2)],
                                "to": [110 + 12 * k, 8 + 6 * (k % 2)],
                                "level": 40 + 150 * (k % 2), "sway": 700 + 200 * k,
                                "motion": False}} for k in range(4)]
         + [{"at": 3000, "for": 4000, "patch": {"w": 70, "h": 120, "from": [-20, 0],
                                                "gain": 1.7, "soft": 24}}]}


class SceneBoard(Board):
    def start(self):
        with open(self.flash / "scene.json", "w") as f:
            json.dump(SCENE, f)
        self.vb = VirtualBoard(str(self.flash), str(self.tmp / "tty"), http_port=self.port,
                               env={"CAMWATCH_SCENE": "scene.json"}, romfs=self.romfs)
        self.vb.start()
        self.vb.wait_http(timeout=30)
        return self


@pytest.fixture
def scene_board(vboard_fs, tmp_path):
    b = SceneBoard(vboard_fs, tmp_path, auto_mask=True).start()
    try:
        yield b
    finally:
        b.stop()


def test_lights_changing_is_marked_and_the_auto_mask_drawn(scene_board, open_page):
    page = open_page(scene_board)
    wait_state(page, "live")
    # the lamp at 3 s: a mark in the log that no filter hides
    mark = page.locator('#log-list li.k-mark[data-name="light"]').first
    expect(mark).to_contain_text("Lights changed", timeout=30000)
    page.locator('.filters input[value="status"]').uncheck()
    expect(mark).to_be_visible()
    # the leaves mask themselves within seconds: drawn over the picture
    rects = page.locator("#automask rect")
    expect(rects.first).to_be_attached(timeout=40000)
    x = int(rects.first.get_attribute("x"))
    y = int(rects.first.get_attribute("y"))
    assert x >= 96 and y < 40, (x, y)  # where the leaves are
    assert page.get_attribute("#overlay", "viewBox") == "0 0 160 120"
    assert page.errors == []
