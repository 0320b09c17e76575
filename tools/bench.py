"""``make bench``: speed and memory figures, measured in one run.

Runs the MicroPython benchmarks in ``tests/bench/`` on the VM against the
virtual board's build (x64 .mpy, so viper is machine code), then measures the
heap of the whole app on a virtual board with 4 open streams and detection
running, against the budget in boards.json. Prints figures and ratios; it
asserts nothing.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

from tools import ROOT, boards, build

BENCH_DIR = os.path.join(ROOT, "tests", "bench")


def run_vm_bench(script, fs, heap):
    from tools.vboard import micropython_command

    env = dict(os.environ, MICROPYPATH=":".join([".frozen", fs, os.path.join(fs, "lib")]))
    proc = subprocess.run([micropython_command(), "-X", "heapsize=%d" % heap, script],
                          cwd=BENCH_DIR, env=env, capture_output=True, text=True, timeout=300)
    return proc.stdout + proc.stderr


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def heap_with_streams(fs, streams=4, seconds=30, log=print):
    """Run the app with ``streams`` open /events streams for ``seconds``;
    return (lowest free heap seen after collection, VM heap, events read)."""
    from tools.vboard import VirtualBoard

    flash = tempfile.mkdtemp(prefix="camwatch-bench-")
    shutil.copytree(fs, flash, dirs_exist_ok=True)
    with open(os.path.join(flash, "settings.json"), "w") as f:
        json.dump({"telemetry_s": 1}, f)
    vb = VirtualBoard(flash, os.path.join(flash, ".tty"), http_port=_free_port())
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
        low = None
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(1)
            with urllib.request.urlopen(vb.url + "api/status", timeout=5) as r:
                status = json.loads(r.read())
            low = status["heap_min_free"] if low is None else min(low, status["heap_min_free"])
        crashed = "MemoryError" in vb.console()
        return low, vb.heap, sum(counts), status, crashed
    finally:
        vb.stop()
        shutil.rmtree(flash, ignore_errors=True)


def main(seconds=30, log=print):
    build.build("vboard", log=log)
    fs = build.fs_dir("vboard")
    board = boards.get("vboard")
    heap = board["heap"]["vm_bytes"]
    for script in sorted(os.listdir(BENCH_DIR)):
        if script.startswith("bench_") and script.endswith(".py"):
            log("\n== %s (MicroPython VM, -X heapsize=%d)" % (script, heap))
            log(run_vm_bench(script, fs, heap).rstrip())

    log("\n== the app on the virtual board: 4 streams, detection running, %d s" % seconds)
    low, vm_heap, events, status, crashed = heap_with_streams(fs, 4, seconds, log)
    used = vm_heap - low
    budget = board["heap"]["budget_bytes"]
    log("heap: lowest free after collection %d of %d bytes: %d bytes in use at the peak"
        % (low, vm_heap, used))
    log("heap: budget %d bytes (64-bit VM, 2x the ESP32's 96 KB): %.0f%% used%s"
        % (budget, 100.0 * used / budget, ", MemoryError seen" if crashed else ", no MemoryError"))
    log("streams: %d events read by 4 clients; detection %.1f fps; %d published, %d dropped"
        % (events, status["fps"], status["published"], status["dropped"]))
