"""The pinned camera images: download through a GitHub-like redirect, digests
(pinned and trust on first use), unpacking, the chip check, errors that say
what to do, and a user's own build (FIRMWARE_URL).

A local "release" stands in for GitHub: one server answers
``/<owner>/<repo>/releases/download/<tag>/<asset>`` with a 302 to a signed
path on a second server (another address, as GitHub sends downloads to
objects.githubusercontent.com), which serves the bytes. Every asset is a
real zip holding a real merged image made by esptool (tests/esp_images.py).
Nothing leaves the loopback interface.
"""

import hashlib
import http.server
import io
import os
import socket
import threading
import zipfile

import pytest

from esp_images import merged_image
from tools import ToolError, boards, images
from tools.cli import main

OWNER_REPO = "cnadler86/micropython-camera-API"
TAG = "v0.6.2"
ESP32_BOARDS = [b for b in boards.names() if boards.get(b)["firmware"]]


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("bins"))
    return {"esp32": merged_image(tmp, "esp32", 0x1000, "esp32"),
            "esp32s3": merged_image(tmp, "esp32s3", 0x0, "esp32s3")}


def zipped(members):
    """A zip archive's bytes holding ``{name: bytes}``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Release:
    """Two loopback servers shaped like GitHub's release downloads.

    ``assets``: ``{name: bytes}`` of the release (change it to change what
    is served). ``hits``: the paths each server was asked for.
    """

    def __init__(self):
        self.assets = {}
        self.hits = {"github": [], "objects": []}
        release = self

        class Quiet(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

        class GitHub(Quiet):
            def do_GET(self):
                release.hits["github"].append(self.path)
                prefix = "/%s/releases/download/%s/" % (OWNER_REPO, TAG)
                name = self.path[len(prefix):] if self.path.startswith(prefix) else None
                if name in release.assets:
                    token = hashlib.sha256(name.encode()).hexdigest()[:16]
                    self.send_response(302)
                    self.send_header("Location", "%s/production-release-asset/%s?X-Amz-Signature=%s"
                                     "&response-content-disposition=attachment%%3B%%20filename%%3D%s"
                                     % (release.objects_url, token, token, name))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path.startswith("/builds/") and self.path[8:] in release.custom:
                    self._send(release.custom[self.path[8:]])
                else:
                    self.send_error(404)

            def _send(self, data):
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Objects(GitHub):
            def do_GET(self):
                release.hits["objects"].append(self.path)
                for name, data in list(release.assets.items()) + list(release.custom.items()):
                    token = hashlib.sha256(name.encode()).hexdigest()[:16]
                    if self.path.startswith("/production-release-asset/%s?" % token):
                        return self._send(data)
                self.send_error(403)  # what S3 answers to a bad signature

        self.custom = {}
        self.github = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GitHub)
        self.objects = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Objects)
        self.objects_url = "http://127.0.0.2:%d" % self.objects.server_address[1]
        self.base = "http://127.0.0.1:%d/%s/releases/download/%s/" % (
            self.github.server_address[1], OWNER_REPO, TAG)
        self.threads = [threading.Thread(target=s.serve_forever, args=(0.05,), daemon=True)
                        for s in (self.github, self.objects)]
        for t in self.threads:
            t.start()

    def builds_url(self, name):
        return "http://127.0.0.1:%d/builds/%s" % (self.github.server_address[1], name)

    def board(self, board_id, **firmware):
        """``board_id``'s boards.json entry, its asset served from here."""
        b = boards.get(board_id)
        fw = dict(b["firmware"], **firmware)
        fw["url"] = self.base + fw["asset"]
        return dict(b, firmware=fw)

    def close(self):
        for s in (self.github, self.objects):
            s.shutdown()
            s.server_close()


@pytest.fixture
def release(bins, monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    r = Release()
    for bid in ESP32_BOARDS:
        b = boards.get(bid)
        r.assets[b["firmware"]["asset"]] = zipped({"firmware.bin": read(bins[b["chip"]])})
    yield r
    r.close()


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "cache")


