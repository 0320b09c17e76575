"""``python -m tools test-hw``: run the on-VM suite (tests/vm) on a board.

The same tests that ``make test`` runs on the host's MicroPython VM run on
the board's own MicroPython, through mpremote's serial transport (a USB
board or the virtual board's pty alike):

1. check, as ``make deploy`` does, that the board can import the build;
   when the board does not hold the build (on its flash or in its ROMFS
   partition), deploy it as ``make deploy`` does, without settings: the
   tests import the built modules;
2. copy the test files into ``/.testhw`` on the board, with the repository
   files the tests read (``vmtest.source("...")``) and the virtual board's
   test helpers (e.g. ``camwatch/board/scenes``) compiled for the board when
   its build does not ship them;
3. for each test module: soft reset into the raw REPL (a fresh heap), run
   it with ``tests/vm/vmrun.py``, scratch files in ``.testhw/scratch``;
4. remove everything it copied and soft reset, so the app runs again.

Prints a pytest-style report (a line per module, failures with their
traceback, skips with their reason, a summary) and exits non-zero when a
test failed.
"""

import os
import re
import shutil
import sys
import tempfile
import time

from tools import ROOT, ToolError, boards, build, deploy, ports, remote
from tools.args import add_port_arg

TESTS_DIR = os.path.join(ROOT, "tests", "vm")
REMOTE_DIR = ".testhw"  # relative to / (the board's working directory)
_TEST_RE = re.compile(r"^(?:async )?def (test_\w+)\(", re.M)
_SOURCE_RE = re.compile(r"""vmtest\.source\(\s*["']([^"']+)["']\s*\)""")
_BOARD_MODULE_RE = re.compile(r"camwatch\.board\.(\w+)|from camwatch\.board import (\w+)")


class Outcome:
    """One test's result: ``status`` is "passed", "failed", "skipped" or "error"."""

    def __init__(self, module, name, status, detail=""):
        self.module, self.name, self.status, self.detail = module, name, status, detail

    @property
    def nodeid(self):
        return "%s.py::%s" % (self.module, self.name)


