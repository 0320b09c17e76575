"""``python -m tools``: the camwatch host command line.

Each subcommand lives in its own module, which adds its parser in
``register(subparsers)``; the Makefile targets call these. The modules read
cli -> commands (build, flash, deploy, install, testhw, ...) -> helpers
(boards, ports, args, images, abi, remote, sync): nothing imports back up.
"""

import argparse
import os
import sys

from tools import ToolError, boards
from tools.args import add_board_arg


def cmd_boards(args):
    data = boards.load()["boards"]
    print("%-20s %-8s %-10s %-8s %s" % ("board", "chip", "arch", "offset", "name"))
    for bid in sorted(data):
        b = data[bid]
        print("%-20s %-8s %-10s %-8s %s" % (bid, b["chip"], b["arch"],
                                           (b["flash"] or {}).get("offset", "-"), b["name"]))


def cmd_build(args):
    from tools import build
    build.build(args.board)


def cmd_romfs(args):
    from tools import build
    build.build_romfs(args.board, args.output)


def cmd_firmware(args):
    from tools import firmware
    firmware.build_firmware(args.board, args.micropython_dir, camera_dir=args.camera_dir,
                            dry_run=args.dry_run)


def cmd_run(args):
    import json

    from tools import build, sync, vboard

    fs = build.fs_dir(args.board)
    romfs = None
    if args.romfs:
        romfs = os.path.join(build.build_dir(args.board), "romfs.img")
        if not args.no_build:
            # builds the tree too; only its "build:" line is news here
            build.build_romfs(args.board, romfs,
                              log=lambda line: line.startswith("build:") and print(line))
    elif not args.no_build:
        build.build(args.board)
    with open(os.path.join(build.build_dir(args.board), "manifest.json")) as f:
        manifest = json.load(f)
    if romfs:
        # a board with a romfs partition: its flash holds only what the
        # image does not (boot.py, main.py, board.json) besides its data
        manifest = dict(manifest, files=[e for e in manifest["files"]
                                         if e["path"] in vboard.FLASH_FILES])
    flash = args.flash or os.path.join(build.build_dir(args.board), "flash")
    sync.sync_folder(manifest, fs, flash)
    env = {"CAMWATCH_DNS_PORT": str(args.dns_port)}
    if args.fresh:
        env["CAMWATCH_FRESH"] = "1"
        for name in ("settings.json", "settings.json.new"):
            if os.path.exists(os.path.join(flash, name)):
                os.remove(os.path.join(flash, name))
        print("run: FRESH=1: settings erased; the board starts as from the box: access point, "
              "setup page at http://%s:%d/setup.html" % (args.host if args.host != "0.0.0.0"
                                                         else "127.0.0.1", args.http_port))
    if args.mqtt:
        set_broker(flash, args.mqtt)
    if args.sd:
        path = vboard.insert_sd(flash, args.sd)
        env["CAMWATCH_SD"] = vboard.SD_IMAGE
        print("run: a %d MB microSD card in the slot (%s); delete it to pull the card out"
              % (args.sd, path))
    tty = args.tty or os.path.join(build.build_dir(args.board), "tty")
    vb = vboard.VirtualBoard(flash, tty, http_port=args.http_port, host=args.host,
                             board_id=args.board, echo=sys.stdout.buffer, romfs=romfs, env=env)
    vboard.run_forever(vb)


def set_broker(flash, address):
    """``make run MQTT=host:port``: point the board's settings at a broker."""
    import json

    host, _, port = address.rpartition(":")
    if address == "off":
        host, port = "", "1883"
    elif not host or not port.isdigit():
        raise ToolError("MQTT=%s: give the broker as host:port, e.g. MQTT=127.0.0.1:1883 "
                        "(`make fleet` starts one)" % address)
    path = os.path.join(flash, "settings.json")
    values = {}
    if os.path.exists(path):
        try:
            with open(path) as f:
                values = json.load(f)
        except ValueError:
            values = {}
    values.update(mqtt_host=host, mqtt_port=int(port))
    with open(path, "w") as f:
        json.dump(values, f)
    if host:
        print("run: reporting to the MQTT broker at %s:%s (topics under camwatch/<hostname>/; "
              "kept in the board's settings until MQTT=off)" % (host, port))
    else:
        print("run: MQTT off")


