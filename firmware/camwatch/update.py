"""Updates over Wi-Fi: the board's half of ``make deploy HOST=...``.

The host (``tools/ota.py``) carries the serial deploy's plan over HTTP:

1. ``GET /api/update/files``: the sha256 of each of the app's files on the board,
   and of each file already staged (by a deploy that was cut off);
2. ``PUT /api/update/files/<path>?sha256=<hex>`` for each file that
   differs: streamed into ``/.staging`` (512 bytes at a time) and kept only
   if its sha256 is the one given (``422`` and nothing kept otherwise);
3. ``POST /api/update/commit`` with ``{"copy": [...], "delete": [...]}``:
   every file to copy must be staged; ``boot.py`` and ``deployguard.mpy``
   are put in place at once (a rename each), ``/.staging/.swap`` is
   written last and the board restarts. ``deployguard`` moves the files
   into place at boot, keeping those it replaces in ``/.previous`` until
   the new app is kept (``camwatch.deployed``).

Every route wants the admin password (HTTP Basic, any user name); wrong
tries are slowed by the app's ``Guard`` as on ``/api/settings``. Paths are
the app's own files only (``boot.py``, ``main.py``, ``board.json``,
``deployguard.mpy`` and what is under ``camwatch/``, ``lib/`` and
``web/``): never ``settings.json``,
never a path with ``..`` or a part that starts with a dot. A cut
connection leaves the running app as it was; what was staged stays until
the next deploy (which does not send it again) or the next reset.

Loaded by the app on the first update request: a board that is not being
updated never holds it in its heap.
"""

import asyncio
import binascii
import gc
import hashlib
import json
import os
import time

from micropython import const

STAGING = ".staging"
MAX_FILE = const(65536)  # most bytes of one uploaded file
SPARE = const(16384)  # flash bytes an upload must leave free
_CHUNK = const(512)
_READ_S = 10  # an upload whose body stops arriving for this long is dropped
_STATUS_MS = const(2000)  # at most one progress status this often
_FILES = ("boot.py", "main.py", "board.json", "deployguard.mpy")
_ROOTS = ("camwatch", "lib", "web")
_BOOT_FILES = ("/boot.py", "/deployguard.mpy")  # tools.sync.BOOT_FILES
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
_MAX_PATH = const(96)


