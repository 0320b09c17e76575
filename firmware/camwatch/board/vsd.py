"""The virtual board's microSD card: a FAT image in a host file.

A block device (the ``vfs`` block protocol, 512-byte blocks) that opens the
file for every access, so removing the file behaves as pulling the card:
the next read or write fails with OSError. A blank (all-zero) image is
formatted when first mounted, as a card comes formatted from the shop; a
real board never formats a card.
"""

import os
import vfs

BLOCK = 512


class FileBlocks:
    """``path``: the image; its size (a multiple of 512) is the card's."""

    def __init__(self, path):
        self.path = path
        self.blocks = os.stat(path)[6] // BLOCK  # OSError: no card

    def readblocks(self, n, buf, offset=0):
        with open(self.path, "rb") as f:
            f.seek(n * BLOCK + offset)
            if f.readinto(buf) != len(buf):
                raise OSError(5)  # EIO: the card is shorter than it said

    def writeblocks(self, n, buf, offset=0):
        with open(self.path, "r+b") as f:
            f.seek(n * BLOCK + offset)
            f.write(buf)

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.blocks
        if op == 5:  # block size
            return BLOCK
        return 0


def mount(path, where):
    """Mount the image at ``path`` on ``where``; OSError(ENODEV) when there
    is no image (no card in the slot)."""
    if not path:
        raise OSError(19, "no microSD slot")
    try:
        dev = FileBlocks(path)
    except OSError:
        raise OSError(19, "no card in the slot")
    try:
        vfs.mount(vfs.VfsFat(dev), where)  # the filesystem is read here
    except OSError:
        with open(path, "rb") as f:
            blank = not any(f.read(BLOCK))
        if not blank:
            raise
        vfs.VfsFat.mkfs(dev)
        vfs.mount(vfs.VfsFat(dev), where)
