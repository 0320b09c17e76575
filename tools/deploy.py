"""``deploy``, ``repl`` and ``install``: putting the app on a board.

Deploy talks to the board through mpremote's serial transport (a USB board
or the virtual board's pty alike):

1. enter the raw REPL (a soft reset, so the app stops and the heap is fresh);
2. hash every file on the board and compare with the build manifest;
3. copy only what differs into ``/.staging``, then write ``/.staging/.swap``
   (the plan) last; ``boot.py`` is replaced on its own, atomically;
4. soft reset from the normal REPL: the new ``boot.py`` moves the staged
   files into place (finishing the swap even if power is cut mid-way) and
   ``main.py`` starts the new app.

An interrupted deploy therefore leaves the old app (no ``.swap`` yet: the
staging area is discarded at boot) or the new one, never half of each.
"""

import getpass
import hashlib
import json
import os
import re
import subprocess
import sys
import time

from tools import ROOT, ToolError, boards, build, ports, sync

SECRETS_FILE = os.path.join(ROOT, "secrets.json")
SECRET_KEYS = ("wifi_ssid", "wifi_password", "admin_password")
URL_RE = re.compile(rb"dashboard at (http://[^\s/]+/)")

# Code that runs on the board uses paths relative to / (the working directory
# on the board and on the virtual board): the unix VM's VfsPosix fails a rename
# when both paths are absolute.

# Runs on the board: print "<path> <sha256>" for every file.
_HASH_ALL = """\
import os, hashlib, binascii
def _walk(d):
    for e in os.ilistdir(d):
        p = (d if d != '/' else '') + '/' + e[0]
        if e[1] & 0x4000:
            _walk(p)
        else:
            h = hashlib.sha256()
            with open(p, 'rb') as f:
                while True:
                    b = f.read(1024)
                    if not b:
                        break
                    h.update(b)
            print(p, binascii.hexlify(h.digest()).decode())
_walk('/')
del _walk
"""

# Runs on the board: print the admin password's salt, if one is set.
_READ_SALT = """\
import json
try:
    with open('settings.json') as f:
        print(json.load(f).get('admin_salt') or '')
except (OSError, ValueError):
    print('')
"""

# Runs on the board: merge values into /settings.json, written atomically.
_PROVISION = """\
import json, os
try:
    with open('/settings.json') as f:
        _s = json.load(f)
except (OSError, ValueError):
    _s = {}
_n = json.loads(%r)
if any(_s.get(k) != v for k, v in _n.items()):
    _s.update(_n)
    with open('settings.json.new', 'w') as f:
        json.dump(_s, f)
    os.rename('settings.json.new', 'settings.json')
    print('changed')
else:
    print('same')
del _s, _n
"""


def _transport(port):
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    try:
        return SerialTransport(port, baudrate=115200)
    except TransportError as exc:
        raise ToolError("cannot open %s (%s): is it the board's port, and is another program "
                        "(make repl, a serial monitor) holding it?" % (port, exc))


def _enter_raw(t, port):
    from mpremote.transport import TransportError

    try:
        t.enter_raw_repl(soft_reset=True)
    except TransportError:
        raise ToolError("the board on %s does not answer MicroPython's raw REPL. Is MicroPython "
                        "flashed? (make flash PORT=%s) Is the port right?" % (port, port))


def _exec(t, code):
    from mpremote.transport import TransportExecError

    try:
        return t.exec(code).decode()
    except TransportExecError as exc:
        raise ToolError("the board failed running deploy code:\n%s" % exc.error_output)


def device_files(t):
    """``{path: sha256}`` of every file on the board."""
    out = {}
    for line in _exec(t, _HASH_ALL).splitlines():
        path, _, digest = line.strip().rpartition(" ")
        if path:
            out[path] = digest
    return out


def device_platform(t):
    return _exec(t, "import sys; print(sys.platform)").strip()


def check_board_matches(board, platform, port):
    """Refuse to put an ESP32 build on the virtual board or vice versa."""
    virtual = board["chip"] == "unix"
    if virtual != (platform == "linux"):
        real = "the virtual board" if platform == "linux" else "a %s board" % platform
        hint = "vboard" if platform == "linux" else "esp32cam (or another ESP32 board)"
        raise ToolError("%s is %s but BOARD=%s builds for %s; use BOARD=%s"
                        % (port, real, board["id"], board["name"], hint))


