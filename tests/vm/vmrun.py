# Runs on MicroPython: the on-VM test runner, used by tests/test_vm.py on the
# host's VM and by `make test-hw` on a board.
#
# micropython vmrun.py [--scratch DIR] [--sources DIR] MODULE [TEST ...]
#   or, on a board: import vmrun; vmrun.run(MODULE, [TEST, ...], scratch, sources)
#
# Imports MODULE, runs its test_* functions (async ones under asyncio.run) in
# file order and prints one line per test: "PASS name", "SKIP name reason",
# or "FAIL name", the traceback and "END name"; then "DONE passed failed skipped".
import os
import sys

import vmtest

try:
    import asyncio
except ImportError:
    asyncio = None


def _names(mod):
    with open(mod.__file__) as f:
        src = f.read()
    out = []
    for line in src.split("\n"):
        for prefix in ("def test_", "async def test_"):
            if line.startswith(prefix):
                out.append(line[len(prefix) - 5:].split("(")[0])
    return out


def _mkdir(path):
    built = ""
    for part in path.split("/"):
        built += part
        if built and built != ".":
            try:
                os.mkdir(built)
            except OSError:
                pass
        built += "/"


def run(modname, names=None, scratch=None, sources=None):
    """Run the tests ``names`` (default: all) of module ``modname``.

    scratch: a folder the tests may write in (made if missing). sources:
    where the repository's files are, for vmtest.source().
    """
    if scratch:
        _mkdir(scratch)
        vmtest.SCRATCH = scratch
    if sources:
        vmtest.SOURCES = sources
    mod = __import__(modname)
    names = names or _names(mod)
    passed = failed = skipped = 0
    for name in names:
        fn = getattr(mod, name)
        try:
            result = fn()
            if result is not None and hasattr(result, "send"):
                asyncio.run(result)
            print("PASS", name)
            passed += 1
        except vmtest.Skip as exc:
            print("SKIP", name, exc.args[0] if exc.args else "")
            skipped += 1
        except Exception as exc:
            print("FAIL", name)
            sys.print_exception(exc)
            print("END", name)
            failed += 1
    print("DONE", passed, failed, skipped)


def main(argv):
    opts = {}
    while argv and argv[0] in ("--scratch", "--sources"):
        opts[argv[0][2:]] = argv[1]
        argv = argv[2:]
    run(argv[0], argv[1:], opts.get("scratch"), opts.get("sources"))


if __name__ == "__main__":
    main(sys.argv[1:])
