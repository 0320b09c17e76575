"""After a deploy: confirm the new app, or report boot.py's rollback.

boot.py keeps the files a deploy replaced in /.previous until the app that
replaced them has served for ``confirm_s`` (``confirm()``); after 3
failures before that (deployguard), it puts them back and leaves a note in
/.rolledback (``rolled_back()``). The app runs ``run()`` at start only
while either is there.
"""

import asyncio
import os
import sys

PREVIOUS = ".previous"
NOTE = ".rolledback"


def rmtree(path):
    """Remove ``path`` and everything under it; nothing if it is missing."""
    try:
        mode = os.stat(path)[0]
    except OSError:
        return
    if mode & 0x4000:
        for name in os.listdir(path):
            rmtree(path + "/" + name)
        os.rmdir(path)
    else:
        os.remove(path)


def pending():
    """True while a deploy waits for its app to confirm (boot.py keeps the
    files it replaced in /.previous until then)."""
    try:
        os.stat(PREVIOUS)
        return True
    except OSError:
        return False


def confirm():
    """The running app is the one to keep: drop what a rollback would
    restore. Returns the number of files dropped."""
    count = 0
    stack = [PREVIOUS]
    while stack:
        folder = stack.pop()
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            path = folder + "/" + name
            if os.stat(path)[0] & 0x4000:
                stack.append(path)
            elif folder != PREVIOUS or name[0] != ".":
                count += 1
    rmtree(PREVIOUS)
    return count


def rolled_back():
    """boot.py's note on the rollback it did at this boot, once (the note
    is removed); None when there was none."""
    try:
        with open(NOTE) as f:
            note = f.read()
    except OSError:
        return None
    try:
        os.remove(NOTE)
    except OSError:
        pass
    return note


async def run(app):
    """Report a rollback boot.py did; keep a new app once it has served
    (its network up) for ``confirm_s`` in a row. Unloads this module after."""
    note = rolled_back()
    if note:
        app.status.report("warning", "update rolled back: " + note, {"rolled_back": True})
    if pending():
        need = app.settings["confirm_s"]
        app.status.report("update", "a new app: kept once it has served for %d s" % need,
                          {"phase": "confirming"})
        served = 0
        while served < need:
            await app._net_up.wait()  # serving: the server runs while the network is up
            await asyncio.sleep(1)
            served = served + 1 if app._net_up.is_set() else 0
        count = confirm()
        app.status.report("update", "the new app has served for %d s and is kept (%d files "
                          "of the one before it dropped)" % (need, count), {"phase": "confirmed"})
    # its heap back: no module or package attribute holds it any more
    sys.modules.pop("camwatch.deployed", None)
    package = sys.modules.get("camwatch")
    if package is not None and hasattr(package, "deployed"):
        delattr(package, "deployed")
