# Runs on the MicroPython VM: the on-VM test runner used by tests/test_vm.py.
#
# micropython vmrun.py MODULE [TEST ...]
#
# Imports MODULE, runs its test_* functions (async ones under asyncio.run) in
# file order and prints one line per test ("PASS name" or "FAIL name" and the
# traceback), then "DONE passed failed".
import sys

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


def main():
    modname = sys.argv[1]
    mod = __import__(modname)
    names = sys.argv[2:] or _names(mod)
    passed = failed = 0
    for name in names:
        fn = getattr(mod, name)
        try:
            result = fn()
            if result is not None and hasattr(result, "send"):
                asyncio.run(result)
            print("PASS", name)
            passed += 1
        except Exception as exc:
            print("FAIL", name)
            sys.print_exception(exc)
            print("END", name)
            failed += 1
    print("DONE", passed, failed)


main()
