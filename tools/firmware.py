"""``python -m tools firmware``: build a full MicroPython firmware with the app frozen in.

(The released camera images ``make flash`` downloads are handled by
``tools.images``.)

``build_firmware()`` runs the ESP32 port's own build in a MicroPython
checkout with ``firmware/manifest.py`` as the frozen manifest and the camera
user C module (the micropython-camera-API repository, found next to the
checkout or at ``CAMERA_API_DIR``). What is frozen is what ``make build``
ships for the board (the app package, ``lib/`` and the pinned Microdot
modules; boot.py and main.py stay files), staged in ``build/frozen/`` for
the manifest. It needs ESP-IDF set up in the shell; whatever is missing is
listed with how to get it.
"""

import glob
import os
import shlex
import shutil
import subprocess

from tools import ROOT, ToolError, boards, images
from tools.images import shortpath

MANIFEST = os.path.join(ROOT, "firmware", "manifest.py")
# firmware/manifest.py freezes what is here (relative path ../build/frozen);
# build_firmware() stages the board's modules in first.
FROZEN_DIR = os.path.join(ROOT, "build", "frozen")
# The MicroPython board and variant each chip is built as (PSRAM enabled:
# the camera driver needs it). ESP32-S3 camera boards carry octal PSRAM.
PORT_BOARDS = {
    "esp32": ("ESP32_GENERIC", "SPIRAM"),
    "esp32s3": ("ESP32_GENERIC_S3", "SPIRAM_OCT"),
}
CAMERA_API_NAME = "micropython-camera-API"
# Variables our Makefile exports that mean something else to MicroPython's.
_OUR_MAKE_VARS = ("BOARD", "BOARD_VARIANT", "BUILD", "PORT", "FIRMWARE")


# ------------------------------------------------------------ frozen build

def frozen_sources(board):
    """The modules a frozen firmware for ``board`` holds: ``[(source, target), ...]``.

    The same selection ``tools.build`` compiles for the board: the app in
    ``firmware/`` (minus boot.py, main.py, host-only files and the other
    chips' board layer), every module of ``lib/``, and the Microdot and MQTT
    client modules the app imports from the pinned packages. ``target`` is the module's path
    on the board's import path, e.g. ``camwatch/app.py``, ``microdot/sse.py``.
    """
    from tools import build

    found = []
    for src in build._python_files(build.FIRMWARE_DIR):
        rel = os.path.relpath(src, build.FIRMWARE_DIR)
        if rel in build.HOST_ONLY or rel in build.SOURCE_FILES:
            continue
        if board["chip"] not in build.BOARD_LAYER.get(rel, (board["chip"],)):
            continue
        found.append((src, rel.replace(os.sep, "/")))
    for src in build._python_files(build.LIB_DIR):
        found.append((src, os.path.relpath(src, build.LIB_DIR).replace(os.sep, "/")))
    mdir = build.microdot_dir()
    for name in build.MICRODOT_MODULES:
        found.append((os.path.join(mdir, name), "microdot/" + name))
    for package, modules in build.BOARD_PACKAGES.items():
        pdir = build.package_dir(package)
        for name in modules:
            found.append((os.path.join(pdir, name), package + "/" + name))
    return found


