"""Finish a deploy, or roll back one whose app never came up.

boot.py imports this module only when there is something to do (a
/.staging or a /.previous folder), and drops it afterwards: a board that
is not being updated never compiles or holds it. It is independent of the
camwatch package, whatever state a deploy left that in.

Finishing: a deploy (over USB with mpremote, or over Wi-Fi through
camwatch.update) copies changed files into /.staging and writes
/.staging/.swap (a JSON list of moves and deletes) only once every file is
there; ``run()`` then moves them into place. Without .swap the staging
area is incomplete and is discarded, so the board always boots either the
old app or the new one, never half of each.

Rolling back: each file a deploy replaces or deletes is moved to
/.previous first (and /.previous/.added lists the files it adds), unless
/.previous already holds an older copy: that one is the last app that was
kept. The app removes /.previous once it has served for ``confirm_s``
(camwatch.deployed). Until then each failure of the app is counted: an
exception out of it (main.py calls ``failed()``, which resets the board
after a pause) or, on a board, a watchdog reset (the app hung). After 3,
``run()`` puts /.previous back, says so on the console and leaves a note
in /.rolledback that the app reports as a warning status. A reset by a
person, a power cut or Ctrl-C is not a failure.

Each step is safe to cut by a power loss and to run again: the files still
in /.staging (or /.previous) are the ones not moved yet.

Paths are relative to / (the working directory at boot on the board and on
the virtual board), which renames correctly on every filesystem we run on.
"""
import os
import sys

STAGING = ".staging"
PREVIOUS = ".previous"
ADDED = ".previous/.added"
FAILURES = ".previous/.failures"
NOTE = ".rolledback"
FAILURES_MAX = 3


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _rmtree(path):
    try:
        mode = os.stat(path)[0]
    except OSError:
        return
    if mode & 0x4000:
        for name in os.listdir(path):
            _rmtree(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)


def _makedirs(path):
    built = ""
    for part in path.split("/")[:-1]:
        built += part
        try:
            os.mkdir(built)
        except OSError:
            pass
        built += "/"


def _move(src, dst):
    # rename src over dst: atomic on littlefs
    _makedirs(dst)
    try:
        os.rename(src, dst)
    except OSError:
        os.remove(dst)  # filesystems that refuse to rename over a file
        os.rename(src, dst)


def _read_json(path, default):
    import json

    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):  # none yet, or cut short: nothing recorded
        return default


def _write(path, text):
    # whole or not at all: a new file renamed over the old
    with open(path + ".new", "w") as f:
        f.write(text)
    _move(path + ".new", path)


def finish_deploy():
    plan = _read_json(STAGING + "/.swap", None)
    if plan is None:  # no plan, or one cut short: staging is incomplete
        _rmtree(STAGING)
        return
    import json

    copy = [p.lstrip("/") for p in plan["copy"]]
    delete = [p.lstrip("/") for p in plan["delete"]]
    # what rolling back must delete: the files this deploy adds, recorded
    # before any of them is moved in
    added = _read_json(ADDED, [])
    new = [p for p in copy if p not in added and not _exists(p)
           and not _exists(PREVIOUS + "/" + p)]
    if new or not _exists(ADDED):
        _makedirs(ADDED)
        _write(ADDED, json.dumps(added + new))
    moved = 0
    for path in copy:
        if not _exists(STAGING + "/" + path):
            continue  # moved already by an earlier, interrupted run of this guard
        keep = PREVIOUS + "/" + path
        if path not in added and _exists(path) and not _exists(keep):
            _move(path, keep)  # the confirmed app's copy, for a rollback
        _move(STAGING + "/" + path, path)
        moved += 1
    for path in delete:
        keep = PREVIOUS + "/" + path
        if not _exists(path):
            continue
        if path in added or _exists(keep):
            os.remove(path)
        else:
            _move(path, keep)
    _write(FAILURES, "0")  # a new app: its failures are counted afresh
    _rmtree(STAGING)
    print("deploy: finished,", moved, "files moved,", len(delete), "removed")


def roll_back():
    try:
        with open(FAILURES) as f:
            failures = int(f.read())
    except (OSError, ValueError):  # no deploy waiting for its app to be kept
        return
    if failures < FAILURES_MAX:
        return
    why = ("the app deployed last failed %d times before it had served confirm_s; the "
           "previous app was restored" % failures)
    print("deploy: rolling back:", why)
    if not _exists(NOTE):
        _write(NOTE, why)  # first: a rollback cut short is finished at the next boot
    restored = 0
    for path in _read_json(ADDED, []):
        try:
            os.remove(path)
        except OSError:
            pass
    stack = [""]
    while stack:  # every file kept in /.previous goes back to its place
        folder = stack.pop()
        for name in os.listdir(PREVIOUS + folder):
            rel = folder + "/" + name
            if os.stat(PREVIOUS + rel)[0] & 0x4000:
                stack.append(rel)
            elif folder or name[0] != ".":  # not .added, .failures
                _move(PREVIOUS + rel, rel[1:])
                restored += 1
    _rmtree(PREVIOUS)
    print("deploy: rolled back,", restored, "files restored")


def count_failure():
    """One more failure of an app that has not been kept yet."""
    try:
        with open(FAILURES) as f:
            failures = int(f.read())
    except (OSError, ValueError):  # no deploy waiting to be kept
        return
    _write(FAILURES, str(failures + 1))


def failed(exc):
    """main.py: the app stopped with ``exc``. Count it against a deploy
    that waits to be kept, say so, and reset the board after 5 s (Ctrl-C
    there gives the REPL)."""
    import time

    sys.print_exception(exc)
    count_failure()
    print("camwatch: the app stopped; restarting in 5 s (Ctrl-C for the REPL)")
    time.sleep(5)
    import machine

    try:
        machine.reset()  # as the reset button does
    except AttributeError:  # the virtual board: its supervisor restarts the VM it ends
        os.system("kill -TERM $PPID")


def _watchdog_reset():
    # True on a board that the watchdog reset (the app hung); the virtual
    # board has no watchdog
    try:
        import machine

        return machine.reset_cause() == machine.WDT_RESET
    except AttributeError:
        return False


def run():
    """boot.py: finish a staged deploy; count a watchdog reset as a failure
    of an app not kept yet; roll back after 3 failures."""
    finish_deploy()
    if _exists(PREVIOUS) and _watchdog_reset():
        count_failure()
    roll_back()
