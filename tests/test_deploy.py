"""make deploy / make install against the virtual board, and the boot guard."""

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

import pytest

from conftest import ROOT, free_port
from tools import build, sync
from tools.vboard import VirtualBoard

VENV = os.path.dirname(os.path.dirname(sys.executable))


def make(*args, cwd=ROOT, timeout=180):
    return subprocess.run(["make", "--no-print-directory", "VENV=" + VENV] + list(args), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def copied(output):
    """The board paths a deploy printed as copied."""
    out = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("[") and "] /" in line:
            out.append(line.split("] ", 1)[1].split(" (")[0])
        elif line.startswith("/") and "replaced atomically" in line:  # boot.py, deployguard
            out.append(line.split(" (")[0])
    return out


@pytest.fixture
def source_copy(tmp_path):
    """A copy of the project sources that a test may edit."""
    dst = tmp_path / "src"
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(
        ".venv", "build", ".git", ".cache", "__pycache__", ".pytest_cache", "secrets.json"))
    return dst


def test_deploy_copies_only_what_changed(blank_vboard, source_copy):
    tty = blank_vboard.tty_link
    first = make("deploy", "PORT=" + tty, "DEPLOY_ARGS=--no-provision", cwd=source_copy)
    assert first.returncode == 0, first.stdout + first.stderr
    manifest = json.loads((source_copy / "build" / "vboard" / "manifest.json").read_text())
    assert sorted(copied(first.stdout)) == sorted("/" + f["path"] for f in manifest["files"])
    assert "dashboard at " + blank_vboard.url in first.stdout
    blank_vboard.wait_http()

    second = make("deploy", "PORT=" + tty, "DEPLOY_ARGS=--no-provision", cwd=source_copy)
    assert second.returncode == 0, second.stdout + second.stderr
    assert copied(second.stdout) == []
    assert "0 to copy, 0 to remove" in second.stdout

    app = source_copy / "firmware" / "camwatch" / "app.py"
    app.write_text(app.read_text() + "\nDEPLOY_TEST_MARKER = 1\n")
    third = make("deploy", "PORT=" + tty, "DEPLOY_ARGS=--no-provision", cwd=source_copy)
    assert third.returncode == 0, third.stdout + third.stderr
    assert copied(third.stdout) == ["/camwatch/app.mpy"]
    blank_vboard.wait_http()
    flash = blank_vboard.flash
    assert open(os.path.join(flash, "camwatch", "app.mpy"), "rb").read() == \
        (source_copy / "build" / "vboard" / "fs" / "camwatch" / "app.mpy").read_bytes()
    assert not os.path.exists(os.path.join(flash, ".staging"))


def test_deploy_removes_files_no_longer_built_but_keeps_settings(flash_vboard):
    vboard = flash_vboard
    flash = vboard.flash
    with open(os.path.join(flash, "camwatch", "old_module.mpy"), "wb") as f:
        f.write(b"stale")
    with open(os.path.join(flash, "settings.json"), "w") as f:
        f.write('{"telemetry_s": 7}')
    r = make("deploy", "PORT=" + vboard.tty_link, "DEPLOY_ARGS=--no-provision --no-build")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 to copy, 1 to remove" in r.stdout
    vboard.wait_http()
    assert not os.path.exists(os.path.join(flash, "camwatch", "old_module.mpy"))
    assert json.load(open(os.path.join(flash, "settings.json"))) == {"telemetry_s": 7}


