# Run by tests/test_powercut.py on the VM, in a folder standing in for the
# board's flash (not a test module: test_vm.py runs test_*.py only).
#
#   powercut.py save posix|fat   load the settings, then save new versions
#                                without end, printing "saved N" after each
#   powercut.py check            load the settings as the app does at boot
#                                and print what was found, as JSON
#
# "fat" stands in for a filesystem that cannot rename over a file (FAT on a
# board): rename refuses while the target exists, so Settings.save takes its
# other path (remove the old file, then rename), and the removal takes a
# fifth of a millisecond, as erasing flash does, so kills land between them.
import json
import os
import sys
import time

from camwatch import settings as settings_module
from camwatch.settings import Settings

PATH = "settings.json"


class FatLikeOs:
    def rename(self, old, new):
        try:
            os.stat(new)
        except OSError:
            return os.rename(old, new)
        raise OSError(17, "exists")  # EEXIST

    def remove(self, path):
        os.remove(path)
        time.sleep_us(200)

    def stat(self, path):
        return os.stat(path)


def version(s):
    host = s["hostname"]
    return int(host[5:]) if host.startswith("save-") else 0


def save(mode):
    if mode == "fat":
        settings_module.os = FatLikeOs()
    s = Settings()
    s.load()
    n = version(s)
    print("ready", n)
    while True:
        n += 1
        # a different mask each time makes each file a little different in length
        s.update({"hostname": "save-%d" % n, "mask": [[n % 97, 0, 1 + n % 13, 1]] * (1 + n % 16)})
        print("saved", n)


def check():
    had = [name for name in (PATH, PATH + ".new") if name in os.listdir()]
    s = Settings()
    warnings = s.load()
    mask = s["mask"]
    n = version(s)
    consistent = n == 0 or mask == [[n % 97, 0, 1 + n % 13, 1]] * (1 + n % 16)
    print(json.dumps({"version": n, "warnings": warnings, "files": had,
                      "consistent": consistent, "left": sorted(os.listdir())}))


if sys.argv[1] == "save":
    save(sys.argv[2])
else:
    check()
