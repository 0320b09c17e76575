"""``deploy --host``: the same deploy as over USB, carried over Wi-Fi (HTTP).

What ``make deploy PORT=...`` does through mpremote, this does through the
board's update routes (``firmware/camwatch/update.py``):

1. ``GET /api/status``: what MicroPython the board runs; a build it cannot
   import is refused before anything is sent (``tools.abi``), as over USB;
2. ``GET /api/update/files`` (admin password): the sha256 of each of the app's
   files on the board, and of what an earlier, cut-off deploy staged;
3. ``PUT /api/update/files/<path>?sha256=...`` for each file that differs
   and is not staged already: the board keeps it in ``/.staging`` only if
   its sha256 is the one sent;
4. ``POST /api/update/commit``: the board writes ``/.staging/.swap`` and
   restarts; its ``boot.py`` moves the files into place (keeping the ones
   it replaces in ``/.previous``, restored if the new app fails three times
   before it has served ``confirm_s``).

A connection cut anywhere leaves the board running its old app; the next
deploy sends only what is not staged yet.

The admin password comes from ``CAMWATCH_PASSWORD``, else ``admin_password``
in secrets.json, else it is asked for on a terminal.
"""

import base64
import getpass
import hashlib
import http.client
import json
import os
import socket
import sys
import time

from tools import ToolError, abi, boards, build, sync

PASSWORD_ENV = "CAMWATCH_PASSWORD"
CHUNK = 4096  # bytes per write of an upload


def split_host(host):
    """``(name, port)`` of ``camwatch.local``, ``192.168.1.40:8080`` or
    ``http://name:port/``."""
    text = host
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme != "http":
            raise ToolError("HOST=%s: the board speaks plain http (no TLS); give its name or "
                            "address, e.g. HOST=camwatch.local" % host)
    text = text.rstrip("/")
    name, sep, port = text.rpartition(":")
    if not sep:
        name, port = text, "80"
    if not name or "/" in name or not port.isdigit() or not 0 < int(port) < 65536:
        raise ToolError("HOST=%s is not a name or address with an optional :port, "
                        "e.g. HOST=camwatch.local or HOST=127.0.0.1:8080" % host)
    return name, int(port)


class Busy(Exception):
    """The board is receiving another upload."""