def quiet(*args):
    pass


def fetch(board, cache, lines=None, **kw):
    log = lines.append if lines is not None else quiet
    return images.fetch(board, cache=cache, log=log, stream=io.StringIO(), **kw)


# ------------------------------------------------------------ the pinned image

@pytest.mark.parametrize("board_id", ESP32_BOARDS)
def test_each_board_gets_its_image_through_the_redirect(release, cache, board_id):
    board = release.board(board_id)
    lines = []
    image, what = fetch(board, cache, lines)
    fw = board["firmware"]
    assert image == images.cached_image(board, cache)
    assert image.startswith(os.path.join(cache, TAG) + os.sep)
    with zipfile.ZipFile(io.BytesIO(release.assets[fw["asset"]])) as z:
        assert read(image) == z.read("firmware.bin")
    chip = "ESP32-S3" if board["chip"] == "esp32s3" else "ESP32"
    assert what.startswith(chip + " image, ")
    # it went through the redirect to the second host
    assert release.hits["github"] == ["/%s/releases/download/%s/%s" % (OWNER_REPO, TAG, fw["asset"])]
    assert len(release.hits["objects"]) == 1
    # trusted on first use: the digest is printed and recorded beside the asset
    digest = hashlib.sha256(release.assets[fw["asset"]]).hexdigest()
    text = "\n".join(lines)
    assert "%s sha256 %s" % (fw["asset"], digest) in text
    assert "first copy is trusted" in text
    record = images.cached_asset(board, cache) + ".sha256"
    assert open(record).read() == "%s  %s\n" % (digest, fw["asset"])


def test_a_second_fetch_needs_no_network(release, cache):
    board = release.board("esp32cam")
    first, _ = fetch(board, cache)
    release.close()  # offline from here on
    lines = []
    again, what = fetch(board, cache, lines)
    assert again == first and what.startswith("ESP32 image")
    assert "firmware: using %s" % images.shortpath(images.cached_asset(board, cache)) in lines[0]


def test_a_digest_pinned_in_boards_json_is_accepted(release, cache):
    digest = hashlib.sha256(release.assets["mpy_cam-v1.27.0-XIAO_ESP32S3.zip"]).hexdigest()
    board = release.board("xiao-esp32s3-sense", sha256=digest)
    lines = []
    image, what = fetch(board, cache, lines)
    assert what.startswith("ESP32-S3 image")
    assert "pinned in boards.json" in lines[-1]
    assert not os.path.exists(images.cached_asset(board, cache) + ".sha256")


def test_a_digest_other_than_the_pinned_one_is_refused(release, cache):
    board = release.board("esp32cam", sha256="0" * 64)
    with pytest.raises(ToolError) as exc:
        fetch(board, cache)
    msg = str(exc.value)
    actual = hashlib.sha256(release.assets[board["firmware"]["asset"]]).hexdigest()
    assert "has sha256 %s, but boards.json pins %s for esp32cam" % (actual, "0" * 64) in msg
    assert "Nothing was flashed and the file was not kept" in msg
    assert not os.path.exists(images.cached_asset(board, cache))
    assert not os.path.exists(images.cached_image(board, cache))


def test_a_changed_asset_is_refused_after_first_use(release, cache, bins):
    board = release.board("esp32cam")
    fetch(board, cache)
    asset = images.cached_asset(board, cache)
    first = open(asset + ".sha256").read()
    # the release asset is replaced upstream; the cached copy is gone
    release.assets[board["firmware"]["asset"]] = zipped({"firmware.bin": read(bins["esp32"]),
                                                         "README": b"rebuilt"})
    os.remove(asset)
    with pytest.raises(ToolError) as exc:
        fetch(board, cache)
    msg = str(exc.value)
    new = hashlib.sha256(release.assets[board["firmware"]["asset"]]).hexdigest()
    assert "downloaded has sha256 %s, but its first download had %s" % (new, first.split()[0]) in msg
    assert "trusted on first use, recorded in %s" % images.shortpath(asset + ".sha256") in msg
    assert "delete %s and run again" % images.shortpath(asset + ".sha256") in msg
    assert not os.path.exists(asset)  # the refused download is not kept
    assert open(asset + ".sha256").read() == first