def stage_frozen(board, log=print):
    """Copy the board's frozen modules into ``build/frozen/``, where the manifest reads them.

    ``firmware/manifest.py`` freezes that tree as it is; returns its path.
    """
    if os.path.isdir(FROZEN_DIR):
        shutil.rmtree(FROZEN_DIR)
    sources = frozen_sources(board)
    for src, target in sources:
        dst = os.path.join(FROZEN_DIR, *target.split("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
    log("firmware: %d modules staged for freezing in %s" % (len(sources), shortpath(FROZEN_DIR)))
    return FROZEN_DIR


def camera_cmake(camera_dir):
    """The camera module's CMake entry point in ``camera_dir``, or None.

    Newer releases of the module keep it at the top, older ones in ``src/``.
    """
    for rel in ("micropython.cmake", os.path.join("src", "micropython.cmake")):
        path = os.path.join(camera_dir, rel)
        if os.path.isfile(path):
            return path
    return None


def _has_camera_driver(micropython_dir, idf_path):
    """Whether the esp32-camera IDF component is where the build finds it."""
    if idf_path and os.path.isdir(os.path.join(idf_path, "components", "esp32-camera")):
        return True
    pattern = os.path.join(micropython_dir, "ports", "esp32", "main*", "idf_component.yml")
    for yml in glob.glob(pattern):
        with open(yml) as f:
            if "esp32-camera" in f.read():
                return True
    return False


def check_build_env(board, micropython_dir, camera_dir=None, env=None):
    """Check everything a frozen build needs; return the resolved paths.

    Raises one ToolError listing every missing piece and how to get it.
    Returns ``(micropython_dir, camera_dir, camera_cmake)`` as absolute paths.
    """
    env = os.environ if env is None else env
    if board["chip"] not in PORT_BOARDS:
        raise ToolError("board %s (%s) runs no ESP32 firmware; pick an ESP32 board "
                        "(`python -m tools boards` lists them)" % (board["id"], board["name"]))
    port_board = PORT_BOARDS[board["chip"]][0]
    missing = []
    mp_ok = False
    if not micropython_dir:
        missing.append(
            "no MicroPython checkout given: clone the micropython/micropython repository "
            "(a release tag, v1.24 or later), then pass MICROPY_DIR=path/to/micropython "
            "(or --micropython-dir)")
    else:
        micropython_dir = os.path.abspath(micropython_dir)
        if not os.path.isdir(micropython_dir):
            missing.append("MICROPY_DIR %s does not exist; point it at a clone of the "
                           "micropython/micropython repository" % micropython_dir)
        elif not (os.path.isfile(os.path.join(micropython_dir, "ports", "esp32", "Makefile"))
                  and os.path.isfile(os.path.join(micropython_dir, "py", "mkrules.mk"))):
            missing.append("%s is not a MicroPython checkout (no ports/esp32/Makefile or "
                           "py/mkrules.mk); MICROPY_DIR must be the top folder of a clone of "
                           "the micropython/micropython repository" % micropython_dir)
        elif not os.path.isdir(os.path.join(micropython_dir, "ports", "esp32", "boards",
                                            port_board)):
            missing.append("%s has no ports/esp32/boards/%s: check out MicroPython v1.24 or "
                           "later (git -C %s checkout <release tag>)"
                           % (micropython_dir, port_board, shlex.quote(micropython_dir)))
        else:
            mp_ok = True

    if camera_dir is None:
        camera_dir = env.get("CAMERA_API_DIR") or None
    if camera_dir is None and micropython_dir:
        camera_dir = os.path.join(os.path.dirname(micropython_dir), CAMERA_API_NAME)
    cmake = None
    if camera_dir:
        camera_dir = os.path.abspath(camera_dir)
        cmake = camera_cmake(camera_dir)
    if not cmake:
        where = (" at %s (no micropython.cmake or src/micropython.cmake there)" % camera_dir
                 if camera_dir else "")
        missing.append(
            "the camera module was not found%s: clone the cnadler86/micropython-camera-API "
            "repository next to the MicroPython checkout, or set CAMERA_API_DIR=path/to/it"
            % where)

    idf_path = env.get("IDF_PATH")
    if not idf_path:
        missing.append(
            "ESP-IDF is not set up in this shell (IDF_PATH is unset): install the ESP-IDF "
            "version named in %s, then run `source path/to/esp-idf/export.sh` and this "
            "command again in the same shell"
            % (os.path.join(micropython_dir, "ports", "esp32", "README.md") if mp_ok
               else "MicroPython's ports/esp32/README.md"))
    elif not os.path.isdir(idf_path):
        missing.append("IDF_PATH is %s, which does not exist: run `source "
                       "path/to/esp-idf/export.sh` again" % idf_path)
    elif not shutil.which("idf.py", path=env.get("PATH", "")):
        missing.append("idf.py was not found on PATH although IDF_PATH is %s: run "
                       "`source %s` in this shell first"
                       % (idf_path, os.path.join(idf_path, "export.sh")))
    if not shutil.which("make", path=env.get("PATH", "")):
        missing.append("make was not found on PATH: install the host build tools (on Debian "
                       "or Ubuntu: sudo apt-get install build-essential)")
    idf_ok = bool(idf_path) and os.path.isdir(idf_path)
    if mp_ok and idf_ok and not _has_camera_driver(micropython_dir, idf_path):
        missing.append(
            "the esp32-camera driver (an ESP-IDF component) is missing: clone the "
            "espressif/esp32-camera repository into %s, or add `espressif/esp32-camera` "
            "to the dependencies in %s"
            % (os.path.join(idf_path, "components") + os.sep,
               os.path.join(micropython_dir, "ports", "esp32", "main", "idf_component.yml")))
    if missing:
        raise ToolError("cannot build the %s firmware yet:\n" % board["id"]
                        + "\n".join("  - " + m for m in missing))
    return micropython_dir, camera_dir, cmake


def write_usermod(board, cmake, out):
    """Write the user C module file the build is given.

    It selects the board's camera model, pulls in the camera module and then
    names ``firmware/manifest.py`` as the frozen manifest (some camera module
    releases set their own, which would otherwise replace ours).
    """
    fw = board.get("firmware") or {}
    lines = ["# Written by `python -m tools firmware --board %s`; do not edit." % board["id"]]
    if fw.get("camera_model"):
        lines.append("set(MICROPY_CAMERA_MODEL %s)" % fw["camera_model"])
    lines.append('include("%s")' % cmake.replace("\\", "/"))
    lines.append('set(MICROPY_FROZEN_MANIFEST "%s")' % MANIFEST.replace("\\", "/"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    return out


def build_commands(board, micropython_dir, usermod):
    """The commands that build the board's firmware in ``micropython_dir``.

    Returns ``(commands, image)``: argv lists to run in order, and where the
    merged firmware image ends up.
    """
    port_board, variant = PORT_BOARDS[board["chip"]]
    port_dir = os.path.join(micropython_dir, "ports", "esp32")
    build = "build-camwatch-" + board["id"]
    cmds = []
    if not os.path.isfile(os.path.join(micropython_dir, "mpy-cross", "build", "mpy-cross")):
        cmds.append(["make", "-C", os.path.join(micropython_dir, "mpy-cross")])
    port_args = ["make", "-C", port_dir, "BOARD=" + port_board, "BOARD_VARIANT=" + variant,
                 "BUILD=" + build]
    berkeley = os.path.join(micropython_dir, "lib", "berkeley-db-1.xx")
    if not (os.path.isdir(berkeley) and os.listdir(berkeley)):
        cmds.append(port_args + ["submodules"])
    cmds.append(port_args + ["FROZEN_MANIFEST=" + MANIFEST, "USER_C_MODULES=" + usermod])
    return cmds, os.path.join(port_dir, build, "firmware.bin")


def build_firmware(board_id, micropython_dir, camera_dir=None, env=None, dry_run=False, log=print):
    """Build a full MicroPython firmware for ``board_id`` with the app frozen in.

    micropython_dir: the MicroPython checkout (MICROPY_DIR). camera_dir: the
    micropython-camera-API checkout (default: CAMERA_API_DIR, else next to
    the MicroPython checkout). env: the environment to check and build with
    (default os.environ). dry_run: print the build commands, run nothing.

    The image is copied to ``build/<board>/firmware.bin``; returns its path.
    """
    from tools import build

    board = boards.get(board_id)
    env = dict(os.environ if env is None else env)
    micropython_dir, camera_dir, cmake = check_build_env(board, micropython_dir, camera_dir, env)
    usermod = os.path.join(build.build_dir(board_id), "firmware", "camwatch_usermod.cmake")
    cmds, image = build_commands(board, micropython_dir, usermod)
    out = os.path.join(build.build_dir(board_id), "firmware.bin")
    if dry_run:
        log("dry run: `firmware` would stage the app's modules in %s, write %s and run:"
            % (shortpath(FROZEN_DIR), shortpath(usermod)))
        for cmd in cmds:
            log("  " + shlex.join(cmd))
        return out
    stage_frozen(board, log=log)
    write_usermod(board, cmake, usermod)
    for name in _OUR_MAKE_VARS:
        env.pop(name, None)
    for cmd in cmds:
        log("firmware: " + shlex.join(cmd))
        try:
            proc = subprocess.run(cmd, env=env)
        except OSError as exc:
            raise ToolError("could not run `%s`: %s" % (shlex.join(cmd), exc))
        if proc.returncode != 0:
            raise ToolError("the MicroPython build failed (exit status %d) in `%s`; its output "
                            "above says why. A clean start often helps: make -C %s BOARD=%s "
                            "BUILD=build-camwatch-%s clean"
                            % (proc.returncode, shlex.join(cmd),
                               os.path.join(micropython_dir, "ports", "esp32"),
                               PORT_BOARDS[board["chip"]][0], board_id))
    if not os.path.isfile(image):
        raise ToolError("the build finished but left no %s; check its output above" % image)
    shutil.copyfile(image, out)
    images.check_image(out, board)
    log("firmware: %s (%d bytes). Flash it with: make flash BOARD=%s FIRMWARE=%s PORT=/dev/ttyUSB0"
        % (shortpath(out), os.path.getsize(out), board_id, shortpath(out)))
    return out
