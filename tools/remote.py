"""Talking to a board through mpremote's serial transport.

The same calls work on a USB board and on the virtual board's pty. Code
that runs on the board uses paths relative to / or absolute ones that it
never renames (the unix VM's VfsPosix fails a rename when both paths are
absolute).
"""

from tools import ToolError, abi

# Runs on the board: print "<path> <sha256>" for every file.
_HASH_ALL = """\
import os, hashlib, binascii
def _walk(d):
    for e in os.ilistdir(d):
        p = (d if d != '/' else '') + '/' + e[0]
        if e[1] & 0x4000:
            _walk(p)
        else:
            h = hashlib.sha256()
            with open(p, 'rb') as f:
                while True:
                    b = f.read(1024)
                    if not b:
                        break
                    h.update(b)
            print(p, binascii.hexlify(h.digest()).decode())
_walk('/')
del _walk
"""

# Runs on the board: remove a file or a folder with everything in it.
_RMTREE = """\
import os
def _rm(p):
    try:
        m = os.stat(p)[0]
    except OSError:
        return
    if m & 0x4000:
        for n in os.listdir(p):
            _rm(p + '/' + n)
        os.rmdir(p)
    else:
        os.remove(p)
_rm(%r)
del _rm
"""


def connect(port):
    """An open mpremote SerialTransport on ``port`` (ToolError saying what to check)."""
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    try:
        return SerialTransport(port, baudrate=115200)
    except TransportError as exc:
        raise ToolError("cannot open %s (%s): is it the board's port, and is another program "
                        "(make repl, a serial monitor) holding it?" % (port, exc))


def close(t):
    try:
        t.close()
    except OSError:
        pass


def enter_raw(t, port):
    """Stop whatever runs and soft-reset into the raw REPL (a fresh heap;
    ``boot.py`` runs, ``main.py`` does not)."""
    from mpremote.transport import TransportError

    try:
        t.enter_raw_repl(soft_reset=True)
    except TransportError:
        raise ToolError("the board on %s does not answer MicroPython's raw REPL. Is MicroPython "
                        "flashed? (make flash PORT=%s) Is the port right?" % (port, port))


def run(t, code, what="deploy code"):
    """Run ``code`` in the raw REPL; return what it printed (ToolError on an exception)."""
    from mpremote.transport import TransportExecError

    try:
        return t.exec(code).decode()
    except TransportExecError as exc:
        raise ToolError("the board failed running %s:\n%s" % (what, exc.error_output))


def probe(t):
    """The ``tools.abi.board_abi`` of the board: what MicroPython it runs."""
    return abi.parse_probe(run(t, abi.PROBE, "the version probe"))


def device_files(t):
    """``{path: sha256}`` of every file on the board."""
    out = {}
    for line in run(t, _HASH_ALL).splitlines():
        path, _, digest = line.strip().rpartition(" ")
        if path:
            out[path] = digest
    return out


def write(t, path, data):
    """Write ``data`` to the board's file ``path``."""
    from mpremote.transport import TransportError

    try:
        t.fs_writefile(path, data, chunk_size=512)
    except (TransportError, OSError) as exc:
        raise ToolError("writing %s failed: %s (the board keeps its old app; run the deploy again)"
                        % (path, exc))


def mkdirs(t, path, made):
    """Create the folders above file ``path``; ``made``: a set of those known to exist."""
    parts = path.split("/")[1:-1]
    for i in range(1, len(parts) + 1):
        d = "/" + "/".join(parts[:i])
        if d not in made:
            run(t, "import os\ntry:\n os.mkdir(%r)\nexcept OSError:\n pass" % d)
            made.add(d)


def remove_tree(t, path):
    """Remove ``path`` on the board, a file or a folder with all it holds."""
    run(t, _RMTREE % path)
