"""MicroPython images for the camera boards: download, verify, unpack, check.

Each ESP32 board's ``firmware`` entry in boards.json pins one release asset
of cnadler86/micropython-camera-API: the release tag, the MicroPython version
it is built on, the asset (a ``.zip``), its URL under
``releases/download/<tag>/``, the image inside it (``file``) and its
``sha256``. ``fetch()`` keeps the asset in ``.cache/firmware/<tag>/`` and
trusts it only when

- its digest equals the one boards.json pins, or, while boards.json pins
  none (``null``), the one recorded beside it at its first download (trust
  on first use: the first download prints its digest and writes
  ``<asset>.sha256``; a later download with another digest is refused);
- the zip holds the named image, and esptool reads that image as a merged
  image for the board's chip (``check_image``).

A user's own build (``--firmware-url``, a ``.zip`` or a ``.bin``) is
downloaded afresh each time and checked the same way, except for a digest.
Every failure says what to do next: the URL to fetch by hand and the exact
cache path to put it in, or the file to delete.
"""

import hashlib
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from tools import ROOT, ToolError

CACHE_DIR = os.path.join(ROOT, ".cache", "firmware")
ESP_IMAGE_MAGIC = 0xE9
_SIZES = {"4MB": 4 << 20, "8MB": 8 << 20, "16MB": 16 << 20}


def shortpath(path):
    """``path`` relative to the current directory, unless that climbs more than one level."""
    rel = os.path.relpath(path)
    return rel if not rel.startswith(".." + os.sep + "..") else path


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------ image checks

def flash_info(board):
    """The board's ``flash`` entry; ToolError for the virtual board, which has none."""
    if not board.get("flash"):
        raise ToolError("board %s (%s) has no flash to write: it is the virtual board, "
                        "`make run` starts it" % (board["id"], board["name"]))
    return board["flash"]


def _chip_def(chip):
    from esptool.targets import CHIP_DEFS

    return CHIP_DEFS[chip]


def _chip_name_for_id(chip_id):
    from esptool.targets import CHIP_DEFS

    for rom in CHIP_DEFS.values():
        if getattr(rom, "IMAGE_CHIP_ID", None) == chip_id:
            return rom.CHIP_NAME
    return "unknown chip (image chip id %d)" % chip_id


def check_image(path, board):
    """Check offline, with esptool's image parser, that ``path`` suits ``board``.

    The file must exist, start with an image header for the board's chip,
    be a merged image (bootloader first, as written at the board's flash
    offset) rather than a bare application, and fit the board's flash.
    Returns a short description; raises ToolError saying what to use instead.
    """
    from esptool.bin_image import LoadFirmwareImage

    info = flash_info(board)
    chip = board["chip"]
    rom = _chip_def(chip)
    what = "%s (%s, %s)" % (board["id"], board["name"], rom.CHIP_NAME)
    fix = ("use a MicroPython firmware.bin built for the %s, or leave FIRMWARE unset to "
           "download the board's camera firmware" % rom.CHIP_NAME)
    if not os.path.exists(path):
        raise ToolError("firmware file %s not found; check the path, or leave FIRMWARE unset "
                        "to download the board's camera firmware" % path)
    if not os.path.isfile(path):
        raise ToolError("firmware %s is a folder, not a file; pass the firmware .bin inside it"
                        % path)
    if zipfile.is_zipfile(path):
        raise ToolError("%s is a zip archive; unzip it and pass the firmware.bin inside it "
                        "(FIRMWARE=path/to/firmware.bin)" % path)
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ToolError("firmware file %s is empty; download or build it again" % path)
    offset = int(info["offset"], 16)
    if (data[0] == 0xFF and offset and len(data) > offset and data[offset] == ESP_IMAGE_MAGIC
            and data[:offset].count(0xFF) == offset):
        raise ToolError(
            "%s starts with %#x bytes of 0xFF padding: it was merged to be written at 0x0, "
            "but the %s takes its firmware at %s. Use an image merged for %s (esptool merge-bin "
            "--target-offset %s) or the release's firmware.bin"
            % (path, offset, what, info["offset"], info["offset"], info["offset"]))
    try:
        image = LoadFirmwareImage(chip, data)
    except Exception as exc:  # esptool raises FatalError, RuntimeError or struct errors
        raise ToolError("esptool cannot read %s as an %s firmware image (%s); %s"
                        % (path, rom.CHIP_NAME, exc, fix))
    if image.chip_id != rom.IMAGE_CHIP_ID:
        raise ToolError("%s is an %s image, but the board %s needs an %s image; %s"
                        % (path, _chip_name_for_id(image.chip_id), what, rom.CHIP_NAME, fix))
    if any(image.is_flash_addr(seg.addr) for seg in image.segments):
        raise ToolError(
            "%s is an application image without the bootloader (e.g. micropython.bin); written at "
            "%s it would leave the board unable to boot. Use the merged firmware.bin (bootloader, "
            "partition table and application in one file)" % (path, info["offset"]))
    size = _SIZES.get(info.get("size"))
    if size and offset + len(data) > size:
        raise ToolError("%s is %d bytes: written at %s it does not fit the %s flash of the %s"
                        % (path, len(data), info["offset"], info["size"], what))
    return "%s image, %d bytes" % (rom.CHIP_NAME, len(data))


