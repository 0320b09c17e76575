"""Runs the on-VM suites in tests/vm/ on the real MicroPython VM.

Each tests/vm/test_*.py module runs once in one VM process (tests/vm/vmrun.py
is the runner, with a fresh scratch folder); every test_* function in it is
reported as its own pytest test, skipped with its reason when it skipped
itself (tests that need a real board: `make test-hw` runs them there).
"""

import functools
import glob
import os
import re
import tempfile

import pytest

from conftest import VM_TESTS, run_vm


def _collect():
    cases = []
    for path in sorted(glob.glob(os.path.join(VM_TESTS, "test_*.py"))):
        module = os.path.basename(path)[:-3]
        with open(path) as f:
            for m in re.finditer(r"^(?:async )?def (test_\w+)\(", f.read(), re.M):
                cases.append((module, m.group(1)))
    return cases


@functools.lru_cache(maxsize=None)
def _run_module(module, fs):
    with tempfile.TemporaryDirectory(prefix="vm-scratch-") as scratch:
        proc = run_vm(["vmrun.py", "--scratch", scratch, module], fs, timeout=300)
    results, current, trace = {}, None, []
    for line in proc.stdout.splitlines():
        if line.startswith("PASS "):
            results[line[5:]] = None
        elif line.startswith("SKIP "):
            name, _, reason = line[5:].partition(" ")
            results[name] = ("skip", reason)
        elif line.startswith("FAIL "):
            current, trace = line[5:], []
        elif line.startswith("END ") and current:
            results[current] = "\n".join(trace)
            current = None
        elif current:
            trace.append(line)
    return results, proc


@pytest.mark.parametrize("module,name", _collect())
def test_on_vm(module, name, vboard_fs):
    results, proc = _run_module(module, vboard_fs)
    if name not in results:
        pytest.fail("%s.%s did not run on the VM (exit %s):\n%s\n%s"
                    % (module, name, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    outcome = results[name]
    if isinstance(outcome, tuple):
        pytest.skip(outcome[1])
    if outcome is not None:
        pytest.fail("on the MicroPython VM:\n" + outcome)