def load_secrets(path=SECRETS_FILE, interactive=None):
    """The first-run secrets: from ``path``, else asked on a terminal, else None."""
    if os.path.exists(path):
        try:
            with open(path) as f:
                data = json.load(f)
        except ValueError as exc:
            raise ToolError("%s is not valid JSON (%s); fix it or delete it to be asked again"
                            % (path, exc))
        unknown = sorted(set(data) - set(SECRET_KEYS))
        if unknown:
            raise ToolError("%s has unknown keys %s; allowed: %s"
                            % (path, ", ".join(unknown), ", ".join(SECRET_KEYS)))
        return data
    if interactive is None:
        interactive = sys.stdin.isatty()
    if not interactive:
        return None
    print("First-run settings (kept in %s, which git ignores):" % os.path.relpath(path))
    data = {
        "wifi_ssid": input("  Wi-Fi network name (empty: the board makes its own access point): "),
        "wifi_password": getpass.getpass("  Wi-Fi password: "),
        "admin_password": getpass.getpass("  admin password for changing settings: "),
    }
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
    os.chmod(path, 0o600)
    return data


def admin_hash(password, salt=None):
    """``(salt, hash)`` for the admin password, as the board checks it:
    hex sha256 of salt + password, with a random salt unless one is given."""
    salt = salt or os.urandom(8).hex()
    return salt, hashlib.sha256((salt + password).encode()).hexdigest()


def provision(t, secrets, log=print):
    """Write Wi-Fi and admin secrets into the board's settings.json.

    The admin password is stored as a salted sha256, never in clear; the
    board's existing salt is kept, so an unchanged password leaves the file
    untouched.
    """
    values = {}
    if "wifi_ssid" in secrets:
        values["wifi_ssid"] = secrets["wifi_ssid"]
    if "wifi_password" in secrets:
        values["wifi_password"] = secrets["wifi_password"]
    if secrets.get("admin_password"):
        salt = _exec(t, _READ_SALT).strip() or None
        values["admin_salt"], values["admin_hash"] = admin_hash(secrets["admin_password"], salt)
    result = _exec(t, _PROVISION % json.dumps(values)).strip()
    names = sorted(k for k in values if not k.startswith("admin_"))
    if "admin_hash" in values:
        names.append("admin_password")
    log("provision: %s (%s)" % ("settings written" if result == "changed" else "settings unchanged",
                                ", ".join(names)))


def _write(t, path, data):
    from mpremote.transport import TransportError

    try:
        t.fs_writefile(path, data, chunk_size=512)
    except (TransportError, OSError) as exc:
        raise ToolError("writing %s failed: %s (the board keeps its old app; run the deploy again)"
                        % (path, exc))


def _mkdirs(t, path, made):
    parts = path.split("/")[1:-1]
    for i in range(1, len(parts) + 1):
        d = "/" + "/".join(parts[:i])
        if d not in made:
            _exec(t, "import os\ntry:\n os.mkdir(%r)\nexcept OSError:\n pass" % d)
            made.add(d)


def follow_console(t, until, timeout, log=print):
    """Print board output line by line until ``until`` (a bytes regex) matches.

    Returns the match, or None after ``timeout`` seconds.
    """
    buf = b""
    deadline = time.monotonic() + timeout
    t.serial.timeout = 0.1
    while time.monotonic() < deadline:
        data = t.serial.read(256)
        if not data:
            continue
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            text = line.rstrip(b"\r").decode("utf-8", "replace")
            if text.strip():
                log("  board| " + text)
            m = until.search(line)
            if m:
                return m
    return None


def deploy(port, board_id=None, no_build=False, secrets=None, log=print, wait=20):
    """Sync the build to the board on ``port``; return the dashboard URL the
    board printed after its reset, or None if it printed none in ``wait`` s.

    :param board_id: boards.json id; default: vboard for the virtual board's
                     port, else esp32cam.
    :param secrets: dict of first-run settings to provision, or None.
    """
    t = _transport(port)
    try:
        _enter_raw(t, port)
        platform = device_platform(t)
        board_id = board_id or ("vboard" if platform == "linux" else "esp32cam")
        board = boards.get(board_id)
        check_board_matches(board, platform, port)
        if no_build:
            with open(os.path.join(build.build_dir(board_id), "manifest.json")) as f:
                manifest = json.load(f)
        else:
            manifest = build.build(board_id, log=log)
        fs = build.fs_dir(board_id)

        # No leftovers of an interrupted deploy here: entering the raw REPL
        # soft-reset the board, and its boot.py finished or discarded them.
        on_board = device_files(t)
        copy, delete = sync.plan(manifest, on_board)
        log("deploy: %d to copy, %d to remove, %d unchanged on %s"
            % (len(copy), len(delete), len(manifest["files"]) - len(copy), port))

        made = set()
        staged = [p for p in copy if p != "/boot.py"]
        for i, path in enumerate(staged, 1):
            with open(os.path.join(fs, path[1:]), "rb") as f:
                data = f.read()
            log("  [%d/%d] %s (%d bytes)" % (i, len(staged), path, len(data)))
            _mkdirs(t, "/.staging" + path, made)
            _write(t, "/.staging" + path, data)
        if "/boot.py" in copy:
            with open(os.path.join(fs, "boot.py"), "rb") as f:
                data = f.read()
            log("  /boot.py (%d bytes, replaced atomically)" % len(data))
            _write(t, "/boot.py.new", data)
            _exec(t, "import os\nos.rename('boot.py.new', 'boot.py')")
        if staged or delete:
            _mkdirs(t, "/.staging/.swap", made)
            _write(t, "/.staging/.swap", json.dumps({"copy": staged, "delete": delete}).encode())
        if secrets:
            provision(t, secrets, log=log)

        log("deploy: soft reset")
        t.exit_raw_repl()
        t.serial.reset_input_buffer()
        t.serial.write(b"\x04")  # Ctrl-D in the normal REPL: boot.py, then main.py
        m = follow_console(t, URL_RE, wait, log=log)
        url = m.group(1).decode() if m else None
        if url is None:
            log("deploy: the board printed no dashboard address within %ss; "
                "watch it with `make repl PORT=%s`" % (wait, port))
        return url
    finally:
        try:
            t.close()
        except OSError:
            pass


