# camwatch boot.py: runs first on every reset, before main.py.
#
# It finishes an interrupted deploy, and rolls back one whose app never
# comes up. Keep this file small and independent of the app: it is the one
# piece that must keep working whatever a deploy left behind.
#
# Finishing: a deploy (over USB with mpremote, or over Wi-Fi through
# camwatch.update) copies changed files into /.staging and writes
# /.staging/.swap (a JSON list of moves and deletes) only once every file is
# there; this guard then moves them into place. Without .swap the staging
# area is incomplete and is discarded, so the board always boots either the
# old app or the new one, never half of each.
#
# Rolling back: each file a deploy replaces or deletes is moved to
# /.previous first (and /.previous/.added lists the files it adds), unless
# /.previous already holds an older copy: that one is the last app that was
# confirmed. main.py counts each start of the app in /.previous/.starts; the
# app removes /.previous once it has served for a while (confirm_s). After
# 3 starts that did not confirm, this guard puts /.previous back, says so on
# the console and leaves a note in /.rolledback that the app reports as a
# warning status.
#
# Each step is safe to cut by a power loss and to run again: the files
# still in /.staging (or /.previous) are the ones not moved yet.
#
# Paths are relative to / (the working directory at boot on the board and on
# the virtual board), which renames correctly on every filesystem we run on.
import os
import sys

STAGING = ".staging"
PREVIOUS = ".previous"
ADDED = ".previous/.added"
STARTS = ".previous/.starts"
NOTE = ".rolledback"
STARTS_MAX = 3


def flash_first():
    # On a board with a romfs partition the import path is
    # ['', '.frozen', '/rom', '/rom/lib', '/lib']: the app's package on the
    # flash ('' is /) already wins over /rom, but /rom/lib would win over
    # /lib, so a deployed library would be ignored beside a deployed app.
    # Put /lib first: what `make deploy` wrote always wins over the image.
    path = sys.path
    if "/lib" in path and "/rom/lib" in path and path.index("/lib") > path.index("/rom/lib"):
        path.remove("/lib")
        path.insert(path.index("/rom/lib"), "/lib")


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
    _write(STARTS, "0")  # a new app: its starts are counted afresh
    _rmtree(STAGING)
    print("deploy: finished,", moved, "files moved,", len(delete), "removed")


def roll_back():
    try:
        with open(STARTS) as f:
            starts = int(f.read())
    except (OSError, ValueError):  # no deploy waiting for its app to confirm
        return
    if starts < STARTS_MAX:
        return
    why = ("the app deployed last did not come up %d times in a row; the previous app "
           "was restored" % starts)
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
            elif folder or name[0] != ".":  # not .added, .starts
                _move(PREVIOUS + rel, rel[1:])
                restored += 1
    _rmtree(PREVIOUS)
    print("deploy: rolled back,", restored, "files restored")


flash_first()
finish_deploy()
roll_back()
del flash_first, finish_deploy, roll_back, _exists, _rmtree, _makedirs, _move, _read_json, _write