# ------------------------------------------------------------ where things go

def camera_firmware(board):
    """The board's pinned ``firmware`` entry; ToolError when it has none."""
    fw = board.get("firmware")
    if not fw:
        raise ToolError("board %s has no camera firmware in boards.json; pass "
                        "FIRMWARE=path/to/firmware.bin" % board["id"])
    return fw


def release_dir(board, cache=None):
    """The cache folder of the board's pinned release: ``<cache>/<tag>/``.

    cache: the top cache folder (default ``.cache/firmware`` in the repo).
    """
    return os.path.join(cache or CACHE_DIR, camera_firmware(board)["release"])


def cached_asset(board, cache=None):
    """Where the board's pinned asset (the .zip) is kept, downloaded or put by hand."""
    return os.path.join(release_dir(board, cache), camera_firmware(board)["asset"])


def cached_image(board, cache=None):
    """Where the image unpacked from the board's pinned asset goes."""
    fw = camera_firmware(board)
    stem = fw["asset"][:-4] if fw["asset"].endswith(".zip") else fw["asset"]
    return os.path.join(release_dir(board, cache), stem, os.path.basename(fw["file"]))


def is_cached(board, cache=None):
    """Whether ``fetch()`` would find the board's pinned asset without downloading."""
    return os.path.isfile(cached_asset(board, cache))


def _custom_path(url, cache=None):
    name = os.path.basename(urllib.parse.urlparse(url).path) or "firmware"
    tag = hashlib.sha256(url.encode()).hexdigest()[:12]
    return os.path.join(cache or CACHE_DIR, "custom", tag, name)


# ------------------------------------------------------------ download

