# camwatch boot.py: runs first on every reset, before main.py.
#
# It puts /lib before /rom/lib, then lets deployguard finish an interrupted
# deploy or roll back one whose app never came up (see deployguard.py). That
# module is imported only when /.staging or /.previous says there is work,
# and dropped afterwards: a board that is not being updated never holds it.
# Keep this file small and independent of the app.
import os
import sys


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


def guard():
    for folder in (".staging", ".previous"):
        try:
            os.stat(folder)
        except OSError:
            continue
        try:
            import deployguard

            deployguard.run()
        except Exception as exc:  # a deploy left it broken: boot what is there
            print("deploy: the boot guard failed:", repr(exc))
        sys.modules.pop("deployguard", None)
        return


flash_first()
guard()
del flash_first, guard