def test_deploy_onto_a_board_running_from_romfs(vboard):
    # The flash has boot.py, main.py and board.json; the app is in /rom. A
    # deploy puts the app on the flash, where it is found before /rom, and
    # leaves the read-only image alone.
    r = make("deploy", "PORT=" + vboard.tty_link, "DEPLOY_ARGS=--no-provision --no-build")
    assert r.returncode == 0, r.stdout + r.stderr
    assert ", 0 to remove," in r.stdout
    vboard.wait_http()
    assert os.path.exists(os.path.join(vboard.flash, "camwatch", "app.mpy"))
    code = "import camwatch.app, ssehub; print(camwatch.app.__file__, ssehub.__file__)"
    r = subprocess.run([sys.executable, "-m", "mpremote", "connect", vboard.tty_link, "exec", code],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # the app and its libraries both from the flash, never a mix of a new
    # app and the image's older libraries: boot.py puts /lib before /rom/lib
    assert r.stdout.split()[-2:] == ["camwatch/app.mpy", "/lib/ssehub/__init__.mpy"]


def _version_module(tmp_path, version):
    src = tmp_path / ("v%s.py" % version.replace(".", "_"))
    src.write_text('__version__ = "%s"\n' % version)
    out = tmp_path / "init.mpy"
    build.compile_mpy(str(src), str(out), "x64", "camwatch/__init__.py")
    return out.read_bytes()


def _boot(flash, tmp_path):
    vb = VirtualBoard(flash, str(tmp_path / "tty"), http_port=free_port())
    vb.start()
    try:
        return json.loads(vb.wait_http()), vb.console()
    finally:
        vb.stop()


@pytest.fixture
def flash(vboard_fs, tmp_path):
    dst = tmp_path / "flash"
    shutil.copytree(vboard_fs, dst)
    return str(dst)


def test_interrupted_before_the_plan_boots_the_old_app(flash, tmp_path):
    # a deploy cut off while copying: files staged, no .swap written yet
    staged = os.path.join(flash, ".staging", "camwatch")
    os.makedirs(staged)
    with open(os.path.join(staged, "__init__.mpy"), "wb") as f:
        f.write(_version_module(tmp_path, "9.9.9"))
    status, console = _boot(flash, tmp_path)
    assert status["version"] == build.app_version()
    assert not os.path.exists(os.path.join(flash, ".staging"))


def test_interrupted_mid_swap_boots_the_new_app(flash, tmp_path):
    # a deploy cut off after writing the plan, with one of two files moved
    new_init = _version_module(tmp_path, "9.9.9")
    os.makedirs(os.path.join(flash, ".staging", "camwatch"))
    with open(os.path.join(flash, ".staging", "camwatch", "__init__.mpy"), "wb") as f:
        f.write(new_init)
    with open(os.path.join(flash, "camwatch", "gone.mpy"), "wb") as f:
        f.write(b"old")
    with open(os.path.join(flash, ".staging", ".swap"), "w") as f:
        json.dump({"copy": ["/camwatch/__init__.mpy", "/web/already-moved.gz"],
                   "delete": ["/camwatch/gone.mpy"]}, f)
    status, console = _boot(flash, tmp_path)
    assert status["version"] == "9.9.9"
    assert "deploy: finished, 1 files moved, 1 removed" in console
    assert not os.path.exists(os.path.join(flash, "camwatch", "gone.mpy"))
    assert not os.path.exists(os.path.join(flash, ".staging"))


def test_a_truncated_plan_counts_as_incomplete(flash, tmp_path):
    os.makedirs(os.path.join(flash, ".staging", "camwatch"))
    with open(os.path.join(flash, ".staging", "camwatch", "__init__.mpy"), "wb") as f:
        f.write(_version_module(tmp_path, "9.9.9"))
    with open(os.path.join(flash, ".staging", ".swap"), "w") as f:
        f.write('{"copy": ["/camwatch/__init__.m')
    status, _ = _boot(flash, tmp_path)
    assert status["version"] == build.app_version()


def test_deploy_refuses_an_esp32_build_for_the_virtual_board(vboard):
    """The xtensawin build cannot be imported by the x64 VM: refused before anything is
    copied, with both sides and the fix in one message; the right build still deploys."""
    before = sync.local_hashes(vboard.flash)
    r = make("deploy", "PORT=" + vboard.tty_link, "BOARD=esp32cam", "DEPLOY_ARGS=--no-provision")
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr
    assert err.startswith("error: the board on %s cannot import the BOARD=esp32cam build "
                          "(native code for x64 on the board, xtensawin in the build)."
                          % vboard.tty_link), err
    assert "  board: MicroPython 1.2" in err and "(linux), imports mpy v6.3, x64 native code" in err
    assert re.search(r"  build: mpy v6\.3, xtensawin native code in [^\n]*camwatch/motion\.mpy"
                     r"[^\n]*, from mpy-cross v1\.", err), err
    assert ("Use the build for this board: make deploy BOARD=vboard PORT=%s" % vboard.tty_link
            in err.splitlines())
    assert "to copy" not in r.stdout  # refused before the files were even compared
    assert sync.local_hashes(vboard.flash) == before

    r = make("deploy", "PORT=" + vboard.tty_link, "DEPLOY_ARGS=--no-provision")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "dashboard at " + vboard.url in r.stdout


def test_deploy_without_a_port_lists_ports():
    r = make("deploy", "PORT=")
    assert r.returncode != 0
    assert "make deploy PORT=" in r.stderr


def test_install_on_the_virtual_board_ends_with_a_url_that_answers(blank_vboard, tmp_path):
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"wifi_ssid": "home", "wifi_password": "pw-123",
                                   "admin_password": "letmein"}))
    r = make("install", "PORT=" + blank_vboard.tty_link,
             "INSTALL_ARGS=--secrets %s --timeout 30" % secrets)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not flashing" in r.stdout
    url_lines = [l for l in r.stdout.splitlines() if l.startswith("camwatch dashboard: ")]
    assert url_lines, r.stdout
    url = url_lines[-1].split(": ", 1)[1]
    assert url == blank_vboard.url
    assert "\u2588" in r.stdout or "##" in r.stdout  # the QR code was drawn
    with urllib.request.urlopen(url, timeout=5) as page:
        assert page.status == 200
    settings = json.load(open(os.path.join(blank_vboard.flash, "settings.json")))
    assert settings["wifi_ssid"] == "home"
    assert "letmein" not in json.dumps(settings)
    assert "admin_hash" in settings


def test_without_a_port_the_running_virtual_board_is_offered(tmp_path, monkeypatch):
    from tools import ToolError, ports

    tty = tmp_path / "tty"
    tty.write_text("")
    monkeypatch.setattr(ports, "VBOARD_TTY", str(tty))
    with pytest.raises(ToolError) as err:
        ports.require(None, "deploy", ports=[])
    msg = str(err.value)
    assert "the virtual board (make run)" in msg
    assert msg.endswith("make deploy PORT=%s" % os.path.relpath(str(tty)))
