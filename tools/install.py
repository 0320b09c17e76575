"""``python -m tools install``: a first run in one command.

Flash the board's pinned camera MicroPython when the board does not run one
(``tools.flash``), deploy the app and write the first-run settings
(``tools.deploy``, which refuses a build the board cannot import), follow
the console until the board reports its address, print it with a QR code.
"""

import os

from tools import ToolError, deploy, flash, ports, remote


# Runs on the board: print its platform and whether the camera module imports.
_CAMERA_PROBE = """\
import sys
try:
    import camera
    c = 1
except ImportError:
    c = 0
print(sys.platform, c)
"""


def runs_camera_micropython(port):
    """True when the board on ``port`` runs a MicroPython this app can use:
    the virtual board, or an ESP32 with the ``camera`` module. (Whether it
    can import this build is checked by the deploy that follows.)"""
    from mpremote.transport import TransportError

    try:
        t = remote.connect(port)
    except ToolError:
        return False
    try:
        t.enter_raw_repl(soft_reset=True)
        out = t.exec(_CAMERA_PROBE).decode().split()
        return out[0] == "linux" or out == ["esp32", "1"]
    except (TransportError, IndexError):
        return False
    finally:
        remote.close(t)


def cmd_install(args):
    port = ports.require(args.port, "install")
    secrets = None if args.no_provision else deploy.load_secrets(args.secrets)
    if runs_camera_micropython(port):
        print("install: MicroPython with camera support already on %s; not flashing" % port)
    else:
        board_id = args.board or "esp32cam"
        print("install: flashing MicroPython for %s" % board_id)
        flash.flash(board_id, port, args.firmware, url=args.firmware_url)
    url = deploy.deploy(port, args.board, secrets=secrets, wait=args.timeout, command="install")
    if not url:
        raise ToolError("the board did not report its address within %ss; "
                        "see what it prints with `make repl PORT=%s`" % (args.timeout, port))
    deploy.print_url(url)


def register(sub):
    p = sub.add_parser("install", help="first run: flash if needed, deploy, provision, "
                                       "print the dashboard URL")
    deploy.add_common_args(p)
    p.add_argument("--firmware", default=os.environ.get("FIRMWARE") or None,
                   help="MicroPython image to flash (default: the board's pinned camera image "
                        "from boards.json, downloaded and verified)")
    p.add_argument("--firmware-url", default=os.environ.get("FIRMWARE_URL") or None,
                   metavar="URL", help="download your own build from URL instead (or "
                                       "FIRMWARE_URL); see `flash --help`")
    p.add_argument("--timeout", type=float, default=60,
                   help="seconds to wait for the board to report its address")
    p.set_defaults(func=cmd_install)
