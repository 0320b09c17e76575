"""``make fleet``: several virtual boards and one Mosquitto on this machine.

Each board is a virtual board of its own (``build/fleet/cam<i>/`` is its
flash, kept across runs), with its own host name (``cam<i>``), HTTP port and
unique id, reporting to one Debian ``mosquitto`` started here. What a
household with a few cameras and Home Assistant looks like, on one machine:
``mosquitto_sub -p <port> -v -t 'camwatch/#'`` shows the events of all.
"""

import json
import os
import signal
import sys
import time

from tools import ROOT, ToolError

FLEET_DIR = os.path.join(ROOT, "build", "fleet")


class _Prefixed:
    """A console echo that starts every line with the board's name."""

    def __init__(self, name, out):
        self.prefix = (name + "| ").encode()
        self.out = out
        self.at_start = True

    def write(self, data):
        lines = data.split(b"\n")
        for i, line in enumerate(lines):
            if i:
                self.out.write(b"\n")
                self.at_start = True
            if line:
                if self.at_start:
                    self.out.write(self.prefix)
                    self.at_start = False
                self.out.write(line)

    def flush(self):
        self.out.flush()


class Fleet:
    """A broker and ``n`` virtual boards reporting to it.

    :param n: how many boards.
    :param folder: where each board's flash (``cam<i>/``) and the broker's
        files (``mosquitto/``) go.
    :param broker_port: the broker's port (a free one when None).
    :param http_ports: each board's HTTP port (free ones when None).
    :param settings: more settings for every board (``telemetry_s``...).
    :param echo: a binary stream for the boards' consoles, or None.
    """

    def __init__(self, n, folder=FLEET_DIR, broker_port=None, http_ports=None, settings=None,
                 echo=None):
        from tools.mosquitto import Broker, free_port

        if n < 1:
            raise ToolError("a fleet needs at least one board (N=1 or more)")
        self.folder = folder
        self.broker = Broker(os.path.join(folder, "mosquitto"), port=broker_port)
        self.http_ports = list(http_ports or [free_port() for _ in range(n)])
        if len(self.http_ports) != n:
            raise ToolError("give one HTTP port per board")
        self.n = n
        self.settings = dict(settings or {})
        self.echo = echo
        self.boards = []  # [(name, VirtualBoard)]

    def start(self, wait=True):
        from tools import build
        from tools.vboard import VirtualBoard, prepare_flash

        build.build_romfs("vboard", log=lambda *a: None)
        if self.broker.proc is None:  # a caller may start it first, to listen from the start
            self.broker.start()
        for i in range(1, self.n + 1):
            name = "cam%d" % i
            flash = os.path.join(self.folder, name)
            image = prepare_flash(flash, "vboard", True)
            path = os.path.join(flash, "settings.json")
            values = {}
            if os.path.exists(path):  # kept across runs: what was set stays
                try:
                    with open(path) as f:
                        values = json.load(f)
                except ValueError:
                    values = {}
            values.update(self.settings)
            values.update(hostname=name, mqtt_host="127.0.0.1", mqtt_port=self.broker.port)
            with open(path, "w") as f:
                json.dump(values, f)
            vb = VirtualBoard(flash, os.path.join(flash, "tty"), http_port=self.http_ports[i - 1],
                              romfs=image, env={"CAMWATCH_ID": "f1ee70%06x" % i},
                              echo=_Prefixed(name, self.echo) if self.echo else None)
            self.boards.append((name, vb))
            vb.start()
        if wait:
            for name, vb in self.boards:
                vb.wait_http(timeout=60)
        return self

    def stop(self):
        for name, vb in self.boards:
            vb.stop()
        self.broker.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def run(n, broker_port=None, http_port=None, log=print):
    """``make fleet``: start, print where everything is, stop on Ctrl-C."""
    from tools.mosquitto import free_port

    if broker_port is None:
        broker_port = free_port()
    ports = [http_port + i for i in range(n)] if http_port else None

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    fleet = Fleet(n, broker_port=broker_port, http_ports=ports, echo=sys.stdout.buffer)
    try:
        fleet.start()
        log("fleet: mosquitto on 127.0.0.1:%d; watch every board with:" % fleet.broker.port)
        log("fleet:   mosquitto_sub -p %d -v -t 'camwatch/#'" % fleet.broker.port)
        log("fleet: Home Assistant: add the MQTT integration with broker 127.0.0.1, port %d; "
            "the boards appear as devices cam1..cam%d" % (fleet.broker.port, n))
        for name, vb in fleet.boards:
            log("fleet: %s dashboard %s  (REPL: mpremote connect %s)"
                % (name, vb.url, os.path.relpath(vb.tty_link, os.getcwd())))
        log("fleet: Ctrl-C stops them all")
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        log("\nfleet: stopping")
    finally:
        fleet.stop()


def register(sub):
    p = sub.add_parser("fleet", help="a Mosquitto broker and N virtual boards reporting to it "
                                     "(Ctrl-C stops them all)")
    p.add_argument("--boards", "-n", type=int, default=int(os.environ.get("N") or 3),
                   help="how many boards (default %(default)s, or N)")
    p.add_argument("--broker-port", type=int,
                   default=int(os.environ["MQTT_PORT"]) if os.environ.get("MQTT_PORT") else None,
                   help="the broker's port (default: a free one, or MQTT_PORT)")
    p.add_argument("--http-port", type=int,
                   default=int(os.environ["HTTP_PORT"]) if os.environ.get("HTTP_PORT") else None,
                   help="the first board's HTTP port; the next boards get the ports after it "
                        "(default: free ones, or HTTP_PORT)")
    p.set_defaults(func=lambda args: run(args.boards, args.broker_port, args.http_port))
