"""Helpers for the hardening suites: raw HTTP over real sockets to a virtual
board, from a chosen loopback address, and reading what the board says."""

import json
import os
import shutil
import socket
import time


def raw(vb, data, source="127.0.0.1", timeout=10, read=True):
    """Send ``data`` (bytes) to the board from ``source`` (any 127.x.y.z
    address: each is a different client to the board) and read the answer
    until the board closes. Returns ``(status or None, headers, body)``;
    status None means the connection was closed or reset without an answer.
    """
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.bind((source, 0))
        s.connect(("127.0.0.1", vb.http_port))
        try:
            s.sendall(data)
        except OSError:  # the board answered and closed before taking it all
            pass
        if not read:
            return None, {}, b""
        got = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
    finally:
        s.close()
    return parse(got)


def parse(got):
    if b"\r\n\r\n" not in got:
        return None, {}, got
    head, body = got.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


def request(method, path, body=None, headers=None):
    """The bytes of a well-formed request (JSON body if ``body`` is not bytes)."""
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    head = "%s %s HTTP/1.1\r\nHost: camwatch\r\n" % (method, path)
    for k, v in (headers or {}).items():
        head += "%s: %s\r\n" % (k, v)
    if body is not None:
        if "Content-Type" not in (headers or {}):
            head += "Content-Type: application/json\r\n"
        head += "Content-Length: %d\r\n" % len(body)
    return head.encode() + b"\r\n" + (body or b"")


def post_settings(vb, body, source="127.0.0.1"):
    status, headers, data = raw(vb, request("POST", "/api/settings", body), source)
    return status, headers, (json.loads(data) if data else None)


def status(vb):
    s, _, body = raw(vb, request("GET", "/api/status"))
    assert s == 200, (s, body)
    return json.loads(body)


def wait_for(cond, timeout, what, interval=0.1):
    """Wait until ``cond()`` is true; fail saying ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


HOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hooks")


def hooked_flash(flash):
    """Add the test-only load hook (tests/hooks/loadhook.py) to a virtual
    board's flash folder: its main.py imports it before starting the app."""
    shutil.copyfile(os.path.join(HOOKS, "loadhook.py"), os.path.join(str(flash), "loadhook.py"))
    main = os.path.join(str(flash), "main.py")
    with open(main) as f:
        text = f.read()
    with open(main, "w") as f:
        f.write("import loadhook  # test-only: tests/hooks/loadhook.py\n" + text)


def set_load(vb, **cfg):
    """Steer the load hook (see tests/hooks/loadhook.py): ``rate``, ``size``,
    ``fill_free``. Returns once the board has applied it."""
    folder = os.path.join(vb.flash, ".vboard")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "load.json")
    mark = vb.console_offset()
    tmp = path + ".new"
    with open(tmp, "w") as f:
        json.dump(cfg, f)
    # the hook notices a change by the file's mtime, in whole seconds: two
    # changes within a second must still differ
    old = int(os.stat(path).st_mtime) if os.path.exists(path) else 0
    when = max(int(time.time()), old + 1)
    os.utime(tmp, (when, when))
    os.replace(tmp, path)
    vb.wait_console("loadhook: rate", timeout=20, start=mark)


def start_board(tmp_path, hooked=False, env=None, **settings):
    """A running virtual board (ROMFS, as `make run`) on a fresh flash folder
    with ``settings``; ``hooked`` adds the load hook. Stop it when done."""
    from conftest import board_flash, free_port, write_settings
    from tools.vboard import VirtualBoard

    flash = tmp_path / "flash"
    romfs = board_flash(flash)
    if hooked:
        hooked_flash(flash)
    write_settings(flash, **settings)
    vb = VirtualBoard(str(flash), str(tmp_path / "tty"), http_port=free_port(), romfs=romfs,
                      env=env)
    vb.start()
    try:
        vb.wait_http(timeout=30)
    except BaseException:
        vb.stop()
        raise
    return vb