def test_a_changed_file_put_in_the_cache_by_hand_is_refused_and_kept(release, cache, bins):
    board = release.board("esp32cam")
    fetch(board, cache)
    asset = images.cached_asset(board, cache)
    with open(asset, "wb") as f:
        f.write(zipped({"firmware.bin": read(bins["esp32"]), "extra": b"x"}))
    with pytest.raises(ToolError) as exc:
        fetch(board, cache)
    msg = str(exc.value)
    assert "in the cache (%s) has sha256" % images.shortpath(asset) in msg
    assert "delete %s to download it again" % images.shortpath(asset) in msg
    assert os.path.exists(asset)


def test_an_image_for_another_chip_is_refused(release, cache, bins):
    board = release.board("esp32cam")
    release.assets[board["firmware"]["asset"]] = zipped({"firmware.bin": read(bins["esp32s3"])})
    with pytest.raises(ToolError) as exc:
        fetch(board, cache)
    msg = str(exc.value)
    assert "is an ESP32-S3 image, but the board esp32cam (AI-Thinker ESP32-CAM, ESP32) needs " \
           "an ESP32 image" in msg
    assert "was unpacked from %s" % board["firmware"]["url"] in msg


def test_a_zip_without_the_named_image_is_refused(release, cache, bins):
    board = release.board("esp-eye")
    release.assets[board["firmware"]["asset"]] = zipped({"micropython.bin": read(bins["esp32"])})
    with pytest.raises(ToolError) as exc:
        fetch(board, cache)
    msg = str(exc.value)
    assert "holds no firmware.bin; it has: micropython.bin" in msg
    assert board["firmware"]["url"] in msg


def test_a_missing_asset_names_the_url_and_the_cache_path(release, cache):
    board = release.board("esp32cam", asset="mpy_cam-v1.99.0-AI_THINKER.zip")
    with pytest.raises(ToolError) as exc:
        fetch(board, cache)
    msg = str(exc.value)
    url = release.base + "mpy_cam-v1.99.0-AI_THINKER.zip"
    where = os.path.join(cache, TAG, "mpy_cam-v1.99.0-AI_THINKER.zip")
    assert "the server has no such file (HTTP 404 Not Found)" in msg
    assert "\n  %s\n" % url in msg
    assert "named mpy_cam-v1.99.0-AI_THINKER.zip, at\n  %s\n" % images.shortpath(where) in msg
    assert os.listdir(os.path.join(cache, TAG)) == []  # no half-written file left


