"""``deploy`` and ``repl``: putting the app on a board, and talking to it.

Deploy talks to the board through mpremote's serial transport (a USB board
or the virtual board's pty alike):

1. enter the raw REPL (a soft reset, so the app stops and the heap is fresh);
   read what MicroPython the board runs and refuse a build it cannot import
   (``tools.abi``), before anything is copied;
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

from tools import ROOT, ToolError, abi, boards, build, ports, remote, sync
from tools.args import add_port_arg

SECRETS_FILE = os.path.join(ROOT, "secrets.json")
SECRET_KEYS = ("wifi_ssid", "wifi_password", "admin_password")
URL_RE = re.compile(rb"dashboard at (http://[^\s/]+/)")

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


def check_board_matches(board, found, port):
    """Refuse a build for another kind of board than the one on ``port``.

    found: the board's ``tools.abi.board_abi``. An ESP32 build on the virtual
    board (or the reverse), or an ESP32-S3 board's build on a plain ESP32,
    would import but drive the wrong pins.
    """
    chip = abi.board_chip(found)
    if chip is None or chip == board["chip"]:
        return
    real = "the virtual board" if chip == "unix" else "an %s board" % chip
    hint = abi.matching_boards(found, boards.load()["boards"])
    raise ToolError("%s is %s but BOARD=%s builds for %s (%s); use %s"
                    % (port, real, board["id"], board["name"], board["chip"],
                       " or ".join("BOARD=" + h for h in hint) or "a board listed by make boards"))


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
        salt = remote.run(t, _READ_SALT).strip() or None
        values["admin_salt"], values["admin_hash"] = admin_hash(secrets["admin_password"], salt)
    result = remote.run(t, _PROVISION % json.dumps(values)).strip()
    names = sorted(k for k in values if not k.startswith("admin_"))
    if "admin_hash" in values:
        names.append("admin_password")
    log("provision: %s (%s)" % ("settings written" if result == "changed" else "settings unchanged",
                                ", ".join(names)))


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


def default_board(found):
    """The board id to build for when BOARD is not given: vboard on the
    virtual board, else esp32cam (an ESP32-S3 board is then refused by
    ``check_board_matches`` with the S3 boards to choose from)."""
    return "vboard" if abi.board_chip(found) == "unix" else "esp32cam"


def build_manifest(board_id, no_build=False, log=print):
    """The build's manifest for ``board_id``: built now, or with
    ``no_build`` the existing build's (ToolError when there is none, or one
    from before the ABI record)."""
    if not no_build:
        return build.build(board_id, log=log)
    path = os.path.join(build.build_dir(board_id), "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except OSError:
        raise ToolError("no build for %s yet (%s missing); run without --no-build"
                        % (board_id, path))
    if "mpy" not in manifest:
        raise ToolError("%s predates the ABI record; run without --no-build" % path)
    return manifest


def prepare(t, port, board_id=None, no_build=False, command="deploy", log=print):
    """Check, before anything is copied, that the build fits the board on ``port``.

    t: a transport in the raw REPL. Reads what the board runs, builds (or,
    with ``no_build``, reads the existing build's manifest) and refuses a
    build the board cannot import (``tools.abi.check``) or one for another
    kind of board. command: the make target named in messages.
    Returns ``(board, manifest)``.
    """
    found = remote.probe(t)
    board_id = board_id or default_board(found)
    board = boards.get(board_id)
    manifest = build_manifest(board_id, no_build, log=log)
    abi.check(manifest["mpy"], found, board_id, port, boards.load()["boards"], command=command)
    check_board_matches(board, found, port)
    return board, manifest


def sync_files(t, port, board_id, manifest, log=print):
    """Stage what differs between the board and the build, the plan last.

    The board's boot.py moves the staged files into place at its next
    (soft) reset. Returns ``(copied, deleted)`` board paths.
    """
    fs = build.fs_dir(board_id)
    # No leftovers of an interrupted deploy here: entering the raw REPL
    # soft-reset the board, and its boot.py finished or discarded them.
    on_board = remote.device_files(t)
    copy, delete = sync.plan(manifest, on_board)
    log("deploy: %d to copy, %d to remove, %d unchanged on %s"
        % (len(copy), len(delete), len(manifest["files"]) - len(copy), port))

    made = set()
    staged = [p for p in copy if p not in sync.BOOT_FILES]
    for i, path in enumerate(staged, 1):
        with open(os.path.join(fs, path[1:]), "rb") as f:
            data = f.read()
        log("  [%d/%d] %s (%d bytes)" % (i, len(staged), path, len(data)))
        remote.mkdirs(t, "/.staging" + path, made)
        remote.write(t, "/.staging" + path, data)
    for path in sync.BOOT_FILES:
        if path not in copy:
            continue
        with open(os.path.join(fs, path[1:]), "rb") as f:
            data = f.read()
        log("  %s (%d bytes, replaced atomically)" % (path, len(data)))
        remote.write(t, path + ".new", data)
        remote.run(t, "import os\nos.rename(%r, %r)" % (path[1:] + ".new", path[1:]))
    if staged or delete:
        remote.mkdirs(t, "/.staging/.swap", made)
        remote.write(t, "/.staging/.swap", json.dumps({"copy": staged, "delete": delete}).encode())
    return copy, delete


def restart(t, port, wait=20, log=print):
    """Leave the raw REPL and soft-reset: boot.py, then main.py starts the app.

    Returns the dashboard URL the board printed, or None after ``wait`` s.
    """
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


def deploy(port, board_id=None, no_build=False, secrets=None, log=print, wait=20,
           command="deploy"):
    """Sync the build to the board on ``port``; return the dashboard URL the
    board printed after its reset, or None if it printed none in ``wait`` s.

    :param board_id: boards.json id; default: vboard for the virtual board's
                     port, else esp32cam.
    :param secrets: dict of first-run settings to provision, or None.
    :param command: the make target named in error messages.

    Nothing is copied when the board cannot import the build (``tools.abi``).
    """
    t = remote.connect(port)
    try:
        remote.enter_raw(t, port)
        board, manifest = prepare(t, port, board_id, no_build, command=command, log=log)
        sync_files(t, port, board["id"], manifest, log=log)
        if secrets:
            provision(t, secrets, log=log)
        return restart(t, port, wait=wait, log=log)
    finally:
        remote.close(t)


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
    try:
        port = ports.require(args.port, "deploy")
    except ToolError as exc:
        raise ToolError("%s\nOr over Wi-Fi, to a board that runs the app: make deploy "
                        "HOST=camwatch.local (its name or address)" % exc)
    secrets = None if args.no_provision else load_secrets(args.secrets)
    url = deploy(port, args.board, no_build=args.no_build, secrets=secrets)
    if url:
        log_url = "deploy: done; dashboard at %s" % url
        print(log_url)


def cmd_repl(args):
    port = ports.require(args.port, "repl")
    print("REPL on %s: Ctrl-] or Ctrl-x leaves, Ctrl-D soft-resets the board, Ctrl-C stops the app"
          % port)
    return subprocess.call([sys.executable, "-m", "mpremote", "connect", port, "resume", "repl"])


def add_common_args(p):
    """The options deploy and install share."""
    add_port_arg(p)
    p.add_argument("--board", default=os.environ.get("BOARD") or None,
                   help="boards.json id (default: vboard on the virtual board, else esp32cam)")
    p.add_argument("--secrets", default=SECRETS_FILE,
                   help="first-run settings file (default secrets.json, git-ignored; "
                        "asked for when missing and run from a terminal)")
    p.add_argument("--no-provision", action="store_true",
                   help="do not write Wi-Fi/admin settings to the board")


def register(sub):
    p = sub.add_parser("deploy", help="build and copy the app to a board (only changed files), "
                                      "then soft reset",
                       description="Build the app for the board, check that the board's "
                                   "MicroPython can import it (mpy version and architecture), "
                                   "copy only the files that differ, then soft reset.")
    add_common_args(p)
    p.add_argument("--no-build", action="store_true", help="deploy the existing build")
    p.set_defaults(func=cmd_deploy)
    deploy_parser = p

    p = sub.add_parser("repl", help="open the board's REPL (mpremote)")
    add_port_arg(p)
    p.set_defaults(func=cmd_repl)
    return deploy_parser