def cmd_bench(args):
    from tools import bench
    bench.main(seconds=args.seconds, only=args.only)


def register_core(sub):
    p = sub.add_parser("boards", help="list the boards in boards.json")
    p.set_defaults(func=cmd_boards)

    p = sub.add_parser("build", help="build build/<board>/fs: the files a board holds")
    add_board_arg(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("romfs", help="build a ROMFS image of the board's modules and web assets")
    add_board_arg(p)
    p.add_argument("-o", "--output", help="image path (default build/<board>/romfs.img)")
    p.set_defaults(func=cmd_romfs)

    p = sub.add_parser("firmware", help="build a full firmware with the app frozen in "
                                        "(needs a MicroPython checkout and ESP-IDF)")
    add_board_arg(p)
    p.add_argument("--micropython-dir", default=os.environ.get("MICROPY_DIR"),
                   help="MicroPython source checkout (or MICROPY_DIR)")
    p.add_argument("--camera-dir", help="micropython-camera-API checkout (or CAMERA_API_DIR; "
                                        "default: next to the MicroPython checkout)")
    p.add_argument("--dry-run", action="store_true",
                   help="check what the build needs and print its commands without running them")
    p.set_defaults(func=cmd_firmware)

    p = sub.add_parser("bench", help="speed and memory figures: SSE formatting, detection, "
                                     "imports, heap with 4 streams (prints them and writes "
                                     "build/bench/results.json; asserts nothing)")
    p.add_argument("--seconds", type=int, default=20,
                   help="how long each 4-stream heap run lasts (default %(default)s)")
    p.add_argument("--only", action="append", metavar="SECTION",
                   help="run only this section (repeatable; tools/bench.py SECTIONS lists them)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("run", help="build and start the virtual board (Ctrl-C stops it)")
    add_board_arg(p, default="vboard")
    p.add_argument("--http-port", type=int, default=int(os.environ.get("HTTP_PORT") or 8080),
                   help="HTTP port of the dashboard (default %(default)s, or HTTP_PORT)")
    p.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1",
                   help="address to serve on; 0.0.0.0 lets a phone on the LAN in "
                        "(default %(default)s, or HOST)")
    p.add_argument("--flash", help="folder standing in for the board's flash "
                                   "(default build/<board>/flash; kept across runs)")
    p.add_argument("--tty", help="where to publish the REPL pty (default build/<board>/tty)")
    p.add_argument("--no-build", action="store_true", help="use the existing build")
    p.add_argument("--no-romfs", dest="romfs", action="store_false",
                   default=os.environ.get("ROMFS", "1") != "0",
                   help="run every module from the flash folder instead of from a ROMFS image "
                        "mounted at /rom (or ROMFS=0)")
    p.add_argument("--mqtt", metavar="HOST:PORT", default=os.environ.get("MQTT") or None,
                   help="report to this MQTT broker, kept in the board's settings; 'off' stops "
                        "reporting (or MQTT)")
    p.add_argument("--fresh", action="store_true", default=os.environ.get("FRESH") == "1",
                   help="start as a board straight from the box: settings erased, no Wi-Fi "
                        "network, so it opens its access point and setup page (or FRESH=1)")
    p.add_argument("--sd", type=int, metavar="MB", default=int(os.environ.get("SD") or 0),
                   help="give the board a microSD slot with a card of MB megabytes in it (a FAT "
                        "image in the flash folder, kept between runs; or SD=MB): motion "
                        "thumbnails are written to it")
    p.add_argument("--dns-port", type=int, default=int(os.environ.get("DNS_PORT") or 5353),
                   help="UDP port of the captive portal's DNS responder while the access point "
                        "is up (a board uses 53; default %(default)s, or DNS_PORT)")
    p.set_defaults(func=cmd_run)


def parser():
    ap = argparse.ArgumentParser(prog="python -m tools", description="camwatch host tools: build, flash, deploy, repl and the virtual board.")
    sub = ap.add_subparsers(dest="command", metavar="command")
    sub.required = True
    register_core(sub)
    from tools import deploy, flash, fleet, install, ota, testhw
    fleet.register(sub)
    flash.register(sub)
    ota.extend(deploy.register(sub))  # deploy over USB, or over Wi-Fi with --host
    install.register(sub)
    testhw.register(sub)
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except ToolError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
