"""Power cut during settings saves, on the real VM with the built app.

Tried: the VM saving new versions of the settings without end (each a new
host name and mask), killed with SIGKILL at a random moment, 100 times in a
row on the same flash folder; once on the host's filesystem (rename over
the old file) and once standing in for FAT, which cannot rename over a file
(the old file is removed first, then the new one renamed: the step a cut can
fall between). After each kill the settings are loaded as the app does at
boot. Checked: no warning, the version is the last one the VM reported
saved or the one after it (old or new, never older, never a mix of two),
and no ``.new`` is left behind.

A SIGKILL stops the VM between two instructions; what it wrote is kept by
the host's OS. A board's power cut can also tear a flash write in half:
that is the filesystem's to survive (littlefs is built for it, FAT is not).
What this proves is that camwatch's save never leaves a moment when neither
a complete old nor a complete new file can be found.

``POWERCUT_CYCLES`` sets the number of kills (100).
"""

import json
import os
import random
import re
import select
import signal
import subprocess
import time

import pytest

from conftest import VM_TESTS
from tools import boards
from tools.vboard import micropython_command

CYCLES = int(os.environ.get("POWERCUT_CYCLES", "100"))


def vm(fs, args, flash, **kw):
    path = ":".join([".frozen", fs, os.path.join(fs, "lib"), VM_TESTS])
    heap = boards.get("vboard")["heap"]["vm_bytes"]
    return subprocess.Popen([micropython_command(), "-X", "heapsize=%d" % heap,
                             os.path.join(VM_TESTS, "powercut.py")] + args,
                            cwd=str(flash), env=dict(os.environ, MICROPYPATH=path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def read_until(proc, text, timeout=20):
    out = b""
    deadline = time.monotonic() + timeout
    while text not in out:
        left = deadline - time.monotonic()
        assert left > 0, "VM did not print %r: %r" % (text, out)
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, "VM ended: %r" % out
            out += chunk
    return out


@pytest.mark.parametrize("fs_kind", ["posix", "fat"])
def test_a_power_cut_during_saves_leaves_the_old_or_the_new_settings(vboard_fs, tmp_path,
                                                                     fs_kind):
    flash = tmp_path / "flash"
    flash.mkdir()
    rng = random.Random(int(os.environ.get("POWERCUT_SEED", "0")) or None)
    outcomes = {"old": 0, "new": 0}
    found = {}
    last = 0
    for cycle in range(CYCLES):
        saver = vm(vboard_fs, ["save", fs_kind], flash)
        out = read_until(saver, b"ready")
        time.sleep(rng.uniform(0.001, 0.05))  # the moment of the cut: random
        saver.send_signal(signal.SIGKILL)
        out += saver.communicate(timeout=10)[0]
        # whole lines only: the cut can fall in the middle of a print
        lines = out.decode().split("\n")[:-1]
        saves = [int(line[6:]) for line in lines if re.fullmatch(r"saved \d+", line)]
        assert "ready %d" % last in lines  # it began from what we saw
        done = saves[-1] if saves else last
        check = vm(vboard_fs, ["check"], flash)
        text = check.communicate(timeout=30)[0].decode()
        assert check.returncode == 0, text
        got = json.loads(text.strip().splitlines()[-1])
        key = "+".join(got["files"]) or "none"
        found[key] = found.get(key, 0) + 1
        assert got["warnings"] == [], (cycle, got)
        assert got["consistent"], (cycle, got)
        assert got["version"] in (done, done + 1), (cycle, done, got)
        if got["version"]:  # nothing left over beside the file
            assert got["left"] == ["settings.json"], (cycle, got)
        outcomes["new" if got["version"] == done + 1 else "old"] += 1
        last = got["version"]
    print("%s: %d cuts after %d saves in all; found old %d, new %d; files at boot: %s"
          % (fs_kind, CYCLES, last, outcomes["old"], outcomes["new"], found))
    assert last > CYCLES  # it did save, many times