def collect(tests_dir=TESTS_DIR, select=None):
    """``[(module, [test names])]`` of the test_*.py files in ``tests_dir``.

    select: keep only tests whose "module.py::name" contains this string.
    """
    out = []
    for fname in sorted(os.listdir(tests_dir)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        with open(os.path.join(tests_dir, fname)) as f:
            names = _TEST_RE.findall(f.read())
        module = fname[:-3]
        if select:
            names = [n for n in names if select in "%s.py::%s" % (module, n)]
        if names:
            out.append((module, names))
    return out


def not_as_built(manifest, on_board):
    """The build's files the board would not use as built, as board paths.

    on_board: ``{path: sha256}`` of the board's files, a ROMFS partition's
    under ``/rom``. For each file, the copy the board finds first must match:
    the flash before ``/rom`` (our boot.py puts ``/lib`` before ``/rom/lib``
    on the import path).
    """
    out = []
    for entry in manifest["files"]:
        path = entry["path"]
        order = ["/" + path, "/rom/" + path]
        found = next((on_board[p] for p in order if p in on_board), None)
        if found != entry["sha256"]:
            out.append("/" + path)
    return out


def files_to_copy(tests_dir, board_id, manifest):
    """What the tests need on the board: ``[(local path, board path)]`` and
    the board paths of modules put among the app's files (to remove later).

    Every .py of ``tests_dir``; the repository files the tests name with
    ``vmtest.source()``; and the ``camwatch.board`` modules they import that
    this board's build lacks (the virtual board's scene camera on an ESP32),
    compiled with the board's -march into a temporary folder.
    """
    copies, sources, wanted = [], set(), set()
    for fname in sorted(os.listdir(tests_dir)):
        if not fname.endswith(".py"):
            continue
        path = os.path.join(tests_dir, fname)
        copies.append((path, "/%s/%s" % (REMOTE_DIR, fname)))
        with open(path) as f:
            text = f.read()
        sources.update(_SOURCE_RE.findall(text))
        for a, b in _BOARD_MODULE_RE.findall(text):
            wanted.add(a or b)
    for rel in sorted(sources):
        local = os.path.join(ROOT, rel)
        if not os.path.isfile(local):
            raise ToolError("a test reads %s with vmtest.source(), but it does not exist" % rel)
        copies.append((local, "/%s/src/%s" % (REMOTE_DIR, rel)))
    shipped = {e["path"] for e in manifest["files"]}
    extras = []
    arch = boards.get(board_id)["arch"]
    tmp = tempfile.mkdtemp(prefix="testhw-")
    for name in sorted(wanted):
        src = os.path.join(build.FIRMWARE_DIR, "camwatch", "board", name + ".py")
        target = "camwatch/board/%s.mpy" % name
        if not os.path.isfile(src) or target in shipped:
            continue
        out = os.path.join(tmp, name + ".mpy")
        build.compile_mpy(src, out, arch, "camwatch/board/%s.py" % name)
        copies.append((out, "/" + target))
        extras.append("/" + target)
    return copies, extras, tmp


_RUN = """\
import sys
sys.path.insert(0, %r)
import vmrun
vmrun.run(%r, %r, scratch=%r, sources=%r)
"""


class _Reader:
    """Turns what the board prints into outcomes, printing progress as it goes."""

    def __init__(self, module, out):
        self.module = module
        self.out = out
        self.buf = b""
        self.outcomes = []
        self.current = None
        self.trace = []
        self.other = []
        self.done = False

    def feed(self, data):
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self.line(line.rstrip(b"\r").decode("utf-8", "replace"))

    def _add(self, name, status, detail=""):
        self.outcomes.append(Outcome(self.module, name, status, detail))
        self.out.write({"passed": ".", "failed": "F", "skipped": "s"}[status])
        self.out.flush()

    def line(self, text):
        if self.current is not None:
            if text == "END " + self.current:
                self._add(self.current, "failed", "\n".join(self.trace))
                self.current = None
            else:
                self.trace.append(text)
        elif text.startswith("PASS "):
            self._add(text[5:], "passed")
        elif text.startswith("SKIP "):
            name, _, reason = text[5:].partition(" ")
            self._add(name, "skipped", reason)
        elif text.startswith("FAIL "):
            self.current, self.trace = text[5:], []
        elif text.startswith("DONE "):
            self.done = True
        else:
            self.other.append(text)


def run_module(t, port, module, names, timeout, out):
    """Run one test module on the board; return its outcomes."""
    from mpremote.transport import TransportError

    out.write("%s.py " % module)
    out.flush()
    reader = _Reader(module, out)
    error = None
    try:
        remote.enter_raw(t, port)
        # The plain raw REPL, not raw-paste: the unix VM runs pasted code with its
        # terminal's signals off, so Ctrl-C could not stop a hung test there.
        paste, t.use_raw_paste = t.use_raw_paste, False
        try:
            t.exec_raw_no_follow(_RUN % (REMOTE_DIR, module, names, REMOTE_DIR + "/scratch",
                                         REMOTE_DIR + "/src"))
        finally:
            t.use_raw_paste = paste
        _, err = t.follow(timeout, data_consumer=reader.feed)
        if reader.buf:
            reader.feed(b"\n")
        if err:
            error = err.decode("utf-8", "replace").strip()
    except TransportError as exc:
        error = ("the board printed nothing for %ss (%s); it may have hung or reset. Its last "
                 "output:\n%s" % (timeout, exc, "\n".join(reader.other[-20:] + reader.trace[-20:])))
    out.write("\n")
    seen = {o.name for o in reader.outcomes}
    if error or not reader.done:
        detail = error or ("the module stopped before its end; output:\n"
                           + "\n".join(reader.other[-30:]))
        for name in names:
            if name not in seen:
                reader.outcomes.append(Outcome(module, name, "error", detail))
    return reader.outcomes


def report(outcomes, seconds, out):
    """Print failures, the short summary and the totals line; return the exit status."""
    bad = [o for o in outcomes if o.status in ("failed", "error")]
    if bad:
        out.write("\n%s FAILURES %s\n" % ("=" * 30, "=" * 30))
        shown = set()
        for o in bad:
            key = (o.module, o.detail) if o.status == "error" else o.nodeid
            if key in shown:
                continue
            shown.add(key)
            title = o.nodeid if o.status == "failed" else "%s.py (module error)" % o.module
            out.write("%s %s %s\n%s\n" % ("_" * 10, title, "_" * 10, o.detail))
    skipped = [o for o in outcomes if o.status == "skipped"]
    if bad or skipped:
        out.write("%s short test summary info %s\n" % ("=" * 20, "=" * 20))
        for o in skipped:
            out.write("SKIPPED %s - %s\n" % (o.nodeid, o.detail))
        for o in bad:
            first = o.detail.strip().splitlines()[-1] if o.detail.strip() else ""
            out.write("%s %s - %s\n" % ("FAILED" if o.status == "failed" else "ERROR",
                                         o.nodeid, first))
    counts = []
    for status in ("failed", "error", "passed", "skipped"):
        n = sum(1 for o in outcomes if o.status == status)
        if n:
            counts.append("%d %s" % (n, status + "s" if status == "error" and n > 1 else status))
    out.write("%s %s in %.1fs %s\n" % ("=" * 10, ", ".join(counts) or "no tests ran", seconds,
                                        "=" * 10))
    out.flush()
    return 1 if bad or not outcomes else 0


def test_hw(port, board_id=None, tests_dir=TESTS_DIR, select=None, no_build=False,
            timeout=300, out=None, log=print):
    """Run the on-VM suite on the board on ``port``; return the exit status.

    board_id: the build to deploy first (default as ``make deploy``).
    tests_dir: the suite (default tests/vm). select: run only tests whose
    "module.py::name" contains it. no_build: deploy the existing build.
    timeout: seconds a test may print nothing before the run counts as hung.
    out: where the report goes (default stdout).
    """
    out = out or sys.stdout
    modules = collect(tests_dir, select)
    if not modules:
        raise ToolError("no tests in %s%s" % (tests_dir, " match %r" % select if select else ""))
    started = time.monotonic()
    t = remote.connect(port)
    outcomes, extras, tmp = [], [], None
    try:
        remote.enter_raw(t, port)
        board, manifest = deploy.prepare(t, port, board_id, no_build, command="test-hw", log=log)
        copies, extras, tmp = files_to_copy(tests_dir, board["id"], manifest)
        # Leftovers of an interrupted run go first, or the deploy would plan
        # to delete them at the next reset, after they were copied afresh.
        for path in [REMOTE_DIR] + extras:
            remote.remove_tree(t, path.lstrip("/"))
        stale = not_as_built(manifest, remote.device_files(t))
        if stale:
            log("test-hw: %d of the build's files are not on the board as built (%s%s); "
                "deploying first" % (len(stale), ", ".join(stale[:3]),
                                     ", ..." if len(stale) > 3 else ""))
            deploy.sync_files(t, port, board["id"], manifest, log=log)
        else:
            log("test-hw: the board holds this build (BOARD=%s, %d files)"
                % (board["id"], len(manifest["files"])))
        log("test-hw: %d test files to %s on %s (BOARD=%s)"
            % (len(copies), "/" + REMOTE_DIR, port, board["id"]))
        made = set()
        for local, target in copies:
            with open(local, "rb") as f:
                data = f.read()
            remote.mkdirs(t, target, made)
            remote.write(t, target, data)
        for module, names in modules:
            outcomes += run_module(t, port, module, names, timeout, out)
    finally:
        try:
            _clean_up(t, port, extras)
        finally:
            remote.close(t)
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
    return report(outcomes, time.monotonic() - started, out)


def _clean_up(t, port, extras):
    """Remove what the run copied, then soft reset so the app starts again."""
    from mpremote.transport import TransportError

    try:
        remote.enter_raw(t, port)
        remote.remove_tree(t, REMOTE_DIR)
        for path in extras:
            remote.remove_tree(t, path.lstrip("/"))
        t.exit_raw_repl()
        t.serial.write(b"\x04")  # Ctrl-D in the normal REPL: boot.py, then main.py
    except (ToolError, TransportError, OSError) as exc:
        print("test-hw: could not clean up %s on the board (%s); `make deploy PORT=%s` removes "
              "it" % ("/" + REMOTE_DIR, exc, port), file=sys.stderr)


def cmd_test_hw(args):
    port = ports.require(args.port, "test-hw")
    return test_hw(port, args.board, tests_dir=args.tests, select=args.k,
                   no_build=args.no_build, timeout=args.timeout)


def register(sub):
    p = sub.add_parser(
        "test-hw", help="run the on-VM test suite (tests/vm) on a connected board",
        description="Check that the board can import the app build, deploy it when the "
                    "board does not hold it (as `deploy`, without settings), copy tests/vm to "
                    "the board, run every test module there after a soft reset, print a "
                    "pytest-style report, remove the test files and restart the app. Exits 1 "
                    "when a test failed. Tests that need ESP32 hardware (camera, Wi-Fi scan, "
                    "temperature, LEDs) skip themselves elsewhere with a reason.")
    add_port_arg(p)
    p.add_argument("--board", default=os.environ.get("BOARD") or None,
                   help="boards.json id of the build the board should hold (default: vboard "
                        "on the virtual board, else esp32cam)")
    p.add_argument("-k", metavar="TEXT",
                   help="run only tests whose module.py::name contains TEXT")
    p.add_argument("--tests", default=TESTS_DIR, metavar="DIR",
                   help="the suite to run (default tests/vm)")
    p.add_argument("--no-build", action="store_true", help="use the existing build")
    p.add_argument("--timeout", type=float, default=300,
                   help="seconds a test may print nothing before it counts as hung "
                        "(default %(default)s)")
    p.set_defaults(func=cmd_test_hw)
