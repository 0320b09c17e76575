"""After a deploy: confirm the new app, or report boot.py's rollback.

boot.py keeps the files a deploy replaced in /.previous until the app that
replaced them has served for ``confirm_s`` (``confirm()``); after 3
failures before that (deployguard), it puts them back and leaves a note in /.rolledback
(``rolled_back()``). Small on purpose: the app loads it at start only while
either is there.
"""

import os

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