def app_path(path):
    """``path`` ("/camwatch/app.mpy") as a path relative to / if it is one
    of the app's files; else raise ValueError saying why."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError("a board path starts with /")
    rel = path[1:]
    if len(rel) > _MAX_PATH:
        raise ValueError("path over %d characters" % _MAX_PATH)
    parts = rel.split("/")
    if rel not in _FILES and (len(parts) < 2 or parts[0] not in _ROOTS):
        raise ValueError("not one of the app's files (boot.py, main.py, board.json, "
                         "deployguard.mpy, camwatch/, lib/, web/)")
    for part in parts:
        if not part or part[0] == ".":
            raise ValueError("empty part, or one that starts with a dot")
        for c in part:
            if c not in _NAME_CHARS:
                raise ValueError("only letters, digits, _ . - in a path")
    return rel


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _makedirs(path):
    built = ""
    for part in path.split("/")[:-1]:
        built += part
        try:
            os.mkdir(built)
        except OSError:
            pass
        built += "/"


def _move(src, dst):
    _makedirs(dst)
    try:
        os.rename(src, dst)  # replaces atomically on littlefs
    except OSError:
        os.remove(dst)  # filesystems that refuse to rename over a file
        os.rename(src, dst)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def flash_free():
    """Bytes free on the filesystem that holds the app."""
    st = os.statvfs("/")
    return st[0] * st[3]


def _hashes(root, mark, buf):
    # yield 'mark "/path": "sha256"' for every file under folder ``root``
    # ("" is /) whose path is one of the app's files, one at a time
    stack = [root]
    view = memoryview(buf)
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.ilistdir(folder or "/"))
        except OSError:
            continue
        for entry in entries:
            path = (folder + "/" if folder else "") + entry[0]
            rel = path[len(root) + 1:] if root else path
            if entry[1] & 0x4000:
                if root or folder or entry[0] in _ROOTS:
                    stack.append(path)
                continue
            try:
                app_path("/" + rel)
            except ValueError:
                continue
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    h.update(view[:n])
            yield '%s"/%s": "%s"' % (mark[0], rel, binascii.hexlify(h.digest()).decode())
            mark[0] = ", "


def _listing(pending):
    # the JSON answer of GET /api/update, a piece at a time: a board with
    # a hundred files never holds their list
    buf = bytearray(_CHUNK)
    yield '{"free": %d, "max_file": %d, "pending": %s, "files": {' % (
        flash_free(), MAX_FILE, "true" if pending else "false")
    yield from _hashes("", [""], buf)
    yield '}, "staged": {'
    yield from _hashes(STAGING, [""], buf)
    yield "}}"


class _Body:
    # A body that the handler reads itself (ssehub.Server.stream_body):
    # what came in with the head first, then the socket, never past the
    # Content-Length.
    def __init__(self, first, reader, length):
        self._first = first
        self._reader = reader
        self.left = length  # bytes not read yet

    async def read(self, n=-1):
        if self.left <= 0:
            return b""
        if n < 0 or n > self.left:
            n = self.left
        if self._first:
            chunk = self._first[:n]
            self._first = self._first[len(chunk):]
        else:
            chunk = await self._reader.read(n)
        self.left -= len(chunk)
        return chunk

    async def readinto(self, buf):
        # like read(), into ``buf`` (a bytearray or memoryview): no
        # allocation per read; returns the count, 0 at the end
        n = min(len(buf), self.left)
        if n <= 0:
            return 0
        if self._first:
            k = min(n, len(self._first))
            buf[:k] = self._first[:k]
            self._first = self._first[k:]
        else:
            k = None
            while k is None:  # None: nothing to read after all; wait again
                k = await self._reader.readinto(memoryview(buf)[:n])
        self.left -= k
        return k


class Update:
    """The update routes and their state.

    :param app: the ``camwatch.app.App`` (settings, guard, status, board, web).
    """

    def __init__(self, app):
        self.app = app
        self.busy = None  # the path being received: one upload at a time
        self.received = 0  # files staged since the last commit
        self._status_at = None

    # -- checks ---------------------------------------------------------------

    def refuse(self, request):
        """None when the request has the admin password, else the answer."""
        app = self.app
        ip = request.client_addr[0]
        wait = app.guard.check(ip)
        if wait:
            return app.guard.refusal(wait)
        password = None
        auth = request.headers.get("Authorization", "")
        if auth[:6] == "Basic ":
            try:
                password = binascii.a2b_base64(auth[6:]).decode().partition(":")[2]
            except (ValueError, UnicodeError):
                password = None
        if app.settings.check_password(password):
            app.guard.passed(ip)
            return None
        challenge = {"WWW-Authenticate": 'Basic realm="camwatch"'}
        if not app.settings["admin_hash"]:
            return ({"error": "no admin password is set on this board: set one first "
                              "(Settings, or `make deploy PORT=...` over USB)"}, 403, challenge)
        if password is None:
            return ({"error": "send the admin password (HTTP Basic)"}, 401, challenge)
        wait = app.guard.failed(ip)
        print("camwatch: update: wrong admin password from %s%s"
              % (ip, "; next try in %d s" % wait if wait else ""))
        return {"error": "wrong admin password"}, 401, challenge

    async def _drain(self, request):
        # read and drop a refused upload's body (up to its limit, briefly), so
        # that the client is not reset before it reads why
        stream = request.stream
        if isinstance(stream, tuple):  # streamed (ssehub.Server.stream_body)
            stream = _Body(stream[0], stream[1], request.content_length)
        try:
            while await asyncio.wait_for(stream.read(_CHUNK), 2):
                pass
        except Exception:  # timed out, or gone
            pass

    # -- routes ---------------------------------------------------------------

    async def route(self, request, rest):
        """``/api/update/<rest>``: the three routes below, or ``404``."""
        method = request.method
        if rest == "files" and method == "GET":
            return await self.listing(request)
        if rest[:6] == "files/" and method == "PUT":
            return await self.put(request, rest[6:])
        if rest == "commit" and method == "POST":
            return await self.commit(request)
        return {"error": "no such update route: %s /api/update/%s" % (method, rest)}, 404

    async def listing(self, request):
        """``GET /api/update/files``: hashes of the app's files and of the staged ones."""
        no = self.refuse(request)
        if no:
            return no
        # pending: a deploy waits for its app to be kept (boot.py's /.previous)
        return _listing(_exists(".previous")), 200, {"Content-Type": "application/json"}

    async def put(self, request, path):
        """``PUT /api/update/files/<path>?sha256=<hex>[&file=i/n]``."""
        no = self.refuse(request)
        if not no:
            no = self._check_put(request, path)
        if no:
            await self._drain(request)
            return no
        self.busy = path
        if self._status_at is None:
            self._status_at = time.ticks_ms()
            self.app.status.report("update", "receiving an update from %s"
                                   % request.client_addr[0], {"phase": "receiving"})
        return await _receive(request, self, path)

    def _check_put(self, request, path):
        path = "/" + path
        try:
            app_path(path)
        except ValueError as exc:
            return {"error": "%s: %s" % (path, exc), "field": "path"}, 400
        sha = request.args.get("sha256", "")
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            return {"error": "give the file's sha256 as ?sha256=<64 hex digits>",
                    "field": "sha256"}, 400
        length = request.content_length
        if length > MAX_FILE:
            return {"error": "%s: %d bytes, over the %d an upload may have"
                             % (path, length, MAX_FILE), "field": "body"}, 413
        if self.busy is not None:
            return {"error": "another upload (%s) is running; try again when it ends"
                             % self.busy}, 409
        free = flash_free()
        if length + SPARE > free:
            return {"error": "%s: %d bytes do not fit: %d free on the flash, %d kept spare"
                             % (path, length, free, SPARE)}, 507
        return None

    async def commit(self, request):
        """``POST /api/update/commit``: stage the plan, restart to apply it."""
        no = self.refuse(request)
        if no:
            return no
        try:
            plan = request.json
        except ValueError:
            plan = None
        if not isinstance(plan, dict) or not isinstance(plan.get("copy"), list) \
                or not isinstance(plan.get("delete"), list):
            return {"error": 'send JSON: {"copy": [paths], "delete": [paths]}',
                    "field": "body"}, 400
        for key in ("copy", "delete"):
            for path in plan[key]:
                try:
                    app_path(path)
                except ValueError as exc:
                    return {"error": "%s: %s" % (path, exc), "field": key}, 400
        missing = [p for p in plan["copy"] if not _exists(STAGING + p)]
        if missing:
            return {"error": "not staged yet: " + ", ".join(missing), "missing": missing}, 409
        copy = []
        for path in plan["copy"]:
            if path in _BOOT_FILES:  # what reads the plan: in place first, by a rename
                _move(STAGING + path, path[1:])
            else:
                copy.append(path)
        with open(STAGING + "/.swap.new", "w") as f:
            json.dump({"copy": copy, "delete": plan["delete"]}, f)
        _move(STAGING + "/.swap.new", STAGING + "/.swap")  # the plan: last
        self.app.status.report("update", "%d files staged, %d to remove; restarting to put "
                               "them in place" % (len(plan["copy"]), len(plan["delete"])),
                               {"phase": "restarting", "copy": len(plan["copy"]),
                                "delete": len(plan["delete"])})
        self.received = 0
        self._status_at = None
        asyncio.create_task(self._restart())
        return {"restarting": True, "copy": len(plan["copy"]), "delete": len(plan["delete"])}

    async def _restart(self):
        await asyncio.sleep_ms(500)  # the answer and the status event go out first
        self.app.board.restart()

    def received_one(self, path, size, of):
        """A file was staged: a status event now and then (the first, the
        last, and one every 2 s between)."""
        self.received += 1
        now = time.ticks_ms()
        last = of and self.received >= of
        if last or self.received == 1 or time.ticks_diff(now, self._status_at) >= _STATUS_MS:
            self._status_at = now
            self.app.status.report("update", "received %s (%d bytes)%s"
                                   % (path, size, ", %d of %d files" % (self.received, of)
                                      if of else ""),
                                   {"phase": "receiving", "files": self.received,
                                    "of": of or None})


