"""`python -m tools firmware`: the frozen manifest and what a frozen build needs.

The real build needs a MicroPython checkout and ESP-IDF, which this machine
does not have: these tests evaluate firmware/manifest.py with stand-ins for
MicroPython's manifest functions and compare what it freezes with what
`tools.build` ships, check the "what is missing" messages, and run the
orchestration once against a stand-in `make` that records its arguments.
"""

import json
import os
import shlex
import stat
import sys

import pytest

from tools import ROOT, ToolError, boards, build, firmware
from tools.cli import main

MANIFEST = os.path.join(ROOT, "firmware", "manifest.py")


class ManifestStub:
    """Runs a manifest.py the way MicroPython's build does, recording what it freezes.

    Like tools/manifestfile.py: the manifest runs with its own folder as
    the current directory; package() takes every .py under
    base_path/package_path (or the listed files) as package_path/...;
    module() takes base_path/module_path as module_path.
    """

    def __init__(self):
        self.included = []
        self.frozen = {}  # target path on the board -> source file

    def _add(self, source, target):
        assert os.path.isfile(source), source
        assert target not in self.frozen, "frozen twice: " + target
        self.frozen[target] = os.path.abspath(source)

    def include(self, path, **kwargs):
        self.included.append(path)

    def package(self, package_path, files=None, base_path=".", opt=None):
        top = os.path.join(base_path, package_path)
        if files is None:
            files = []
            for dirpath, _, filenames in os.walk(top):
                files += [os.path.relpath(os.path.join(dirpath, f), top)
                          for f in filenames if f.endswith(".py")]
        for f in files:
            self._add(os.path.join(top, f), package_path + "/" + f.replace(os.sep, "/"))

    def module(self, module_path, base_path=".", opt=None):
        assert module_path.endswith(".py")
        self._add(os.path.join(base_path, module_path), module_path)

    def freeze(self, path, script=None, opt=None):
        raise AssertionError("use package()/module(), not the legacy freeze()")

    def run(self, manifest_path):
        cwd = os.getcwd()
        os.chdir(os.path.dirname(manifest_path))
        try:
            with open(manifest_path) as f:
                code = f.read()
            exec(code, {"include": self.include, "package": self.package, "module": self.module,
                        "freeze": self.freeze, "require": self.freeze, "options": None})
        finally:
            os.chdir(cwd)
        return self


def shipped_modules(board_id, tmp_path, monkeypatch):
    """The modules `make build` puts on the board, as import paths (e.g. camwatch/app.py)."""
    monkeypatch.setattr(build, "build_dir", lambda b: str(tmp_path / "build" / b))
    manifest = build.build(board_id, log=lambda *a: None)
    names = set()
    for entry in manifest["files"]:
        path = entry["path"]
        if path.endswith(".mpy"):
            path = path[:-4] + ".py"
            names.add(path[4:] if path.startswith("lib/") else path)
    return names


@pytest.mark.parametrize("board_id", ["esp32cam", "esp32s3-eye"])
def test_manifest_freezes_exactly_what_the_build_ships(board_id, tmp_path, monkeypatch):
    shipped = shipped_modules(board_id, tmp_path, monkeypatch)
    firmware.stage_frozen(boards.get(board_id), log=lambda *a: None)
    stub = ManifestStub().run(MANIFEST)

    assert stub.included == ["$(PORT_DIR)/boards/manifest.py"]  # asyncio and the port's own
    assert set(stub.frozen) == shipped
    for must in ("camwatch/__init__.py", "camwatch/board/esp32.py", "microdot/__init__.py",
                 "microdot/microdot.py", "microdot/helpers.py", "microdot/sse.py"):
        assert must in stub.frozen
    for never in ("boot.py", "main.py", "manifest.py", "camwatch/board/virtual.py"):
        assert never not in stub.frozen
    # What is frozen is the app's own source, unchanged.
    with open(stub.frozen["camwatch/__init__.py"], "rb") as a, \
            open(os.path.join(ROOT, "firmware", "camwatch", "__init__.py"), "rb") as b:
        assert a.read() == b.read()


def test_manifest_without_staged_modules_says_how_to_build(tmp_path):
    (tmp_path / "firmware").mkdir()
    copy = tmp_path / "firmware" / "manifest.py"
    with open(MANIFEST) as f:
        copy.write_text(f.read())
    with pytest.raises(Exception) as exc:
        ManifestStub().run(str(copy))
    assert "build/frozen is missing" in str(exc.value)
    assert "make firmware" in str(exc.value)


# ------------------------------------------------------------ what is missing

