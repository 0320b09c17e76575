"""What to copy and what to remove to make a board's files match a build.

Shared by ``make deploy`` (to a board over mpremote) and ``make run`` (into
the virtual board's flash folder). Paths here are absolute board paths
("/lib/x.mpy").
"""

import hashlib
import os
import shutil

# Board files a deploy never removes although the build does not have them:
# the user's settings, anything the app keeps under /data, the virtual
# board's control files, a mounted ROMFS image (read-only; listing / on
# a board with a romfs partition shows it as /rom), and boot.py's rollback
# state (/.previous: the files the last deploy replaced, until its app
# confirms; /.rolledback: its note on a rollback, until the app reports it).
PRESERVE_FILES = ("/settings.json", "/.rolledback")
# What finishes a deploy at boot: a deploy replaces these on their own,
# each by a rename, before it writes the plan (never staged, never rolled
# back), so the board always has the code that reads the plan.
BOOT_FILES = ("/boot.py", "/deployguard.mpy")
PRESERVE_DIRS = ("/data/", "/.staging/", "/.vboard/", "/rom/", "/.previous/")


def preserved(path):
    return path in PRESERVE_FILES or any(path.startswith(d) for d in PRESERVE_DIRS)


def wanted(manifest):
    """``{board path: sha256}`` for every file of a build manifest."""
    return {"/" + e["path"]: e["sha256"] for e in manifest["files"]}


def plan(manifest, device):
    """Return ``(copy, delete)``: sorted board paths.

    :param manifest: a build manifest (``tools.build``).
    :param device: ``{board path: sha256}`` of the files on the board.
    """
    want = wanted(manifest)
    copy = sorted(p for p, h in want.items() if device.get(p) != h)
    delete = sorted(p for p in device if p not in want and not preserved(p))
    return copy, delete


def local_hashes(root):
    """``{board path: sha256}`` of a folder standing in for a board's flash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            out["/" + os.path.relpath(path, root).replace(os.sep, "/")] = digest
    return out


def sync_folder(manifest, fs, flash, log=print):
    """Make folder ``flash`` hold build ``fs`` (keeping preserved files)."""
    os.makedirs(flash, exist_ok=True)
    copy, delete = plan(manifest, local_hashes(flash))
    for path in copy:
        dst = os.path.join(flash, path[1:])
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(os.path.join(fs, path[1:]), dst)
    for path in delete:
        os.remove(os.path.join(flash, path[1:]))
    if copy or delete:
        log("sync: %d files copied, %d removed in %s" % (len(copy), len(delete), flash))
    return copy, delete
