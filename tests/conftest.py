"""Shared fixtures: the vboard build, running the MicroPython VM, virtual boards."""

import itertools
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools import boards, build  # noqa: E402
from tools.vboard import VirtualBoard, micropython_command, prepare_flash  # noqa: E402

VM_TESTS = os.path.join(ROOT, "tests", "vm")

# tests/vm/ holds MicroPython modules run on the VM by test_vm.py, and
# tests/bench/ the MicroPython side of `make bench`: neither is for pytest.
collect_ignore = ["vm", "bench"]


@pytest.fixture(scope="session")
def vboard_fs():
    """build/vboard/fs and its ROMFS image build/vboard/romfs.img, built once
    per test session."""
    build.build_romfs("vboard", log=lambda *a: None)
    return build.fs_dir("vboard")


def romfs_image():
    """The virtual board's ROMFS image (built by the ``vboard_fs`` fixture)."""
    return os.path.join(build.build_dir("vboard"), "romfs.img")


def board_flash(flash, romfs=True):
    """Fill folder ``flash`` as the virtual board's flash; return the ROMFS
    image to pass as ``VirtualBoard(romfs=...)`` (None without ROMFS: the
    whole build on the flash). ROMFS is how the virtual board runs by
    default (see tools.vboard.prepare_flash)."""
    return prepare_flash(str(flash), "vboard", romfs)


def run_vm(args, fs, heap=None, timeout=120, env=None):
    """Run the MicroPython VM with the board's import path over ``fs``.

    The path is the board's: the built app and lib (x64 .mpy, so viper is
    real machine code), then tests/vm. Returns the CompletedProcess.
    """
    heap = heap or boards.get("vboard")["heap"]["vm_bytes"]
    path = ":".join([".frozen", fs, os.path.join(fs, "lib"), VM_TESTS])
    full_env = dict(os.environ, MICROPYPATH=path)
    full_env.update(env or {})
    return subprocess.run([micropython_command(), "-X", "heapsize=%d" % heap] + list(args),
                          capture_output=True, text=True, timeout=timeout, env=full_env,
                          cwd=VM_TESTS)


_ports = itertools.count(0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def vboard(vboard_fs, tmp_path):
    """A running virtual board on a fresh flash folder, its modules and web
    assets in the ROMFS image mounted at /rom (as ``make run`` starts it)."""
    flash = tmp_path / "flash"
    rom = board_flash(flash)
    vb = VirtualBoard(str(flash), str(tmp_path / "tty"), http_port=free_port(), romfs=rom)
    vb.start()
    try:
        vb.wait_http(timeout=30)
        yield vb
    finally:
        vb.stop()


@pytest.fixture
def flash_vboard(vboard_fs, tmp_path):
    """A running virtual board without ROMFS: the whole build on its flash,
    like a board that got the app with `make deploy`."""
    flash = tmp_path / "flash"
    board_flash(flash, romfs=False)
    vb = VirtualBoard(str(flash), str(tmp_path / "tty"), http_port=free_port())
    vb.start()
    try:
        vb.wait_http(timeout=30)
        yield vb
    finally:
        vb.stop()


@pytest.fixture
def blank_vboard(tmp_path):
    """A running virtual board whose flash is empty, like a freshly flashed board."""
    flash = tmp_path / "flash"
    flash.mkdir()
    vb = VirtualBoard(str(flash), str(tmp_path / "tty"), http_port=free_port())
    vb.start()
    try:
        vb.wait_console(">>> ", timeout=20)
        yield vb
    finally:
        vb.stop()


def mpremote(*args, timeout=60):
    """Run the real mpremote CLI; return the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "mpremote"] + list(args),
                          capture_output=True, text=True, timeout=timeout)


def write_settings(flash, **values):
    """Write settings.json into a virtual board's flash folder. An
    ``admin_password`` is stored salted and hashed, as `make deploy` does."""
    from tools.deploy import admin_hash

    password = values.pop("admin_password", None)
    if password:
        values["admin_salt"], values["admin_hash"] = admin_hash(password)
    path = os.path.join(str(flash), "settings.json")
    with open(path, "w") as f:
        import json
        json.dump(values, f)
    return path
