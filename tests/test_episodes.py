"""Motion thumbnails on the virtual board, over real sockets: each episode's
start and peak are JPEGs an independent decoder (Pillow) reads, listed by
/api/episodes, gone (404) once the board dropped them; with a microSD card
(the virtual board's FAT image) they are written to it by day, and a card
pulled out mid-run is a warning while detection goes on."""

import io
import json
import os
import time

from PIL import Image

from conftest import board_flash, free_port, romfs_image, run_vm, write_settings
from sse_client import Stream
from tools.vboard import SD_IMAGE, VirtualBoard, insert_sd

from test_live import PASSWORD, get, post_settings


def boot(tmp_path, sd_mb=0, **settings):
    flash = tmp_path / "flash"
    board_flash(flash)
    # end_s 1: an episode of the default scene (a person crossing every
    # 10 s) ends a second after the person has gone
    write_settings(flash, admin_password=PASSWORD, telemetry_s=1, end_s=1, **settings)
    env = {"CAMWATCH_SCENE": "default"}
    if sd_mb:
        insert_sd(str(flash), sd_mb)
        env["CAMWATCH_SD"] = SD_IMAGE
    vb = VirtualBoard(str(flash), str(tmp_path / "tty"), http_port=free_port(), env=env,
                      romfs=romfs_image())
    vb.start()
    vb.wait_http(timeout=30)
    return vb, flash


def jpeg(data):
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.format == "JPEG"
        return im.size


def next_where(events, event, where, timeout=40):
    """The data of the next ``event`` on the stream for which ``where(data)``."""
    deadline = time.monotonic() + timeout
    while True:
        data = json.loads(events.next(timeout=max(0.1, deadline - time.monotonic()),
                                      event=event).data)
        if where(data):
            return data


def one_episode(events, timeout=40):
    """The next whole episode on the stream: (start event, end event)."""
    start = next_where(events, "motion", lambda d: d["phase"] == "start", timeout)
    end = next_where(events, "motion", lambda d: d["phase"] == "end", timeout)
    return start, end


def test_each_episode_has_a_start_and_a_peak_picture_until_the_ring_drops_them(tmp_path, vboard_fs):
    vb, _ = boot(tmp_path)
    try:
        with Stream(vb.url) as events:
            start, end = one_episode(events)
        ident = start["episode"]
        assert isinstance(ident, int) and end["episode"] == ident
        code, _, body = get(vb, "api/episodes")
        assert code == 200
        listed = json.loads(body)
        mine = [e for e in listed["episodes"] if e["id"] == ident][0]
        assert mine["start"] == "episodes/%d-start.jpg" % ident
        assert mine["peak"] == "episodes/%d-peak.jpg" % ident
        assert not mine["active"] and mine["duration_ms"] == end["duration_ms"]
        assert mine["peak_score"] == end["peak_score"]
        assert listed["episodes_max"] == 8 and listed["sd"]["state"] == "none"
        for kind in ("start", "peak"):
            code, headers, body = get(vb, "episodes/%d-%s.jpg" % (ident, kind))
            assert code == 200 and headers["Content-Type"] == "image/jpeg"
            assert int(headers["Content-Length"]) == len(body)
            assert jpeg(body) == (160, 120)
        assert get(vb, "episodes/%d.jpg" % ident)[2] == get(vb, mine["peak"])[2]
        for bad in ("episodes/999999-start.jpg", "episodes/%d-middle.jpg" % ident,
                    "episodes/..%2fsettings.json", "episodes/%d" % ident):
            assert get(vb, bad)[0] == 404, bad
        # a new ring size drops what the old one held: 404 from then on
        assert post_settings(vb, thumbs_bytes=4096)[0] == 200
        assert get(vb, mine["start"])[0] == 404
        listed = json.loads(get(vb, "api/episodes")[2])
        assert [e["start"] for e in listed["episodes"] if e["id"] == ident] == [None]
        # and thumbnails off: none listed, motion goes on with its ids
        assert post_settings(vb, episodes_max=0)[0] == 200
        with Stream(vb.url) as events:
            start, _ = one_episode(events)
        assert start["episode"] > ident
        assert json.loads(get(vb, "api/episodes")[2])["episodes"] == []
        assert "Traceback" not in vb.console()
    finally:
        vb.stop()


_LIST_CARD = """
import os
from camwatch.board import vsd
vsd.mount(%r, '/sd')
for day in sorted(os.listdir('/sd/camwatch')):
    for name in sorted(os.listdir('/sd/camwatch/' + day)):
        with open('/sd/camwatch/' + day + '/' + name, 'rb') as f:
            data = f.read()
        print(day + '/' + name, len(data), data[:2] == b'\\xff\\xd8' and data[-2:] == b'\\xff\\xd9')
"""


def test_pictures_go_to_the_card_and_a_pulled_card_is_a_warning(tmp_path, vboard_fs):
    vb, flash = boot(tmp_path, sd_mb=8)
    image = os.path.join(str(flash), SD_IMAGE)
    try:
        with Stream(vb.url) as events:
            start, _ = one_episode(events)
            deadline = time.monotonic() + 20
            while json.loads(get(vb, "api/episodes")[2])["sd"]["written"] < 1:
                assert time.monotonic() < deadline, "nothing written to the card"
                time.sleep(0.2)
            assert "microSD card at /sd" in vb.console()
            # pulled out: the next picture fails, a warning says so
            os.remove(image)
            warning = next_where(events, "status", lambda d: d.get("kind") == "warning"
                                 and "microSD" in d.get("message", ""))
            assert "pulled out" in warning["message"] or "no microSD card" in warning["message"]
            # detection and the RAM ring go on
            later, _ = one_episode(events)
            assert later["episode"] > start["episode"]
            assert get(vb, "episodes/%d-start.jpg" % later["episode"])[0] == 200
        sd = json.loads(get(vb, "api/episodes")[2])["sd"]
        assert sd["state"] in ("failed", "absent")
        assert "Traceback" not in vb.console()
    finally:
        vb.stop()


def test_the_card_holds_each_picture_as_a_whole_jpeg_by_day(tmp_path, vboard_fs):
    vb, flash = boot(tmp_path, sd_mb=8)
    image = os.path.join(str(flash), SD_IMAGE)
    try:
        with Stream(vb.url) as events:
            start, _ = one_episode(events)
        deadline = time.monotonic() + 20
        while json.loads(get(vb, "api/episodes")[2])["sd"]["written"] < 1:
            assert time.monotonic() < deadline, "nothing written to the card"
            time.sleep(0.2)
    finally:
        vb.stop()
    proc = run_vm(["-c", _LIST_CARD % image], vboard_fs)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines()]
    names = [name for name, _, _ in lines]
    ident = start["episode"]
    if "time" in start:  # the clock was set (the virtual board's NTP answers at once)
        t = time.gmtime(start["time"])
        stem = time.strftime("%Y-%m-%d/%H%M%S-", t) + str(ident)
    else:  # not yet: the folder of pictures with no date
        stem = "undated/%06d" % ident
    assert stem + "-start.jpg" in names, names
    assert all(whole == "True" and int(size) > 300 for _, size, whole in lines), lines
