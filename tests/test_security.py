"""Keeping strangers out, over real sockets against the virtual board:
password guessing, writes without the password, secrets, files outside web/."""

import json
import os
import threading
import time

import pytest

from conftest import board_flash, free_port, write_settings
from hardening import post_settings, raw, request, status
from sse_client import Stream
from tools.vboard import VirtualBoard

PASSWORD = "correct horse"


@pytest.fixture
def board(vboard_fs, tmp_path):
    flash = tmp_path / "flash"
    romfs = board_flash(flash)
    write_settings(flash, admin_password=PASSWORD, telemetry_s=1)
    vb = VirtualBoard(str(flash), str(tmp_path / "tty"), http_port=free_port(), romfs=romfs)
    vb.start()
    try:
        vb.wait_http(timeout=30)
        yield vb
    finally:
        vb.stop()


def test_password_guessing_is_slowed_per_address_without_slowing_others(board):
    # tried: one address (127.0.0.2) guessing as fast as it can for 6 s,
    # while a stream is open and another address (127.0.0.3) uses the right
    # password; checked: 3 free tries, then 429 with a growing Retry-After;
    # the right password from the guesser is refused too while it waits; the
    # other address gets in at once; the stream's telemetry keeps its pace
    guesser, other = "127.0.0.2", "127.0.0.3"
    wrong = {"password": "guess", "settings": {"threshold": 20}}
    answers = [post_settings(board, wrong, guesser) for _ in range(4)]
    assert [a[0] for a in answers] == [401, 401, 401, 401], answers
    code, headers, body = post_settings(board, wrong, guesser)
    assert code == 429 and headers["retry-after"] == "1", (code, headers, body)
    assert body["retry_after"] == 1
    code, _, _ = post_settings(board, {"password": PASSWORD, "settings": {}}, guesser)
    assert code == 429  # while it waits, even the right password is not tried

    gaps = []
    stop = threading.Event()

    def watch():
        with Stream(board.url) as s:
            s.next(timeout=10, event="telemetry")
            last = time.monotonic()
            while not stop.is_set():
                s.next(timeout=10, event="telemetry")
                now = time.monotonic()
                gaps.append(now - last)
                last = now

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    tries, retry_afters, t0 = 0, [], time.monotonic()
    while time.monotonic() - t0 < 6:
        code, headers, _ = post_settings(board, wrong, guesser)
        tries += 1
        assert code in (401, 429), code
        if code == 429:
            retry_afters.append(int(headers["retry-after"]))
    t_other = time.monotonic()
    code, _, body = post_settings(board, {"password": PASSWORD, "settings": {"threshold": 20}},
                                  other)
    other_took = time.monotonic() - t_other
    stop.set()
    watcher.join(15)
    failures = status(board)["password_failures"]
    print("guessing for 6 s: %d tries answered, %d passwords checked; Retry-After seen: %s; "
          "telemetry gaps: %s" % (tries, failures, sorted(set(retry_afters)),
                                  ["%.2f" % g for g in gaps]))
    assert code == 200 and body["changed"] == ["threshold"], body
    assert other_took < 2
    # 4 before, then one each time a wait ran out: 1 + 2 + 4 s fit in 6 s
    assert failures <= 4 + 3, failures
    assert tries > 50  # answered at once, not held
    assert max(retry_afters) >= 4
    assert gaps and max(gaps) < 2.5, gaps  # telemetry_s is 1


def test_writes_without_or_with_a_wrong_password_change_nothing(board):
    # tried: a change with no password, an empty one, a wrong one, one of the
    # wrong type; checked: 401 each time, the file and the live value unchanged
    path = os.path.join(board.flash, "settings.json")
    before = open(path, "rb").read()
    for body in ({"settings": {"threshold": 99}},
                 {"password": "", "settings": {"threshold": 99}},
                 {"password": PASSWORD.upper(), "settings": {"threshold": 99}},
                 {"password": 12345, "settings": {"threshold": 99}}):
        code, _, answer = post_settings(board, body, "127.0.0.9")
        assert code == 401, (body, answer)
    assert open(path, "rb").read() == before
    assert json.loads(raw(board, request("GET", "/api/settings"))[2])["threshold"] == 16