def _file_of(request):
    # the n of ?file=i/n (the host's count of files to send), or 0
    try:
        return int(request.args.get("file", "").partition("/")[2])
    except ValueError:
        return 0


async def _receive(request, update, path):
    # stream the body into /.staging/.part, hashing it; keep it under its
    # path if the sha256 matches
    length = request.content_length
    want = request.args["sha256"]
    tmp = STAGING + "/.part"
    stream = _Body(request.stream[0], request.stream[1], length)
    gc.collect()  # the heap is short on a board running from .mpy files
    buf = memoryview(bytearray(_CHUNK))
    h = hashlib.sha256()
    got = 0
    try:
        _makedirs(tmp)
        with open(tmp, "wb") as f:
            while got < length:
                n = await asyncio.wait_for(stream.readinto(buf[:min(_CHUNK, length - got)]),
                                           _READ_S)
                if not n:
                    break
                f.write(buf[:n])
                h.update(buf[:n])
                got += n
        if got < length:
            raise ValueError("cut short at %d of %d bytes" % (got, length))
        digest = binascii.hexlify(h.digest()).decode()
        if digest != want:
            raise ValueError("sha256 %s is not the %s the plan says; not kept" % (digest, want))
        _move(tmp, STAGING + "/" + path)
    except Exception as exc:  # cut, timed out, mismatched, or the flash failed
        _remove(tmp)
        if isinstance(exc, asyncio.TimeoutError):
            exc = "no data for %d s" % _READ_S
        print("camwatch: update: /%s refused: %s" % (path, exc))
        return {"error": "/%s: %s" % (path, exc), "path": "/" + path}, 422
    finally:  # cancelled too (the client went away): the next upload may start
        update.busy = None
    update.received_one("/" + path, length, _file_of(request))
    return {"path": "/" + path, "size": length, "sha256": digest}
