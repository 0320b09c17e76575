"""`make test-hw PORT=...`: the on-VM suite run on a board through mpremote,
here the virtual board's pty (what a USB board's port is to the tool)."""

import os
import re
import shutil
import subprocess
import sys
import urllib.request

from conftest import ROOT, VM_TESTS
from test_deploy import make
from tools import build, sync, testhw

SUMMARY = re.compile(r"^=+ (.*) in [0-9.]+s =+$", re.M)


def test_the_whole_suite_passes_on_the_virtual_board_and_leaves_it_as_it_was(vboard):
    before = sync.local_hashes(vboard.flash)
    r = make("test-hw", "PORT=" + vboard.tty_link, timeout=900)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    out = r.stdout
    modules = testhw.collect(VM_TESTS)
    total = sum(len(names) for _, names in modules)
    hw = dict(modules)["test_esp32_hw"]
    for module, names in modules:  # one progress line per module
        assert re.search(r"^%s\.py [.s]{%d}$" % (module, len(names)), out, re.M), module
    for name in hw:  # the ESP32-only tests say why they did not run
        assert ("SKIPPED test_esp32_hw.py::%s - esp32 hardware only (this is sys.platform "
                "'linux'): run `make test-hw PORT=...` with a board connected" % name) in out
    assert SUMMARY.search(out).group(1) == "%d passed, %d skipped" % (total - len(hw), len(hw))
    # nothing of the run is left on the board, and the app is back
    assert sync.local_hashes(vboard.flash) == before
    vboard.wait_http(timeout=30)
    with urllib.request.urlopen(vboard.url + "api/status", timeout=10) as resp:
        assert resp.status == 200


def run_tool(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "tools", "test-hw"] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_failures_errors_hangs_and_skips_are_reported(vboard, tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    for name in ("vmrun.py", "vmtest.py"):
        shutil.copy(os.path.join(VM_TESTS, name), suite / name)
    (suite / "test_a_hang.py").write_text(
        "import time\n\ndef test_never_ends():\n    time.sleep(60)\n")
    (suite / "test_b_demo.py").write_text(
        "import vmtest\n\n"
        "def test_passes():\n    assert vmtest.scratch('x').endswith('/x')\n\n"
        "def test_fails():\n    assert 1 == 2, 'boom'\n\n"
        "def test_skips():\n    vmtest.skip('not here')\n\n"
        "async def test_async_passes():\n    import asyncio\n    await asyncio.sleep_ms(1)\n")
    (suite / "test_c_broken.py").write_text(
        "import no_such_module\n\ndef test_cannot_run():\n    pass\n")
    before = sync.local_hashes(vboard.flash)
    r = run_tool("--port", vboard.tty_link, "--tests", str(suite), "--no-build", "--timeout", "3")
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert re.search(r"^test_b_demo\.py \.Fs\.$", out, re.M), out
    assert "FAILED test_b_demo.py::test_fails - AssertionError: boom" in out
    assert "SKIPPED test_b_demo.py::test_skips - not here" in out
    assert "ERROR test_a_hang.py::test_never_ends - " in out
    assert "the board printed nothing for 3.0s" in out
    assert "ERROR test_c_broken.py::test_cannot_run - ImportError: no module named " \
           "'no_such_module'" in out
    assert SUMMARY.search(out).group(1) == "1 failed, 2 errors, 2 passed, 1 skipped"
    # the traceback of the failure is shown
    assert re.search(r"_+ test_b_demo\.py::test_fails _+\nTraceback", out)
    assert sync.local_hashes(vboard.flash) == before


def test_k_selects_tests(vboard):
    r = run_tool("--port", vboard.tty_link, "--no-build", "-k", "test_harness.py::test_runs")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^test_harness\.py \.$", r.stdout, re.M)
    assert SUMMARY.search(r.stdout).group(1) == "1 passed"


def test_a_build_the_board_cannot_import_runs_nothing(vboard):
    build.build("esp32cam", log=lambda *a: None)
    before = sync.local_hashes(vboard.flash)
    r = run_tool("--port", vboard.tty_link, "--board", "esp32cam", "--no-build")
    assert r.returncode == 2
    assert "cannot import the BOARD=esp32cam build" in r.stderr
    assert "make test-hw BOARD=vboard PORT=%s" % vboard.tty_link in r.stderr
    assert "test_" not in r.stdout
    assert sync.local_hashes(vboard.flash) == before


def test_a_board_without_the_app_gets_it_deployed_first(blank_vboard):
    r = make("test-hw", "PORT=" + blank_vboard.tty_link, "TESTHW_ARGS=-k test_harness.py")
    assert r.returncode == 0, r.stdout + r.stderr
    manifest_files = len(build_manifest()["files"])
    assert ("test-hw: %d of the build's files are not on the board as built" % manifest_files
            in r.stdout)
    assert "deploy: %d to copy" % manifest_files in r.stdout
    assert re.search(r"^test_harness\.py \.\.\.$", r.stdout, re.M)
    # the app stays deployed; the tests are gone
    # (and boot.py's rollback state: the deploy is kept once the app has
    # served for confirm_s)
    on_board = {p: h for p, h in sync.local_hashes(blank_vboard.flash).items()
                if not p.startswith("/.previous/")}
    assert on_board == sync.wanted(build_manifest())
    blank_vboard.wait_http(timeout=30)


def build_manifest():
    import json

    with open(os.path.join(build.build_dir("vboard"), "manifest.json")) as f:
        return json.load(f)