def board_runs_camera_micropython(port):
    """True when the board on ``port`` runs a MicroPython this app can use:
    the virtual board, or an ESP32 with the ``camera`` module."""
    from mpremote.transport import TransportError

    try:
        t = _transport(port)
    except ToolError:
        return False
    try:
        t.enter_raw_repl(soft_reset=True)
        out = t.exec("import sys\ntry:\n import camera\n c=1\nexcept ImportError:\n c=0\n"
                     "print(sys.platform, c)").decode().split()
        return out[0] == "linux" or out == ["esp32", "1"]
    except (TransportError, IndexError):
        return False
    finally:
        try:
            t.close()
        except OSError:
            pass


def print_url(url, log=print):
    log("")
    log("camwatch dashboard: %s" % url)
    try:
        import io

        import qrcode

        qr = qrcode.QRCode(border=1)
        qr.add_data(url)
        out = io.StringIO()
        qr.print_ascii(out=out, invert=True)
        log("scan with your phone:\n" + out.getvalue())
    except ImportError:
        pass


def cmd_deploy(args):
    port = ports.require(args.port, "deploy")
    secrets = None if args.no_provision else load_secrets(args.secrets)
    url = deploy(port, args.board, no_build=args.no_build, secrets=secrets)
    if url:
        log_url = "deploy: done; dashboard at %s" % url
        print(log_url)


def cmd_install(args):
    port = ports.require(args.port, "install")
    secrets = None if args.no_provision else load_secrets(args.secrets)
    if board_runs_camera_micropython(port):
        print("install: MicroPython with camera support already on %s; not flashing" % port)
    else:
        from tools import flash

        board_id = args.board or "esp32cam"
        print("install: flashing MicroPython for %s" % board_id)
        flash.flash(board_id, port, args.firmware)
    url = deploy(port, args.board, secrets=secrets, wait=args.timeout)
    if not url:
        raise ToolError("the board did not report its address within %ss; "
                        "see what it prints with `make repl PORT=%s`" % (args.timeout, port))
    print_url(url)


def cmd_repl(args):
    port = ports.require(args.port, "repl")
    print("REPL on %s: Ctrl-] or Ctrl-x leaves, Ctrl-D soft-resets the board, Ctrl-C stops the app"
          % port)
    return subprocess.call([sys.executable, "-m", "mpremote", "connect", port, "resume", "repl"])


def register(sub):
    def common(p):
        p.add_argument("--port", default=os.environ.get("PORT") or None,
                       help="serial port of the board (or PORT); build/vboard/tty for the "
                            "virtual board")
        p.add_argument("--board", default=os.environ.get("BOARD") or None,
                       help="boards.json id (default: vboard on the virtual board, else esp32cam)")
        p.add_argument("--secrets", default=SECRETS_FILE,
                       help="first-run settings file (default secrets.json, git-ignored; "
                            "asked for when missing and run from a terminal)")
        p.add_argument("--no-provision", action="store_true",
                       help="do not write Wi-Fi/admin settings to the board")

    p = sub.add_parser("deploy", help="build and copy the app to a board (only changed files), "
                                      "then soft reset")
    common(p)
    p.add_argument("--no-build", action="store_true", help="deploy the existing build")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("install", help="first run: flash if needed, deploy, provision, "
                                       "print the dashboard URL")
    common(p)
    p.add_argument("--firmware", default=os.environ.get("FIRMWARE") or None,
                   help="MicroPython image to flash (default: the board's image from boards.json)")
    p.add_argument("--timeout", type=float, default=60,
                   help="seconds to wait for the board to report its address")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser("repl", help="open the board's REPL (mpremote)")
    p.add_argument("--port", default=os.environ.get("PORT") or None, help="serial port (or PORT)")
    p.set_defaults(func=cmd_repl)