def closed_port():
    """A loopback port nothing listens on (kept bound, so nobody else takes it)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def test_offline_names_the_url_and_the_cache_path_and_a_file_put_there_works(release, cache):
    sock, port = closed_port()
    with sock:
        board = release.board("m5stack-unitcam")
        board["firmware"]["url"] = "http://127.0.0.1:%d/%s/releases/download/%s/%s" % (
            port, OWNER_REPO, TAG, board["firmware"]["asset"])
        with pytest.raises(ToolError) as exc:
            fetch(board, cache)
    msg = str(exc.value)
    where = images.cached_asset(board, cache)
    assert msg.startswith("could not download the m5stack-unitcam firmware: ")
    assert "is this machine offline?" in msg
    assert "\n  %s\n" % board["firmware"]["url"] in msg
    assert "\n  %s\n" % images.shortpath(where) in msg
    # doing what it says: the asset, fetched elsewhere, put at that path
    with open(where, "wb") as f:
        f.write(release.assets[board["firmware"]["asset"]])
    image, what = fetch(board, cache)
    assert what.startswith("ESP32 image")
    assert os.path.exists(where + ".sha256")


# ------------------------------------------------------------ a user's own build

@pytest.mark.parametrize("kind", ["zip", "bin"])
def test_firmware_url_takes_a_zip_or_a_bin_and_checks_it_each_time(release, cache, bins, kind):
    data = read(bins["esp32s3"])
    release.custom["my-build." + kind] = zipped({"build/firmware.bin": data}) if kind == "zip" else data
    url = release.builds_url("my-build." + kind)
    board = boards.get("esp32s3-eye")
    lines = []
    image, what = fetch(board, cache, lines, url=url)
    assert read(image) == data and what.startswith("ESP32-S3 image")
    assert "no digest to check against" in "\n".join(lines)
    # rebuilt: taken again, no trust-on-first-use record to refuse it
    release.custom["my-build." + kind] = (zipped({"firmware.bin": data + b"\xff" * 16})
                                          if kind == "zip" else data + b"\xff" * 16)
    image, _ = fetch(board, cache, url=url)
    assert read(image) == data + b"\xff" * 16
    assert not any(name.endswith(".sha256") for _, _, files in os.walk(cache) for name in files)


def test_firmware_url_for_another_chip_is_refused(release, cache, bins):
    release.custom["wrong.bin"] = read(bins["esp32"])
    url = release.builds_url("wrong.bin")
    with pytest.raises(ToolError) as exc:
        fetch(boards.get("xiao-esp32s3-sense"), cache, url=url)
    assert "is an ESP32 image, but the board xiao-esp32s3-sense" in str(exc.value)
    assert "was downloaded from %s" % url in str(exc.value)


def test_firmware_url_offline_says_to_pass_firmware(cache):
    sock, port = closed_port()
    with sock:
        with pytest.raises(ToolError) as exc:
            fetch(boards.get("esp32cam"), cache, url="http://127.0.0.1:%d/fw.bin" % port)
    assert "could not download http://127.0.0.1:%d/fw.bin" % port in str(exc.value)
    assert "FIRMWARE=path/to/firmware.bin" in str(exc.value)


def test_make_flash_with_firmware_url_downloads_checks_then_runs_esptool(release, bins, tmp_path,
                                                                        monkeypatch, capfd):
    """End to end through the CLI, as `make flash FIRMWARE_URL=...` runs it: the download is
    checked, then esptool (for real) is run on a port that does not exist."""
    monkeypatch.setattr(images, "CACHE_DIR", str(tmp_path / "cache"))
    for name in ("BOARD", "PORT", "FIRMWARE"):
        monkeypatch.delenv(name, raising=False)
    release.custom["fw.bin"] = read(bins["esp32"])
    monkeypatch.setenv("FIRMWARE_URL", release.builds_url("fw.bin"))
    missing = str(tmp_path / "ttyUSB9")
    rc = main(["flash", "--port", missing])
    out, err = capfd.readouterr()
    assert rc == 2
    assert "firmware: downloading your build %s" % release.builds_url("fw.bin") in out
    writing = [line for line in out.splitlines() if line.startswith("flash: esptool")
               or " writing " in line]
    assert "writing %s" % os.path.join(str(tmp_path / "cache"), "custom") in writing[0]
    assert "fw.bin (ESP32 image, " in writing[0]
    assert "Could not open %s" % missing in out + err  # esptool's own words
    assert "error: esptool erase-flash failed" in err


def test_make_flash_dry_run_checks_a_cached_release_asset(release, tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(images, "CACHE_DIR", str(tmp_path / "cache"))
    for name in ("BOARD", "PORT", "FIRMWARE", "FIRMWARE_URL"):
        monkeypatch.delenv(name, raising=False)
    board = boards.get("esp32s3-eye")
    where = images.cached_asset(board)
    os.makedirs(os.path.dirname(where))
    with open(where, "wb") as f:
        f.write(release.assets[board["firmware"]["asset"]])
    rc = main(["flash", "--board", "esp32s3-eye", "--port", "/dev/ttyACM0", "--dry-run"])
    out, err = capfd.readouterr()
    assert rc == 0, err
    assert "dry run: %s checked (ESP32-S3 image" % images.cached_image(board) in out
    assert out.splitlines()[-1].endswith("write-flash 0x0 %s" % images.cached_image(board))