def _human(n):
    return "%.1f MB" % (n / 1e6) if n >= 1e6 else "%d KB" % (n // 1000)


class Progress:
    """Download progress on ``stream``: one updating line on a terminal,
    a line at start and end otherwise."""

    def __init__(self, name, total, stream=None):
        self.name = name
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0
        self.shown = -1
        if not self.tty:
            size = _human(total) if total else "size unknown"
            self._write("downloading %s (%s)\n" % (name, size))

    def _write(self, text):
        self.stream.write(text)
        self.stream.flush()

    def update(self, n):
        self.done += n
        if not self.tty:
            return
        pct = self.done * 100 // self.total if self.total else -1
        if pct == self.shown and pct >= 0:
            return
        self.shown = pct
        if self.total:
            self._write("\rdownloading %s: %s / %s (%d%%)"
                        % (self.name, _human(self.done), _human(self.total), pct))
        else:
            self._write("\rdownloading %s: %s" % (self.name, _human(self.done)))

    def finish(self):
        start = "\r" if self.tty else ""
        self._write(start + "downloaded %s: %s\n" % (self.name, _human(self.done)))


class DownloadError(Exception):
    """A download that failed; ``reason`` says why in a few words."""

    def __init__(self, reason, missing=False):
        Exception.__init__(self, reason)
        self.reason = reason
        self.missing = missing  # the server answered that there is no such file


def download(url, dest, timeout=30, stream=None):
    """Download ``url`` (following redirects, as GitHub's release links need)
    into ``dest``, written whole or not at all. Raises DownloadError."""
    part = dest + ".part"
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "camwatch-tools"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0)
            progress = Progress(os.path.basename(dest), total, stream)
            with open(part, "wb") as out:
                while True:
                    chunk = resp.read(65536)
                    if not chunk:
                        break
                    out.write(chunk)
                    progress.update(len(chunk))
            if total and progress.done != total:
                raise DownloadError("cut short: %d of %d bytes" % (progress.done, total))
            progress.finish()
    except urllib.error.HTTPError as exc:
        _remove(part)
        raise DownloadError("HTTP %d %s" % (exc.code, exc.reason), missing=exc.code == 404)
    except DownloadError:
        _remove(part)
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        _remove(part)
        raise DownloadError(str(getattr(exc, "reason", None) or exc))
    os.replace(part, dest)
    return dest


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _fetch_error(board, url, asset_path, exc):
    fw = board["firmware"]
    if exc.missing:
        why = ("the server has no such file (%s): the release or asset name in boards.json "
               "may be wrong." % exc.reason)
    else:
        why = "%s; is this machine offline?" % exc.reason
    return ToolError(
        "could not download the %s firmware: %s\n"
        "Fetch it by hand (on another machine if need be):\n"
        "  %s\n"
        "and put it, named %s, at\n"
        "  %s\n"
        "then run the same command again; or pass FIRMWARE=path/to/%s (--firmware)."
        % (board["id"], why, url, fw["asset"], shortpath(asset_path),
           os.path.basename(fw["file"])))


# ------------------------------------------------------------ trust

def _record_path(asset_path):
    return asset_path + ".sha256"


def _read_record(path):
    try:
        with open(path) as f:
            return f.read().split()[0].lower()
    except (OSError, IndexError):
        return None


def verify_digest(board, asset_path, downloaded, log=print):
    """Check the asset's sha256 against boards.json, or trust it on first use.

    downloaded: True when the file was just downloaded (it is then removed
    when refused), False when it was found in the cache. Returns the digest.
    """
    fw = board["firmware"]
    digest = sha256_file(asset_path)
    name = fw["asset"]
    where = ("downloaded" if downloaded
             else "in the cache (%s)" % shortpath(asset_path))
    again = ("Nothing was flashed and the file was not kept." if downloaded else
             "Nothing was flashed; delete %s to download it again." % shortpath(asset_path))
    pinned = fw.get("sha256")
    if pinned:
        if digest != pinned.lower():
            if downloaded:
                _remove(asset_path)
            raise ToolError(
                "%s %s has sha256 %s, but boards.json pins %s for %s: it is not the image "
                "this project pinned (a changed release asset, a broken download or a proxy "
                "that altered it). %s"
                % (name, where, digest, pinned, board["id"], again))
        return digest
    record = _record_path(asset_path)
    first = _read_record(record)
    if first is None:
        with open(record + ".new", "w") as f:
            f.write("%s  %s\n" % (digest, name))
        os.replace(record + ".new", record)
        log("firmware: %s sha256 %s\n"
            "firmware: boards.json pins no digest for %s, so this first copy is trusted "
            "and its digest recorded in %s; a later download with another digest is refused. "
            "Compare it with the release page, and pin it in boards.json (firmware.sha256)."
            % (name, digest, board["id"], shortpath(record)))
    elif first != digest:
        if downloaded:
            _remove(asset_path)
        raise ToolError(
            "%s %s has sha256 %s, but its first download had %s (trusted on first use, "
            "recorded in %s): the release asset changed since. %s If you trust the new file, "
            "delete %s and run again."
            % (name, where, digest, first, shortpath(record), again, shortpath(record)))
    return digest


