"""The virtual board behaves like a USB board to the real mpremote."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
import serial

from conftest import ROOT, free_port, mpremote


def status(vb):
    return json.loads(vb.wait_http("api/status"))


def test_serves_the_app_and_publishes_its_tty(vboard):
    assert os.path.islink(vboard.tty_link)
    assert os.readlink(vboard.tty_link) == vboard.tty_path
    body = status(vboard)
    assert body["board"] == "vboard"
    assert "dashboard at " + vboard.url in vboard.console()


def test_mpremote_cp_exec_and_soft_reset_then_the_app_runs_again(vboard, tmp_path):
    local = tmp_path / "note.txt"
    local.write_text("written through the pty\n")
    r = mpremote("connect", vboard.tty_link, "fs", "cp", str(local), ":note.txt",
                 "+", "exec", "print(open('note.txt').read())")
    assert r.returncode == 0, r.stderr
    assert "written through the pty" in r.stdout
    # it landed in the folder that stands in for the flash
    assert (tmp_path / "flash" / "note.txt").read_text() == "written through the pty\n"

    boots = vboard.boots
    mark = vboard.console_offset()
    r = mpremote("connect", vboard.tty_link, "soft-reset")
    assert r.returncode == 0, r.stderr
    vboard.wait_console("MPY: soft reboot", start=mark)
    assert vboard.boots > boots

    # After mpremote the board sits at the REPL, as a USB board does; Ctrl-D
    # there (what a user types in `make repl`) soft-resets into boot.py and
    # main.py, and the app serves again.
    mark = vboard.console_offset()
    with serial.Serial(vboard.tty_link, 115200, timeout=1) as port:
        port.write(b"\r\x04")
    vboard.wait_console("dashboard at " + vboard.url, start=mark)
    assert status(vboard)["uptime_s"] <= 2
    r = mpremote("connect", vboard.tty_link, "exec", "print(open('note.txt').read())")
    assert "written through the pty" in r.stdout


def test_waiting_for_the_app_lasts_through_a_soft_reset(vboard):
    # Between the VM's exit and its restart there is no VM for a moment (a
    # slow restart here, so the wait surely starts in that moment); waiting
    # for the app then must not give up: it comes back after boot.py and
    # main.py. (It once did give up, when `make test-hw` ended on a reset.)
    spawn = vboard._spawn
    started = []

    def slow_spawn(run_main):
        started.append(run_main)
        time.sleep(1.5)
        spawn(run_main)

    vboard._spawn = slow_spawn
    mark = vboard.console_offset()
    with serial.Serial(vboard.tty_link, 115200, timeout=1) as port:
        _interrupt(vboard, port)
        port.write(b"\x04")  # Ctrl-D at the prompt: a soft reset, then the app
    vboard.wait_console("MPY: soft reboot", start=mark)
    vboard.wait_http(timeout=30)
    assert started[-1] is True  # a reset from the friendly REPL runs main.py
    assert status(vboard)["uptime_s"] <= 5


def _interrupt(vb, port, tries=3):
    """Ctrl-C on the serial line; the console offset just past the prompt.

    The unix VM now and then dies with "FATAL: uncaught NLR" when the
    interrupt lands inside asyncio's loop (a crash of the VM, not of the
    app: a board prints the prompt). The supervisor then restarts it like
    a reset; it is told so and tried again, at most ``tries`` times.
    """
    for _ in range(tries):
        vb.wait_http()  # the app serves: main.py is running
        mark = vb.console_offset()
        port.write(b"\x03")
        deadline = time.monotonic() + 20
        while True:  # the prompt, or the crash
            text = vb.console()[mark:]
            if ">>> " in text or "FATAL: uncaught NLR" in text:
                break
            assert time.monotonic() < deadline, "no prompt within 20 s:\n" + text[-800:]
            time.sleep(0.05)
        if "FATAL: uncaught NLR" not in text:
            assert "KeyboardInterrupt" in text, text
            return vb.wait_console(">>> ", start=mark)
        print("the VM crashed on Ctrl-C (FATAL: uncaught NLR); trying again")
    raise AssertionError("Ctrl-C crashed the VM %d times in a row" % tries)


def test_ctrl_c_interrupts_main_into_the_prompt(vboard):
    with serial.Serial(vboard.tty_link, 115200, timeout=1) as port:
        end = _interrupt(vboard, port)
        port.write(b"print(6 * 7)\r")
        vboard.wait_console("42", start=end)
    try:
        urllib.request.urlopen(vboard.url + "api/status", timeout=2)
        raise AssertionError("the app still serves after Ctrl-C")
    except OSError:
        pass


def test_heap_is_capped_from_boards_json(vboard):
    # the ROMFS image, the camera's frame and the hardware stand-ins' reserve
    # sit in memory outside what the app gets, as a board's flash, its camera
    # driver's PSRAM and its firmware do: what is left for the app is the cap
    code = ("import gc, os, _vboard_camera; gc.collect(); print(gc.mem_free() + gc.mem_alloc(), "
            "len(_vboard_camera.frame))")
    r = mpremote("connect", vboard.tty_link, "exec", code)
    assert r.returncode == 0, r.stderr
    from tools import boards
    cap = boards.get("vboard")["heap"]["vm_bytes"]
    total, frame = map(int, r.stdout.split()[-2:])
    assert frame == 160 * 120
    image = os.path.getsize(vboard.romfs)
    from tools.vboard import STANDINS_RESERVE
    assert cap * 0.9 <= total - image - frame - STANDINS_RESERVE <= cap


def test_without_romfs_the_heap_is_the_cap(blank_vboard):
    r = mpremote("connect", blank_vboard.tty_link, "exec",
                 "import gc, vfs; gc.collect(); print(gc.mem_free() + gc.mem_alloc(), "
                 "len(vfs.mount()))")
    assert r.returncode == 0, r.stderr
    from tools import boards
    cap = boards.get("vboard")["heap"]["vm_bytes"]
    total, mounts = map(int, r.stdout.split()[-2:])
    from tools.vboard import STANDINS_RESERVE
    assert cap * 0.9 <= total - 160 * 120 - STANDINS_RESERVE <= cap and mounts == 1


def test_held_blocks_leave_the_app_the_heap_of_the_cap(tmp_path):
    # tried: the VM started bare with the cap, and started as the virtual
    # board starts it (ROMFS image and camera frame held, cap raised for
    # them); checked: the heap free for the app after the launch is the same
    # within 512 bytes, and never more (the held blocks give the app nothing)
    from tools import boards, build
    from tools.vboard import (CAMERA_FRAME_BYTES, STANDINS, STANDINS_RESERVE, launch_code,
                              micropython_command, rom_extra)

    build.build_romfs("vboard", log=lambda *a: None)
    rom = os.path.join(build.build_dir("vboard"), "romfs.img")
    cap = boards.get("vboard")["heap"]["vm_bytes"]

    def free_after_launch(heap, image, frame, reserve=0, probe=""):
        code = launch_code(str(tmp_path), False, image, frame, STANDINS, reserve)
        code += "\nimport gc, sys%s\ngc.collect(); print(sorted(sys.modules)); print(gc.mem_free())" % probe
        r = subprocess.run([micropython_command(), "-X", "heapsize=%d" % heap, "-c", code],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "vboard:" not in r.stdout, r.stdout  # the stand-ins fit their reserve
        modules, free = r.stdout.strip().splitlines()[-2:]
        return modules, int(free)

    held = cap + rom_extra(os.path.getsize(rom)) + rom_extra(CAMERA_FRAME_BYTES)
    _, bare = free_after_launch(cap, None, 0)
    _, with_blocks = free_after_launch(held, rom, CAMERA_FRAME_BYTES)
    print("free after launch: bare %d, with image and frame held %d" % (bare, with_blocks))
    assert bare - 512 <= with_blocks <= bare

    # tried: the launch with the hardware stand-ins loaded in their reserve,
    # against the same launch without them that imports what the app would
    # anyway (their packages); checked: they are loaded, and the app's heap
    # is the same within 512 bytes, never more
    _, app_only = free_after_launch(held, rom, CAMERA_FRAME_BYTES, probe=", camwatch.board")
    modules, with_standins = free_after_launch(held + rom_extra(STANDINS_RESERVE), rom,
                                               CAMERA_FRAME_BYTES, STANDINS_RESERVE)
    print("free after launch: app's packages %d, with the stand-ins held %d"
          % (app_only, with_standins))
    assert all(repr(name) in modules for name in STANDINS), modules
    assert app_only - 512 <= with_standins <= app_only


def test_romfs_modules_run_in_place_and_flash_files_override_them(vboard, tmp_path):
    # a board with a romfs partition: /rom holds the app, lib and web;
    # the flash (/) holds boot.py, main.py, board.json and data
    code = ("import sys, camwatch, ssehub; print(sys.path); print(camwatch.__file__, "
            "ssehub.__file__)")
    r = mpremote("connect", vboard.tty_link, "exec", code)
    assert r.returncode == 0, r.stderr
    path, files = r.stdout.strip().splitlines()[-2:]
    # the board's path, with /lib moved before /rom/lib by our boot.py: what
    # is on the flash wins over the image, libraries too
    assert path == "['', '.frozen', '/rom', '/lib', '/rom/lib']"
    assert files.split() == ["/rom/camwatch/__init__.mpy", "/rom/lib/ssehub/__init__.mpy"]
    assert sorted(os.listdir(vboard.flash)) == ["board.json", "boot.py", "main.py"]
    # what is put on the flash at / is found before /rom, as on a board
    (tmp_path / "camwatch").mkdir()
    mod = tmp_path / "camwatch" / "__init__.py"
    mod.write_text("__version__ = 'from-flash'\n")
    # (at the next boot: the launch has loaded the package from the image)
    r = mpremote("connect", vboard.tty_link, "fs", "mkdir", ":camwatch", "+",
                 "fs", "cp", str(mod), ":camwatch/__init__.py", "+", "soft-reset", "+",
                 "exec", "import camwatch; print(camwatch.__version__, camwatch.__file__)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-2:] == ["from-flash", "camwatch/__init__.py"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_make_run_serves_and_a_signal_stops_everything(tmp_path, signum):
    port = free_port()
    flash = tmp_path / "flash"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools", "run", "--http-port", str(port), "--flash", str(flash),
         "--tty", str(tmp_path / "tty")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # as a shell's background job: SIGINT arrives ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "camwatch is up" in line:
                break
        assert any("open http://127.0.0.1:%d/" % port in l for l in lines), "".join(lines)
        with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as r:
            assert r.status == 200
            assert r.headers["Content-Encoding"] == "gzip"
        vm = subprocess.run(["pgrep", "-f", str(flash)], capture_output=True, text=True)
        assert vm.stdout.split(), "no VM process found"
        proc.send_signal(signum)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not os.path.exists(tmp_path / "tty")
    left = subprocess.run(["pgrep", "-f", str(flash)], capture_output=True, text=True)
    assert left.stdout.split() == [], "VM still running after the signal"