def fake_micropython(tmp_path, port_board="ESP32_GENERIC", built=False):
    """A folder shaped like a MicroPython checkout (just the files the checks look at)."""
    mp = tmp_path / "micropython"
    (mp / "py").mkdir(parents=True)
    (mp / "py" / "mkrules.mk").write_text("")
    (mp / "ports" / "esp32" / "boards" / port_board).mkdir(parents=True)
    (mp / "ports" / "esp32" / "Makefile").write_text("")
    (mp / "ports" / "esp32" / "main").mkdir()
    if built:
        (mp / "mpy-cross" / "build").mkdir(parents=True)
        (mp / "mpy-cross" / "build" / "mpy-cross").write_text("")
        (mp / "lib" / "berkeley-db-1.xx").mkdir(parents=True)
        (mp / "lib" / "berkeley-db-1.xx" / "README").write_text("")
    return mp


def fake_camera_module(folder, layout="top"):
    folder.mkdir(parents=True, exist_ok=True)
    if layout == "top":
        (folder / "micropython.cmake").write_text("")
    else:
        (folder / "src").mkdir()
        (folder / "src" / "micropython.cmake").write_text("")
    return folder


def executable(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def fake_idf(tmp_path, with_camera_driver=True):
    """An IDF_PATH and a PATH with an idf.py on it."""
    idf = tmp_path / "esp-idf"
    (idf / "components").mkdir(parents=True)
    if with_camera_driver:
        (idf / "components" / "esp32-camera").mkdir()
    executable(tmp_path / "bin" / "idf.py", "#!/bin/sh\nexit 0\n")
    executable(tmp_path / "bin" / "make", "#!/bin/sh\nexit 0\n")
    return {"IDF_PATH": str(idf), "PATH": str(tmp_path / "bin")}


def missing(board_id, micropython_dir, env, camera_dir=None):
    with pytest.raises(ToolError) as exc:
        firmware.build_firmware(board_id, micropython_dir, camera_dir=camera_dir, env=env,
                                dry_run=True, log=lambda *a: None)
    msg = str(exc.value)
    assert msg.startswith("cannot build the %s firmware yet:\n  - " % board_id)
    return msg


def test_nothing_set_up_lists_everything_missing():
    msg = missing("esp32cam", None, env={})
    assert "no MicroPython checkout given: clone the micropython/micropython repository" in msg
    assert "MICROPY_DIR=path/to/micropython" in msg
    assert "camera module was not found" in msg and "CAMERA_API_DIR=" in msg
    assert "ESP-IDF is not set up in this shell (IDF_PATH is unset)" in msg
    assert "source path/to/esp-idf/export.sh" in msg


def test_micropython_dir_that_does_not_exist(tmp_path):
    msg = missing("esp32cam", str(tmp_path / "nowhere"), env={})
    assert "MICROPY_DIR %s does not exist" % (tmp_path / "nowhere") in msg


def test_micropython_dir_that_is_not_a_checkout(tmp_path):
    msg = missing("esp32cam", str(tmp_path), env={})
    assert "%s is not a MicroPython checkout (no ports/esp32/Makefile" % tmp_path in msg


def test_micropython_too_old_for_the_board(tmp_path):
    mp = fake_micropython(tmp_path, port_board="GENERIC")
    msg = missing("esp32cam", str(mp), env={})
    assert "has no ports/esp32/boards/ESP32_GENERIC" in msg
    assert "v1.24 or later" in msg


def test_camera_module_missing_next_to_the_checkout(tmp_path):
    mp = fake_micropython(tmp_path)
    msg = missing("esp32cam", str(mp), env=fake_idf(tmp_path))
    expected = tmp_path / "micropython-camera-API"
    assert ("the camera module was not found at %s (no micropython.cmake or "
            "src/micropython.cmake there)" % expected) in msg
    assert "cnadler86/micropython-camera-API" in msg
    assert msg.count("\n  - ") == 1  # that is all that is missing


def test_idf_path_set_but_idf_py_not_on_path(tmp_path):
    mp = fake_micropython(tmp_path)
    fake_camera_module(tmp_path / "micropython-camera-API")
    env = fake_idf(tmp_path)
    env["PATH"] = str(tmp_path / "empty")
    msg = missing("esp32cam", str(mp), env=env)
    assert "idf.py was not found on PATH although IDF_PATH is %s" % env["IDF_PATH"] in msg
    assert "source %s" % os.path.join(env["IDF_PATH"], "export.sh") in msg


def test_make_missing(tmp_path):
    mp = fake_micropython(tmp_path, built=True)
    fake_camera_module(tmp_path / "micropython-camera-API")
    env = fake_idf(tmp_path)
    (tmp_path / "bin" / "make").unlink()
    msg = missing("esp32cam", str(mp), env=env)
    assert "make was not found on PATH" in msg and "build-essential" in msg
    assert msg.count("\n  - ") == 1


def test_idf_unset_names_the_ports_readme(tmp_path):
    mp = fake_micropython(tmp_path)
    fake_camera_module(tmp_path / "micropython-camera-API")
    msg = missing("esp32cam", str(mp), env={})
    assert "IDF_PATH is unset" in msg
    assert os.path.join(str(mp), "ports", "esp32", "README.md") in msg


def test_camera_driver_component_missing(tmp_path):
    mp = fake_micropython(tmp_path)
    fake_camera_module(tmp_path / "micropython-camera-API")
    env = fake_idf(tmp_path, with_camera_driver=False)
    msg = missing("esp32cam", str(mp), env=env)
    assert "the esp32-camera driver (an ESP-IDF component) is missing" in msg
    assert os.path.join(env["IDF_PATH"], "components") in msg


def test_camera_driver_named_in_idf_component_yml_is_enough(tmp_path, capfd):
    mp = fake_micropython(tmp_path, built=True)
    fake_camera_module(tmp_path / "micropython-camera-API")
    (mp / "ports" / "esp32" / "main" / "idf_component.yml").write_text(
        "dependencies:\n  espressif/esp32-camera: '*'\n")
    firmware.build_firmware("esp32cam", str(mp), env=fake_idf(tmp_path, with_camera_driver=False),
                            dry_run=True)


def test_the_virtual_board_has_no_firmware_to_build(tmp_path):
    with pytest.raises(ToolError, match="board vboard .* runs no ESP32 firmware"):
        firmware.build_firmware("vboard", str(tmp_path), env={}, dry_run=True)


def test_cli_reports_what_is_missing(capfd, monkeypatch):
    for name in ("MICROPY_DIR", "IDF_PATH", "CAMERA_API_DIR", "BOARD"):
        monkeypatch.delenv(name, raising=False)
    rc = main(["firmware", "--board", "esp32cam"])
    out, err = capfd.readouterr()
    assert rc == 2
    assert err.startswith("error: cannot build the esp32cam firmware yet:\n")
    assert "MICROPY_DIR=" in err and "IDF_PATH is unset" in err


def test_firmware_help_explains_the_flags(capfd):
    with pytest.raises(SystemExit):
        main(["firmware", "--help"])
    out = " ".join(capfd.readouterr().out.split())
    assert "--board" in out and "boards.json" in out
    assert "--micropython-dir" in out and "MicroPython source checkout" in out
    assert "--camera-dir" in out and "CAMERA_API_DIR" in out
    assert "--dry-run" in out and "without running them" in out


def test_cli_dry_run_with_everything_in_place(capfd, monkeypatch, tmp_path):
    mp = fake_micropython(tmp_path, built=True)
    cam = fake_camera_module(tmp_path / "cam")
    for name, value in fake_idf(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BOARD", raising=False)
    rc = main(["firmware", "--micropython-dir", str(mp), "--camera-dir", str(cam), "--dry-run"])
    out, err = capfd.readouterr()
    assert rc == 0, err
    assert out.splitlines()[-1].startswith("  make -C %s BOARD=ESP32_GENERIC BOARD_VARIANT=SPIRAM "
                                           % os.path.join(str(mp), "ports", "esp32"))


# -------------------------------------------------------------- the build itself

@pytest.mark.parametrize("board_id, port_board, variant", [
    ("esp32cam", "ESP32_GENERIC", "SPIRAM"),
    ("xiao-esp32s3-sense", "ESP32_GENERIC_S3", "SPIRAM_OCT"),
])
def test_dry_run_prints_the_port_build(board_id, port_board, variant, tmp_path, capfd):
    mp = fake_micropython(tmp_path, port_board=port_board)
    fake_camera_module(tmp_path / "micropython-camera-API", layout="src")
    firmware.build_firmware(board_id, str(mp), env=fake_idf(tmp_path), dry_run=True)
    lines = capfd.readouterr().out.splitlines()
    port_dir = os.path.join(str(mp), "ports", "esp32")
    usermod = os.path.join(build.build_dir(board_id), "firmware", "camwatch_usermod.cmake")
    make = ["make", "-C", port_dir, "BOARD=" + port_board, "BOARD_VARIANT=" + variant,
            "BUILD=build-camwatch-" + board_id]
    assert lines[1:] == [
        "  " + shlex.join(["make", "-C", os.path.join(str(mp), "mpy-cross")]),
        "  " + shlex.join(make + ["submodules"]),
        "  " + shlex.join(make + ["FROZEN_MANIFEST=" + MANIFEST, "USER_C_MODULES=" + usermod]),
    ]


def test_camera_api_dir_from_the_environment(tmp_path, capfd):
    mp = fake_micropython(tmp_path, built=True)
    cam = fake_camera_module(tmp_path / "elsewhere" / "camera")
    env = dict(fake_idf(tmp_path), CAMERA_API_DIR=str(cam))
    firmware.build_firmware("esp32cam", str(mp), env=env, dry_run=True)
    lines = capfd.readouterr().out.splitlines()
    # mpy-cross is built and the submodules are there: only the port build runs.
    assert len(lines) == 2 and "FROZEN_MANIFEST=" in lines[1]


def test_usermod_selects_the_camera_model_and_keeps_our_manifest(tmp_path):
    cmake = str(fake_camera_module(tmp_path / "cam") / "micropython.cmake")
    out = firmware.write_usermod(boards.get("esp32s3-eye"), cmake, str(tmp_path / "u.cmake"))
    with open(out) as f:
        lines = f.read().splitlines()
    assert lines[1:] == ["set(MICROPY_CAMERA_MODEL ESP32S3_EYE)",
                         'include("%s")' % cmake,
                         'set(MICROPY_FROZEN_MANIFEST "%s")' % MANIFEST]


FAKE_MAKE = """#!{python}
# Stands in for make: records its arguments; the port build leaves a firmware.bin.
import json, os, shutil, sys
args = sys.argv[1:]
if "BOARD" in os.environ:  # our Makefile's BOARD=esp32cam must not reach MicroPython's
    sys.exit(3)
with open(os.environ["FAKE_MAKE_LOG"], "a") as f:
    f.write(json.dumps(args) + "\\n")
if any(a.startswith("FROZEN_MANIFEST=") for a in args):
    if os.environ.get("FAKE_MAKE_FAIL"):
        sys.exit(2)
    assert os.path.isfile(os.path.join({frozen!r}, "camwatch", "__init__.py"))
    out = os.path.join(args[args.index("-C") + 1], [a[6:] for a in args if a.startswith("BUILD=")][0])
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(os.environ["FAKE_IMAGE"], os.path.join(out, "firmware.bin"))
"""


@pytest.fixture
def fake_build(tmp_path, monkeypatch):
    """A full set-up with a stand-in make; returns (micropython_dir, env, log path)."""
    from tests.test_flash import merged_image

    monkeypatch.setattr(build, "build_dir", lambda b: str(tmp_path / "build" / b))
    mp = fake_micropython(tmp_path, built=True)
    fake_camera_module(tmp_path / "micropython-camera-API")
    env = fake_idf(tmp_path)
    executable(tmp_path / "bin" / "make",
               FAKE_MAKE.format(python=sys.executable, frozen=firmware.FROZEN_DIR))
    images = tmp_path / "images"
    images.mkdir()
    env.update(FAKE_MAKE_LOG=str(tmp_path / "make.log"), BOARD="esp32cam", PORT="/dev/ttyUSB0",
               FAKE_IMAGE=merged_image(str(images), "esp32", 0x1000, "built"))
    return mp, env, tmp_path / "make.log"


def test_build_stages_runs_the_port_build_and_checks_the_image(fake_build, tmp_path, capfd):
    mp, env, log = fake_build
    out = firmware.build_firmware("esp32cam", str(mp), env=env)
    assert out == str(tmp_path / "build" / "esp32cam" / "firmware.bin")
    with open(out, "rb") as a, open(env["FAKE_IMAGE"], "rb") as b:
        assert a.read() == b.read()
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls == [["-C", os.path.join(str(mp), "ports", "esp32"), "BOARD=ESP32_GENERIC",
                      "BOARD_VARIANT=SPIRAM", "BUILD=build-camwatch-esp32cam",
                      "FROZEN_MANIFEST=" + MANIFEST,
                      "USER_C_MODULES=" + str(tmp_path / "build" / "esp32cam" / "firmware"
                                              / "camwatch_usermod.cmake")]]
    printed = capfd.readouterr().out
    assert "make flash BOARD=esp32cam FIRMWARE=" in printed


def test_build_failure_says_where_to_look(fake_build):
    mp, env, log = fake_build
    env["FAKE_MAKE_FAIL"] = "1"
    with pytest.raises(ToolError) as exc:
        firmware.build_firmware("esp32cam", str(mp), env=env, log=lambda *a: None)
    assert str(exc.value).startswith("the MicroPython build failed (exit status 2)")
    assert "clean" in str(exc.value)


def test_a_build_for_the_wrong_chip_is_caught(fake_build, tmp_path):
    """The built image goes through the same check as `make flash`."""
    from tests.test_flash import merged_image

    mp, env, log = fake_build
    env["FAKE_IMAGE"] = merged_image(str(tmp_path / "images"), "esp32s3", 0x0, "s3")
    with pytest.raises(ToolError, match="is an ESP32-S3 image, but the board esp32cam"):
        firmware.build_firmware("esp32cam", str(mp), env=env, log=lambda *a: None)
