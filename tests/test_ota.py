"""make deploy HOST=...: updates over Wi-Fi against the virtual board.

Each test runs the real host tool (``python -m tools deploy --host``, or
``make deploy HOST=``) against a virtual board over real sockets, and
checks the board's flash folder afterwards: which files changed, that a
refused request changed nothing, that a cut deploy leaves the old app or
the new one (never a mix), and that an app which does not start is rolled
back by boot.py.
"""

import base64
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from conftest import ROOT, board_flash, free_port, write_settings
from tools import sync
from tools.vboard import VirtualBoard

VENV = os.path.dirname(os.path.dirname(sys.executable))
PASSWORD = "ota-test-pw"
CONFIRM_S = 5


def build_copy(dst, edit=None):
    """A copy of the sources, edited by ``edit(path)``, built for vboard."""
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(
        ".venv", "build", ".git", ".cache", "__pycache__", ".pytest_cache", "secrets.json"))
    if edit:
        edit(dst)
    r = subprocess.run([sys.executable, "-m", "tools", "build", "--board", "vboard"], cwd=dst,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(os.path.join(dst, "build", "vboard", "manifest.json")) as f:
        return sync.wanted(json.load(f))


def _append(path, text):
    with open(path, "a") as f:
        f.write(text)


@pytest.fixture(scope="module")
def builds(tmp_path_factory, vboard_fs):
    """Three builds: ``a`` (the sources as they are), ``b`` (three files
    changed: two modules and a web asset, so four files with the asset list), ``broken`` (the app raises at
    import). Each ``{"src": folder, "files": {path: sha256}}``."""
    base = tmp_path_factory.mktemp("builds")
    out = {}

    def change(d):
        _append(os.path.join(d, "firmware", "camwatch", "app.py"), "\nOTA_TEST_MARK = 'b'\n")
        _append(os.path.join(d, "firmware", "camwatch", "guard.py"), "\nOTA_TEST_MARK = 'b'\n")
        _append(os.path.join(d, "web", "style.css"), "\n/* build b */\n")

    def breaks(d):
        _append(os.path.join(d, "firmware", "camwatch", "app.py"),
                "\nraise RuntimeError('this build is broken on purpose')\n")

    for name, edit in (("a", None), ("b", change), ("broken", breaks)):
        src = str(base / name)
        out[name] = {"src": src, "files": build_copy(src, edit)}
    return out


def flash_files(flash):
    """``{path: sha256}`` of the app's files in a flash folder."""
    return {p: h for p, h in sync.local_hashes(flash).items() if not sync.preserved(p)}


@pytest.fixture
def board(builds, tmp_path):
    """A virtual board running build ``a`` from its flash, with an admin
    password and confirm_s of 5 s."""
    flash = tmp_path / "flash"
    shutil.copytree(os.path.join(builds["a"]["src"], "build", "vboard", "fs"), flash)
    write_settings(flash, admin_password=PASSWORD, confirm_s=CONFIRM_S)
    vb = VirtualBoard(str(flash), str(tmp_path / "tty"), http_port=free_port())
    vb.start()
    try:
        vb.wait_http(timeout=30)
        yield vb
    finally:
        vb.stop()


def deploy(src, port, password=PASSWORD, timeout=120, wait=60):
    """``python -m tools deploy --host`` from build folder ``src``."""
    env = dict(os.environ, CAMWATCH_PASSWORD=password)
    return subprocess.run([sys.executable, "-m", "tools", "deploy", "--host",
                           "127.0.0.1:%d" % port, "--no-build", "--board", "vboard",
                           "--wait", str(wait)],
                          cwd=src, env=env, capture_output=True, text=True, timeout=timeout)


def sent_files(output):
    """The board paths a deploy printed as sent."""
    return [line.split("] ", 1)[1].split(" (")[0] for line in output.splitlines()
            if line.strip().startswith("[") and "] /" in line]


def status(vb):
    with urllib.request.urlopen(vb.url + "api/status", timeout=10) as r:
        return json.load(r)


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("timed out after %d s waiting for %s" % (timeout, what))


def raw_request(port, head, body=b"", read_s=10):
    """Send ``head`` (request line and headers, no blank line) and ``body``
    on one socket; return ``(status, answer bytes)``."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_s) as s:
        s.sendall(head.encode() + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                  % len(body) + body)
        answer = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer


def auth(password=PASSWORD):
    return "Authorization: Basic " + base64.b64encode(("admin:" + password).encode()).decode()


def test_network_deploy_sends_only_what_differs_and_is_kept(board, builds):
    a, b = builds["a"], builds["b"]
    differ = sorted(p for p in b["files"] if a["files"].get(p) != b["files"][p])
    # app.mpy, guard.mpy, style.css.gz and the asset list (its etags)
    assert len(differ) == 4, differ

    same = deploy(a["src"], board.http_port)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "nothing to do: the board already runs this build" in same.stdout
    assert sent_files(same.stdout) == []

    # through make, as the README says
    env = dict(os.environ, CAMWATCH_PASSWORD=PASSWORD)
    r = subprocess.run(["make", "--no-print-directory", "VENV=" + VENV, "deploy",
                        "HOST=127.0.0.1:%d" % board.http_port, "BOARD=vboard",
                        "DEPLOY_ARGS=--no-build"], cwd=b["src"], env=env,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(sent_files(r.stdout)) == differ
    assert "deploy: done; dashboard at " + board.url in r.stdout
    assert flash_files(board.flash) == b["files"]
    console = board.console()
    assert "camwatch: update: receiving an update from 127.0.0.1" in console
    assert "camwatch: update: 4 files staged, 0 to remove; restarting" in console
    assert "deploy: finished, 4 files moved, 0 removed" in console
    # the replaced files wait in /.previous until the new app has served
    # for confirm_s; then they are dropped, and a status event (the page's
    # Board card, the console) says the app is kept
    board.wait_console("camwatch: update: the new app has served for %d s and is kept "
                       "(4 files of the one before it dropped)" % CONFIRM_S,
                       timeout=CONFIRM_S + 20)
    assert not os.path.exists(os.path.join(board.flash, ".previous"))


def test_wrong_or_missing_password_is_refused_and_changes_nothing(board, builds):
    before = sync.local_hashes(board.flash)
    r = deploy(builds["b"]["src"], board.http_port, password="not-the-password")
    assert r.returncode == 2
    assert "refused the admin password" in r.stderr and "CAMWATCH_PASSWORD" in r.stderr, r.stderr
    assert sent_files(r.stdout) == []
    data = open(os.path.join(builds["b"]["src"], "build", "vboard", "fs", "camwatch",
                             "app.mpy"), "rb").read()
    sha = hashlib.sha256(data).hexdigest()
    for head in ("PUT /api/update/files/camwatch/app.mpy?sha256=%s HTTP/1.1" % sha,
                 "PUT /api/update/files/camwatch/app.mpy?sha256=%s HTTP/1.1\r\n%s"
                 % (sha, auth("wrong"))):
        code, answer = raw_request(board.http_port, head, data)
        assert code == 401, answer
    code, _ = raw_request(board.http_port, "POST /api/update/commit HTTP/1.1\r\n"
                          "Content-Type: application/json",
                          b'{"copy": [], "delete": ["/camwatch/app.mpy"]}')
    assert code == 401
    assert sync.local_hashes(board.flash) == before
    assert not os.path.exists(os.path.join(board.flash, ".staging"))


@pytest.mark.parametrize("path, code", [
    ("../settings.json", 400),
    ("camwatch/../../settings.json", 400),
    ("%2e%2e/settings.json", 400),
    ("settings.json", 400),
    ("/etc/passwd", 400),
    ("/settings.json", 400),
    ("camwatch/.hidden.mpy", 400),
    (".vboard/wifi-down", 400),
    ("data/x", 400),
    ("camwatch/a b.mpy", 400),
])
def test_hostile_upload_paths_are_refused(board, path, code):
    before = sync.local_hashes(board.flash)
    body = b"{}"
    sha = hashlib.sha256(body).hexdigest()
    got, answer = raw_request(board.http_port, "PUT /api/update/files/%s?sha256=%s HTTP/1.1\r\n%s"
                              % (path.replace(" ", "%20"), sha, auth()), body)
    assert got == code, answer
    assert sync.local_hashes(board.flash) == before


def test_oversize_mismatched_and_unplanned_uploads_are_refused(board, builds):
    before = sync.local_hashes(board.flash)
    # over the 64 KB an upload may have: refused before the body is read
    code, answer = raw_request(board.http_port, "PUT /api/update/files/web/big.gz?sha256=%s "
                               "HTTP/1.1\r\n%s" % ("0" * 64, auth()), b"x" * 70000)
    assert code == 413, answer
    # a body whose sha256 is not the one given: nothing kept
    body = b"print('hello')\n"
    code, answer = raw_request(board.http_port, "PUT /api/update/files/camwatch/x.py?sha256=%s "
                               "HTTP/1.1\r\n%s" % ("1" * 64, auth()), body)
    assert code == 422 and b"not the 111" in answer, answer
    # a commit naming a file that was never staged, or settings.json
    for plan, want in (({"copy": ["/camwatch/x.py"], "delete": []}, 409),
                       ({"copy": [], "delete": ["/settings.json"]}, 400),
                       ({"copy": [], "delete": ["/../boot.py"]}, 400),
                       ({"copy": "all", "delete": []}, 400)):
        code, answer = raw_request(board.http_port, "POST /api/update/commit HTTP/1.1\r\n%s\r\n"
                                   "Content-Type: application/json" % auth(),
                                   json.dumps(plan).encode())
        assert code == want, (plan, answer)
    after = sync.local_hashes(board.flash)
    assert {p: h for p, h in after.items() if not p.startswith("/.staging/")} == before
    assert [p for p in after if p.startswith("/.staging/")] == []
    assert status(board)["uptime_s"] >= 0  # still serving


class CuttingProxy:
    """A TCP proxy to the board that cuts every connection once ``limit``
    bytes in all have gone from the host to the board (and refuses new
    ones after that): a Wi-Fi link that dies mid-deploy."""

    def __init__(self, board_port, limit):
        self.board_port = board_port
        self.limit = limit
        self.sent = 0
        self.cut = False
        self.lock = threading.Lock()
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.cut:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.board_port))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False),
                             daemon=True).start()

    def _pipe(self, src, dst, counted):
        try:
            while True:
                data = src.recv(1024)
                if not data:
                    break
                if counted:
                    with self.lock:
                        room = self.limit - self.sent
                        self.sent += len(data)
                    if room < len(data):
                        if room > 0:
                            dst.sendall(data[:room])
                        self.cut = True
                        break
                if self.cut:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.server.close()


def which_build(flash, builds):
    """"a" or "b" when the flash holds all of that build's app files, else
    the files that match neither."""
    files = flash_files(flash)
    for name in ("a", "b"):
        if files == builds[name]["files"]:
            return name
    return sorted(p for p in set(files) | set(builds["a"]["files"])
                  if files.get(p) not in (builds["a"]["files"].get(p),
                                          builds["b"]["files"].get(p)))


def test_cut_connections_and_power_cuts_leave_the_old_app_or_the_new(board, builds):
    deploys = int(os.environ.get("OTA_DEPLOYS", "20"))
    rng = random.Random(2026)
    a, b = builds["a"], builds["b"]
    upload = sum(os.path.getsize(os.path.join(b["src"], "build", "vboard", "fs", p[1:]))
                 for p in b["files"] if a["files"].get(p) != b["files"][p])
    seen = {"a": 0, "b": 0}
    resumed = 0
    for i in range(deploys):
        running = which_build(board.flash, builds)
        target = "b" if running == "a" else "a"
        proxy = CuttingProxy(board.http_port, rng.randrange(0, upload + 3000))
        try:
            r = deploy(builds[target]["src"], proxy.port, wait=3)
        finally:
            proxy.close()
        resumed += "staged already by a deploy cut short" in r.stdout
        if r.returncode == 2:  # cut before the commit: the tool says why
            assert r.stderr.startswith("error: "), r.stdout + r.stderr
        elif r.returncode == 1:  # cut after it: the board restarted, out of the tool's sight
            assert "did not answer within 3 s of its restart" in r.stdout, r.stdout
        if i % 2:  # and then the power goes, at a random moment of what follows
            time.sleep(rng.uniform(0, 1.5))
            board.power_cut()
        # a commit that got through restarts the board; wait for it to serve
        wait_for(lambda: _serves(board), 40, "the board to serve after deploy %d" % i)
        got = which_build(board.flash, builds)
        assert got in ("a", "b"), "deploy %d left a mix; files of neither build: %s" % (i, got)
        seen[got] += 1
    assert resumed, "no deploy resumed what a cut one had staged"
    assert seen["a"] and seen["b"], seen  # some cuts came after the commit, some before
    # and a deploy that is not cut brings the board to the build
    r = deploy(b["src"], board.http_port)
    assert r.returncode == 0, r.stdout + r.stderr
    assert which_build(board.flash, builds) == "b"


def _serves(vb):
    try:
        return status(vb)["camera"] == "ok"
    except OSError:
        return False


def test_an_app_that_never_starts_is_rolled_back_after_3_failures(board, builds):
    r = deploy(builds["broken"]["src"], board.http_port, timeout=180)
    assert sent_files(r.stdout) == ["/camwatch/app.mpy"]
    # the tool waited for the board to answer again, and says what it found
    assert r.returncode == 2, r.stdout + r.stderr
    assert "the new app did not start, so the board went back to the one before it" in r.stderr
    # the broken app raises at import: main.py restarts the board, three
    # times; then boot.py puts the previous app back, which serves again
    board.wait_console("deploy: rolled back, 1 files restored", timeout=90)
    wait_for(lambda: _serves(board), 30, "the restored app to serve")
    console = board.console()
    assert console.count("RuntimeError: this build is broken on purpose") == 3
    assert console.count("camwatch: the app stopped; restarting in 5 s") == 3
    assert ("deploy: rolling back: the app deployed last failed 3 times before it had served "
            "confirm_s; the previous app was restored") in console
    assert flash_files(board.flash) == builds["a"]["files"]
    assert not os.path.exists(os.path.join(board.flash, ".previous"))
    # the page says so: a warning in /api/status (the dashboard lists them)
    warnings = status(board)["warnings"]
    assert any(w.startswith("update rolled back: the app deployed last failed 3 times")
               for w in warnings), warnings
    assert "camwatch: warning: update rolled back" in board.console()


def _run_boot(flash):
    """Run boot.py (and deployguard, as source) with ``flash`` as / on the
    MicroPython VM."""
    from tools.vboard import micropython_command

    for name in ("boot.py", "deployguard.py"):
        shutil.copy(os.path.join(ROOT, "firmware", name), os.path.join(flash, name))
    r = subprocess.run([micropython_command(), "boot.py"], cwd=flash, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _put(flash, path, text):
    path = os.path.join(flash, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _read(flash, path):
    try:
        with open(os.path.join(flash, path)) as f:
            return f.read()
    except FileNotFoundError:
        return None


def _stage(flash, files, delete=()):
    for path, text in files.items():
        _put(flash, ".staging/" + path, text)
    _put(flash, ".staging/.swap", json.dumps({"copy": ["/" + p for p in files],
                                              "delete": ["/" + p for p in delete]}))


def test_boot_keeps_the_last_kept_app_across_two_deploys_and_restores_it(tmp_path):
    """boot.py on the VM: two deploys before the first was kept, then 3
    failures of its app; the rollback is cut by a power loss half-way
    and finished at the next boot. Each step checks every file."""
    flash = str(tmp_path)
    for name in ("a", "b", "gone"):
        _put(flash, "camwatch/%s.mpy" % name, "v1")
    _stage(flash, {"camwatch/a.mpy": "v2", "camwatch/new.mpy": "v2"}, ["camwatch/gone.mpy"])
    out = _run_boot(flash)
    assert "deploy: finished, 2 files moved, 1 removed" in out
    assert [_read(flash, "camwatch/%s.mpy" % n) for n in ("a", "b", "gone", "new")] == \
        ["v2", "v1", None, "v2"]
    assert _read(flash, ".previous/camwatch/a.mpy") == "v1"
    assert _read(flash, ".previous/camwatch/gone.mpy") == "v1"
    assert json.loads(_read(flash, ".previous/.added")) == ["camwatch/new.mpy"]
    assert _read(flash, ".previous/.failures") == "0"

    # a second deploy before the first was kept: /.previous keeps v1
    _put(flash, ".previous/.failures", "2")
    _stage(flash, {"camwatch/a.mpy": "v3", "camwatch/b.mpy": "v3"}, ["camwatch/new.mpy"])
    _run_boot(flash)
    assert [_read(flash, "camwatch/%s.mpy" % n) for n in ("a", "b", "gone", "new")] == \
        ["v3", "v3", None, None]
    assert _read(flash, ".previous/camwatch/a.mpy") == "v1"
    assert _read(flash, ".previous/camwatch/b.mpy") == "v1"
    assert _read(flash, ".previous/.failures") == "0"  # counted afresh for the new app

    # fewer than 3 failures: nothing happens
    _put(flash, ".previous/.failures", "2")
    assert "rolling back" not in _run_boot(flash)
    assert _read(flash, "camwatch/a.mpy") == "v3"

    # 3 failures, and the power goes after one file was restored
    _put(flash, ".previous/.failures", "3")
    _put(flash, ".rolledback", "the app deployed last failed 3 times before it had served "
                               "confirm_s; the previous app was restored")
    os.replace(os.path.join(flash, ".previous/camwatch/a.mpy"),
               os.path.join(flash, "camwatch/a.mpy"))
    out = _run_boot(flash)
    assert "deploy: rolled back, 2 files restored" in out
    assert [_read(flash, "camwatch/%s.mpy" % n) for n in ("a", "b", "gone", "new")] == \
        ["v1", "v1", "v1", None]
    assert not os.path.exists(os.path.join(flash, ".previous"))
    assert _read(flash, ".rolledback").startswith("the app deployed last failed 3 times")
    # and the next boot has nothing left to do
    assert "deploy" not in _run_boot(flash)