# ------------------------------------------------------------ unpack

def unpack(board, zip_path, out, origin):
    """Take the board's image (``firmware.file``) out of ``zip_path`` into ``out``.

    origin: where the zip came from, for messages (its URL or cache path).
    """
    name = os.path.basename(board["firmware"]["file"]) if board.get("firmware") else "firmware.bin"
    try:
        with zipfile.ZipFile(zip_path) as z:
            members = [m for m in z.namelist() if os.path.basename(m) == name]
            if not members:
                raise ToolError("%s (from %s) holds no %s; it has: %s. It is not a camera "
                                "firmware release for this board"
                                % (os.path.basename(zip_path), origin, name,
                                   ", ".join(z.namelist()) or "nothing"))
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(sorted(members, key=len)[0]) as src, open(out + ".part", "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(out + ".part", out)
    except zipfile.BadZipFile:
        raise ToolError("%s (from %s) is not a valid zip archive" % (zip_path, origin))
    return out


def _checked(board, image, how):
    try:
        return check_image(image, board)
    except ToolError as exc:
        raise ToolError("%s\n(%s %s)" % (exc, shortpath(image), how))


def fetch(board, url=None, cache=None, timeout=30, stream=None, log=print):
    """Return ``(path, description)`` of ``board``'s verified camera firmware image.

    board: a ``boards.get()`` entry. url: a user's own build to use instead
    of the pinned asset (a .zip holding the board's ``firmware.file``, or a
    .bin), downloaded afresh each time. cache: the top cache folder (default
    ``.cache/firmware``). timeout: seconds to wait for the server. stream:
    where download progress goes (default stderr).

    The pinned asset is downloaded once into ``<cache>/<tag>/`` (or taken
    from there when put by hand), its digest checked, the image unpacked and
    checked with esptool. Raises ToolError naming the URL and the cache path
    when it cannot be downloaded, and refusing any digest, archive or image
    that does not match.
    """
    if url:
        return _fetch_custom(board, url, cache, timeout, stream, log)
    fw = camera_firmware(board)
    asset = cached_asset(board, cache)
    downloaded = False
    if os.path.isfile(asset):
        log("firmware: using %s (release %s, MicroPython %s)"
            % (shortpath(asset), fw["release"], fw["micropython"]))
    else:
        log("firmware: downloading %s (release %s, MicroPython %s)"
            % (fw["url"], fw["release"], fw["micropython"]))
        try:
            download(fw["url"], asset, timeout=timeout, stream=stream)
        except DownloadError as exc:
            raise _fetch_error(board, fw["url"], asset, exc)
        downloaded = True
    digest = verify_digest(board, asset, downloaded, log=log)
    origin = fw["url"] if downloaded else shortpath(asset)
    image = unpack(board, asset, cached_image(board, cache), origin)
    what = _checked(board, image, "was unpacked from " + origin)
    log("firmware: %s sha256 %s %s; %s: %s"
        % (fw["asset"], digest, "pinned in boards.json" if fw.get("sha256")
           else "as first trusted", shortpath(image), what))
    return image, what


def _fetch_custom(board, url, cache, timeout, stream, log):
    dest = _custom_path(url, cache)
    log("firmware: downloading your build %s" % url)
    try:
        download(url, dest, timeout=timeout, stream=stream)
    except DownloadError as exc:
        raise ToolError(
            "could not download %s: %s. Download it by hand and pass it as "
            "FIRMWARE=path/to/firmware.bin (--firmware; unzip a .zip first)" % (url, exc.reason))
    log("firmware: %s sha256 %s (your build: no digest to check against)"
        % (os.path.basename(dest), sha256_file(dest)))
    image, how = dest, "was downloaded from " + url
    if zipfile.is_zipfile(dest):
        name = os.path.basename((board.get("firmware") or {}).get("file") or "firmware.bin")
        image = unpack(board, dest, os.path.join(os.path.dirname(dest), "unpacked", name), url)
        how = "was unpacked from " + url
    return image, _checked(board, image, how)
