# camwatch boot.py: runs first on every reset, before main.py.
#
# It finishes an interrupted `make deploy`. A deploy copies changed files into
# /.staging and writes /.staging/.swap (a JSON list of moves and deletes) only
# once every file is there; this guard then moves them into place. Without
# .swap the staging area is incomplete and is discarded, so the board always
# boots either the old app or the new one, never half of each. Keep this file
# small and independent of the app: it is the one piece that must keep working
# whatever the deploy left behind.
#
# Paths are relative to / (the working directory at boot on the board and on
# the virtual board), which renames correctly on every filesystem we run on.
import os
import sys

STAGING = ".staging"


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


def finish_deploy():
    try:
        import json

        with open(STAGING + "/.swap") as f:
            plan = json.load(f)
    except (OSError, ValueError):  # no plan, or one cut short: staging is incomplete
        _rmtree(STAGING)
        return
    moved = 0
    for path in plan["copy"]:
        path = path.lstrip("/")
        try:
            os.stat(STAGING + "/" + path)
        except OSError:
            continue  # moved already by an earlier, interrupted run of this guard
        _makedirs(path)
        try:
            os.rename(STAGING + "/" + path, path)  # replaces atomically on littlefs
        except OSError:
            os.remove(path)  # filesystems that refuse to rename over a file
            os.rename(STAGING + "/" + path, path)
        moved += 1
    for path in plan["delete"]:
        try:
            os.remove(path.lstrip("/"))
        except OSError:
            pass
    _rmtree(STAGING)
    print("deploy: finished,", moved, "files moved,", len(plan["delete"]), "removed")


flash_first()
finish_deploy()
del flash_first, finish_deploy, _rmtree, _makedirs
