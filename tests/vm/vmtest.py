# Runs on MicroPython: what an on-VM test may ask of its runner (vmrun.py).
#
# The same tests run on the host's VM (tests/test_vm.py) and on a board
# (`make test-hw`), so they name no host path: files they write go in
# scratch(), repository files they read come from source(), and a test that
# needs hardware skips itself with a reason.
import sys

# Set by vmrun before a test module runs.
SCRATCH = "."  # a folder the tests may write in, emptied between runs
SOURCES = "../.."  # where the repository's files are (from tests/vm on the host)


class Skip(Exception):
    """Raised by a test that cannot run here; its message says why."""


def skip(reason):
    raise Skip(reason)


def scratch(name):
    """The path of file ``name`` in the scratch folder."""
    return SCRATCH + "/" + name


def source(path):
    """The path of repository file ``path`` (e.g. "firmware/camwatch/app.py").

    ``make test-hw`` copies every file named this way to the board, so
    write the path as one string literal."""
    return SOURCES + "/" + path


def only_on(*platforms):
    """Skip the calling test unless sys.platform is one of ``platforms``."""
    if sys.platform not in platforms:
        skip("%s hardware only (this is sys.platform %r): run `make test-hw PORT=...` with a "
             "board connected" % ("/".join(platforms), sys.platform))