class Board:
    """One board's HTTP API.

    :param host: the board's name or address, with ``:port`` when not 80.
    :param password: the admin password (None: the update routes are refused).
    :param timeout: seconds to wait for any one answer.
    """

    def __init__(self, host, password=None, timeout=15):
        self.host = host
        self.name, self.port = split_host(host)
        self.url = "http://%s%s/" % (self.name, "" if self.port == 80 else ":%d" % self.port)
        self.password = password
        self.timeout = timeout

    def _auth(self):
        token = base64.b64encode(("admin:%s" % (self.password or "")).encode()).decode()
        return "Basic " + token

    def _unreachable(self, exc):
        return ToolError("cannot reach camwatch at %s (%s): is the board on and on this network? "
                         "Its address is printed at boot (make repl PORT=...) and shown by your "
                         "router; or deploy over USB with make deploy PORT=..." % (self.url, exc))

    def request(self, method, path, body=None, auth=False, timeout=None):
        """``(status, parsed JSON or None, headers)``; ToolError when the
        board cannot be reached."""
        headers = {"Connection": "close"}
        if auth:
            headers["Authorization"] = self._auth()
        if body is not None:
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(self.name, self.port, timeout=timeout or self.timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            res = conn.getresponse()
            data = res.read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc)
        finally:
            conn.close()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        return res.status, parsed, res

    def refused(self, status, data, res, what):
        """The ToolError for an update route's refusal."""
        reason = (data or {}).get("error") if isinstance(data, dict) else None
        if status == 401:
            return ToolError("%s refused the admin password (%s): set %s, or admin_password "
                             "in secrets.json, to the board's admin password"
                             % (self.url, reason or "401", PASSWORD_ENV))
        if status == 429:
            return ToolError("%s: too many wrong passwords; the board takes the next try in %s s"
                             % (self.url, res.getheader("Retry-After") or "a few"))
        if status == 404:
            return ToolError("%s has no update routes: its app predates updates over Wi-Fi; "
                             "deploy once over USB (make deploy PORT=...)" % self.url)
        return ToolError("%s: %s answered %d: %s" % (self.url, what, status, reason or "no reason"))

    def api(self, method, path, body=None):
        """An update route's JSON answer; ToolError saying why when refused."""
        status, data, res = self.request(method, path, body, auth=True)
        if status != 200:
            raise self.refused(status, data, res, "%s %s" % (method, path))
        return data

    def status(self):
        status, data, _ = self.request("GET", "/api/status")
        if status != 200 or not isinstance(data, dict):
            raise ToolError("%s answered /api/status with %d: is it a camwatch board?"
                            % (self.url, status))
        return data

    def upload(self, path, data, sha, index, count, sent=None, busy_s=20):
        """PUT one file; return when the board has staged it.

        sent(n): called as bytes go out. busy_s: how long to retry while the board is still busy with
        another upload (one cut off a moment ago ends within 10 s).
        """
        deadline = time.monotonic() + busy_s
        while True:
            try:
                return self._upload(path, data, sha, index, count, sent)
            except Busy:
                if time.monotonic() > deadline:
                    raise ToolError("%s is busy with another upload for more than %d s; is "
                                    "another deploy running?" % (self.url, busy_s))
                time.sleep(1)

    def _upload(self, path, data, sha, index, count, sent):
        head = ("PUT /api/update/files%s?sha256=%s&file=%d/%d HTTP/1.1\r\nHost: %s\r\n"
                "Authorization: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                % (path, sha, index, count, self.name, self._auth(), len(data)))
        try:
            sock = socket.create_connection((self.name, self.port), timeout=self.timeout)
        except OSError as exc:
            raise self._unreachable(exc)
        with sock:
            try:
                sock.sendall(head.encode())
                for off in range(0, len(data), CHUNK):
                    sock.sendall(data[off:off + CHUNK])
                    if sent:
                        sent(min(off + CHUNK, len(data)))
            except OSError:
                pass  # refused early: the answer says why
            res = http.client.HTTPResponse(sock)
            try:
                res.begin()
                body = res.read()
            except (OSError, http.client.HTTPException):
                raise ToolError("%s: the connection ended while %s was sent; run the deploy "
                                "again (what was staged is not sent twice)" % (self.url, path))
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if res.status == 409:
            raise Busy()
        if res.status == 422:
            raise ToolError("%s: the board did not keep %s: %s"
                            % (self.url, path, (parsed or {}).get("error")))
        if res.status != 200:
            raise self.refused(res.status, parsed, res, "PUT " + path)
        return parsed


class Progress:
    """The upload's progress: a bar on a terminal, a line a file elsewhere."""

    def __init__(self, total, files, log=print, out=None):
        self.total = total
        self.files = files
        self.done = 0
        self.log = log
        self.out = out or sys.stdout
        self.tty = log is print and self.out.isatty()

    def start(self, index, path, size):
        if not self.tty:
            self.log("  [%d/%d] %s (%d bytes)" % (index, self.files, path, size))
        self.index, self.path = index, path

    def sent(self, n):
        """``n`` bytes of the current file are out."""
        if self.tty:
            now = self.done + n
            width = 30
            filled = width * now // max(self.total, 1)
            self.out.write("\r  [%s%s] %5.1f/%.1f KB  file %d/%d  %s\x1b[K"
                           % ("#" * filled, "." * (width - filled), now / 1024, self.total / 1024,
                              self.index, self.files, self.path))
            self.out.flush()

    def finish(self, size):
        self.done += size
        if self.tty:
            self.sent(0)
            if self.index == self.files:
                self.out.write("\n")


def password_for(secrets_path):
    """The admin password: CAMWATCH_PASSWORD, secrets.json, or asked."""
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    from tools.deploy import load_secrets

    secrets = load_secrets(secrets_path, interactive=False) or {}
    if secrets.get("admin_password"):
        return secrets["admin_password"]
    if sys.stdin.isatty():
        return getpass.getpass("admin password of the board: ")
    raise ToolError("the board's admin password is needed: set %s, or admin_password in %s"
                    % (PASSWORD_ENV, os.path.relpath(secrets_path)))


def check_build(b, status, board_id=None, no_build=False, log=print):
    """Build (or read the build) for the board at ``b`` and refuse one it
    cannot import. Returns ``(board, manifest)``."""
    from tools.deploy import build_manifest, check_board_matches, default_board

    mp = status.get("micropython")
    if not isinstance(mp, dict):
        raise ToolError("%s does not say what MicroPython it runs: its app predates updates "
                        "over Wi-Fi; deploy once over USB (make deploy PORT=...)" % b.url)
    found = abi.board_abi(mp.get("platform"), mp.get("version"), mp.get("_mpy"),
                          mp.get("machine") or "")
    board_id = board_id or status.get("board") or default_board(found)
    board = boards.get(board_id)
    manifest = build_manifest(board_id, no_build, log=log)
    try:
        abi.check(manifest["mpy"], found, board_id, b.host, boards.load()["boards"])
        check_board_matches(board, found, b.host)
    except ToolError as exc:  # the fix names HOST=, not PORT=
        raise ToolError(str(exc).replace("PORT=" + b.host, "HOST=" + b.host))
    return board, manifest


def wait_restart(b, before, wait, log=print):
    """Wait for the board to answer again after its restart; return its
    status, or None after ``wait`` seconds."""
    started = time.monotonic()
    deadline = started + wait
    while time.monotonic() < deadline:
        try:
            status = b.status()
        except ToolError:
            status = None
        if status is not None and status.get("uptime_s", 1e9) < before["uptime_s"] + \
                time.monotonic() - started - 1:
            return status
        time.sleep(0.3)
    return None


def deploy(host, password, board_id=None, no_build=False, log=print, wait=60):
    """Deploy the build to the board at ``host`` over HTTP.

    Returns the dashboard URL once the board answers with the new app, or
    None if it did not within ``wait`` seconds of its restart.
    """
    b = Board(host, password)
    status = b.status()
    board, manifest = check_build(b, status, board_id, no_build, log=log)
    listing = b.api("GET", "/api/update/files")
    want = sync.wanted(manifest)
    copy, delete = sync.plan(manifest, listing["files"])
    staged = [p for p in copy if listing["staged"].get(p) == want[p]]
    send = [p for p in copy if p not in staged]
    log("deploy: %d to copy%s, %d to remove, %d unchanged on %s"
        % (len(copy), " (%d staged already by a deploy cut short)" % len(staged) if staged
           else "", len(delete), len(manifest["files"]) - len(copy), b.url))
    if not copy and not delete:
        log("deploy: nothing to do: the board already runs this build")
        return b.url
    fs = build.fs_dir(board["id"])
    sizes = {p: os.path.getsize(os.path.join(fs, p[1:])) for p in send}
    progress = Progress(sum(sizes.values()), len(send), log=log)
    for i, path in enumerate(send, 1):
        with open(os.path.join(fs, path[1:]), "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != want[path]:
            raise ToolError("%s changed since the build; run make deploy again" % path)
        progress.start(i, path, len(data))
        b.upload(path, data, want[path], i, len(send), sent=progress.sent)
        progress.finish(len(data))
    b.api("POST", "/api/update/commit", {"copy": copy, "delete": delete})
    log("deploy: the board restarts to put the files in place")
    after = wait_restart(b, status, wait, log=log)
    if after is None:
        log("deploy: %s did not answer within %d s of its restart; if the new app does not "
            "start, the board puts the old one back after 3 tries (watch the dashboard, or "
            "make repl PORT=... over USB)" % (b.url, wait))
        return None
    rolled = [w for w in after.get("warnings") or () if str(w).startswith("update rolled back")]
    if rolled:
        raise ToolError("%s: the new app did not start, so the board went back to the one "
                        "before it (%s); see why on its console: make repl PORT=... over USB"
                        % (b.url, rolled[-1]))
    return b.url


def cmd_deploy(args, fallback):
    """``deploy`` with ``--host``: over Wi-Fi; without it, ``fallback``
    (the USB deploy)."""
    if not args.host:
        return fallback(args)
    if args.port:
        raise ToolError("give PORT (a USB deploy) or HOST (over Wi-Fi), not both")
    password = password_for(args.secrets)
    url = deploy(args.host, password, args.board, no_build=args.no_build, wait=args.wait)
    if url:
        print("deploy: done; dashboard at %s (the board keeps the new app once it has served "
              "for confirm_s, 60 s by default)" % url)
    return 0 if url else 1


def extend(p):
    """Give the ``deploy`` parser ``p`` its ``--host`` option."""
    p.add_argument("--host", default=None,
                   help="deploy over Wi-Fi to the board at this name or address, with :port "
                        "when not 80 (camwatch.local, 192.168.1.40, 127.0.0.1:8080 for make run; "
                        "or HOST=); the admin password comes from %s, secrets.json or a prompt"
                        % PASSWORD_ENV)
    p.add_argument("--wait", type=float, default=60, metavar="SECONDS",
                   help="with --host: how long to wait for the board to answer after its "
                        "restart (default %(default)s)")
    fallback = p.get_default("func")
    p.set_defaults(func=lambda args: cmd_deploy(args, fallback))
