# On the MicroPython VM: camwatch.episodes, motion thumbnails in a RAM ring
# and on a microSD card (the virtual board's FAT image, camwatch.board.vsd).
# A small App stand-in carries what Episodes takes from the App; the camera
# hands out numbered pictures so each one can be recognised where it lands.
import asyncio
import os
import time

from camwatch.board import vsd
from camwatch.episodes import Episodes
from camwatch.settings import Settings
from vmtest import scratch


class Status:
    def __init__(self):
        self.reports = []
        self.warnings = []

    def report(self, kind, message, fields=None):
        self.reports.append((kind, message))
        if kind == "warning":
            self.warnings.append(message)


class Web:
    def __init__(self):
        self.routes = {}

    def get(self, path):
        def add(handler):
            self.routes[path] = handler
            return handler

        return add


class Card:
    """The board's microSD side, on an image in the scratch folder."""

    def __init__(self, path, slot=True):
        self.path = path
        self.slot = slot
        self.mounts = 0

    def has_sd(self):
        return self.slot

    def sd_mount(self):
        vsd.mount(self.path, "/sd")
        self.mounts += 1
        return "/sd"

    def sd_unmount(self):
        import vfs

        vfs.umount("/sd")


class Telemetry:
    def __init__(self):
        self.sources = []

    def sample(self, heap_free):
        data = {"heap_free": heap_free}
        for source in self.sources:
            source(data)
        return data


class App:
    def __init__(self, board=None, **values):
        self.settings = Settings(path=scratch("episodes-settings.json"))
        self.settings.values.update(values)
        self.status = Status()
        self.web = Web()
        self.telemetry = Telemetry()
        self.board = board or Card(None, slot=False)


class Cam:
    """thumbnail_into() writes picture number ``self.n`` (``size`` bytes,
    each its number) and counts up; a too-small buffer is told the size."""

    def __init__(self, size=600):
        self.size = size
        self.n = 0

    def thumbnail_into(self, buf):
        if len(buf) < self.size:
            return self.size
        self.n += 1
        for i in range(self.size):
            buf[i] = self.n & 0xFF
        return self.size


class Clock:
    def __init__(self):
        self.t = 5000

    def __call__(self):
        return self.t


def _episodes(board=None, **values):
    app = App(board, **values)
    ep = Episodes(app)
    ep.clock = Clock()
    return app, ep


def _episode(ep, cam, scores=(10,), step_ms=1000, time_s=None):
    """One episode: start with scores[0], an update for each later score
    (step_ms apart), then its end. Returns its id."""
    data = {"score": scores[0], "t": ep.clock.t}
    if time_s is not None:
        data["time"] = time_s
    ep.motion("start", data, cam)
    for score in scores[1:]:
        ep.clock.t += step_ms
        ep.motion("update", {"score": score}, cam)
    ep.motion("end", {"duration_ms": step_ms * len(scores), "peak_score": max(scores)}, cam)
    return data["episode"]


def _picture(ep, name):
    found = ep._picture_of(name)
    if found is None:
        return None
    off, n = found
    return bytes(ep._ring[off:off + n])


def _listed(ep):
    return asyncio.run(ep.list(None))


def test_start_and_peak_pictures_are_kept_and_listed():
    app, ep = _episodes()
    cam = Cam()
    first = _episode(ep, cam, scores=(10, 30, 20))  # the peak: picture 2
    assert first == 1
    assert _picture(ep, "1-start") == bytes([1]) * 600
    assert _picture(ep, "1-peak") == bytes([2]) * 600
    assert _picture(ep, "1") == bytes([2]) * 600  # the peak, else the start
    second = _episode(ep, cam, scores=(40,))  # never higher than its start
    assert second == 2
    assert _picture(ep, "2-peak") == _picture(ep, "2-start") == bytes([3]) * 600
    listed = _listed(ep)
    assert [e["id"] for e in listed["episodes"]] == [2, 1]  # newest first
    e = listed["episodes"][1]
    assert e["start"] == "episodes/1-start.jpg" and e["peak"] == "episodes/1-peak.jpg"
    assert e["peak_score"] == 30 and e["duration_ms"] == 3000 and not e["active"]
    for bad in ("3", "1-middle", "x-start", "-1", "", "1" * 20):
        assert _picture(ep, bad) is None, bad


def test_the_peak_is_taken_again_at_most_once_a_second():
    app, ep = _episodes()
    cam = Cam()
    ep.motion("start", {"score": 5}, cam)
    ident = ep.records[-1][0]
    for score in (10, 20, 30):  # 300 ms apart: only the first of them, a second on
        ep.clock.t += 300
        ep.motion("update", {"score": score}, cam)
    assert cam.n == 1  # only the start so far
    ep.clock.t += 1000
    ep.motion("update", {"score": 31}, cam)
    assert cam.n == 2
    listed = _listed(ep)["episodes"][0]
    assert listed["active"] and listed["duration_ms"] is None and listed["peak_score"] == 31
    assert listed["peak"] == "episodes/%d-peak.jpg" % ident  # the best so far, while it goes on
    ep.clock.t += 1000
    ep.motion("update", {"score": 12}, cam)  # lower: no new picture
    assert cam.n == 2
    ep.motion("end", {"duration_ms": 2000, "peak_score": 31}, cam)
    assert _picture(ep, "%d-peak" % ident) == bytes([2]) * 600


def test_the_ring_overwrites_the_oldest_pictures_first():
    app, ep = _episodes(thumbs_bytes=2048, episodes_max=32)
    cam = Cam(600)  # 3 pictures fit in the ring
    ids = [_episode(ep, cam, scores=(10, 20)) for _ in range(4)]  # 8 pictures
    held = [name for i in ids for name in ("%d-start" % i, "%d-peak" % i)
            if _picture(ep, name) is not None]
    assert held == ["3-peak", "4-start", "4-peak"], held
    for name in held:  # intact: each is one picture's bytes
        data = _picture(ep, name)
        assert data == bytes([data[0]]) * 600, name
    listed = _listed(ep)
    assert len(listed["episodes"]) == 4  # still listed, without pictures
    oldest = listed["episodes"][-1]
    assert oldest["start"] is None and oldest["peak"] is None
    assert listed["overwritten"] == 5
    # a picture larger than the whole ring is not kept, counted, said once;
    # it costs at most what lay between the ring's head and its end
    big = Cam(4096)
    _episode(ep, big)
    _episode(ep, big)
    assert listed["skipped"] == 0 and _listed(ep)["skipped"] == 2
    assert [w for w in app.status.warnings if "does not fit" in w] == \
        ["thumbnails: a 4096-byte picture does not fit in thumbs_bytes (2048)"]
    assert _picture(ep, "4-start") == bytes([7]) * 600


def test_episodes_max_bounds_the_list_and_zero_turns_thumbnails_off():
    app, ep = _episodes(episodes_max=3)
    cam = Cam(100)
    for _ in range(5):
        _episode(ep, cam)
    assert [e["id"] for e in _listed(ep)["episodes"]] == [5, 4, 3]
    app.settings.values["episodes_max"] = 0
    ep.settings_changed(["episodes_max"])
    assert _listed(ep)["episodes"] == [] and ep._ring is None
    data = {"score": 9}
    ep.motion("start", data, cam)
    assert data["episode"] == 6 and cam.n == 5  # the id still comes; no picture is taken
    ep.motion("end", {"duration_ms": 1, "peak_score": 9}, cam)


def test_a_short_heap_skips_pictures_says_so_once_and_keeps_ids():
    app, ep = _episodes(heap_warn_bytes=1 << 29)  # the ring is never affordable
    cam = Cam()
    for n in range(3):
        data = {"score": 10}
        ep.motion("start", data, cam)
        assert data["episode"] == n + 1
        ep.motion("end", {"duration_ms": 1, "peak_score": 10}, cam)
    listed = _listed(ep)
    assert listed["skipped"] == 3 and all(e["start"] is None for e in listed["episodes"])
    app.settings.values["heap_warn_bytes"] = 0
    _episode(ep, cam)  # heap again: the buffer and the ring are made
    assert _picture(ep, "4-start") is not None
    assert [w for w in app.status.warnings if "thumbnail" in w] == [
        "thumbnails: not enough heap for a 12288-byte ring (thumbs_bytes) now; tried again at "
        "the next motion"]


def _fill(path, size):
    block = bytes(1024)
    with open(path, "wb") as f:
        for _ in range(size // 1024):
            f.write(block)
        f.write(bytes(size % 1024))


def test_the_ring_gives_its_memory_back_when_the_heap_runs_short():
    app, ep = _episodes()
    cam = Cam()
    _episode(ep, cam)
    app.telemetry.sample(heap_free=20000)  # above heap_warn_bytes: kept
    assert _picture(ep, "1-start") is not None and not app.status.warnings
    app.telemetry.sample(heap_free=9000)  # below: given back, the pictures are gone
    assert ep._ring is None and _picture(ep, "1-start") is None
    assert app.status.warnings == ["low heap: 12288 bytes of thumbnails given back"]
    assert _listed(ep)["episodes"][0]["start"] is None
    assert not ep.shed()  # nothing left to give
    _episode(ep, cam)  # made again at the next motion, the heap having room
    assert _picture(ep, "2-start") is not None


def _blank_card(name, kb):
    path = scratch(name)
    _fill(path, kb * 1024)
    return path


def _card_files(folder="/sd/camwatch"):
    """{"day/name": (size, the byte it is made of, or None when mixed)}."""
    out = {}
    buf = bytearray(512)
    for day in sorted(os.listdir(folder)):
        for name in sorted(os.listdir(folder + "/" + day)):
            path = folder + "/" + day + "/" + name
            size = 0
            first = None
            with open(path, "rb") as f:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    if first is None:
                        first = buf[0]
                    if first is not False and any(b != first for b in buf[:n]):
                        first = False
                    size += n
            out[day + "/" + name] = (size, None if first is False else first)
    return out


async def _settle(ep, until, seconds=5):
    deadline = time.ticks_add(time.ticks_ms(), seconds * 1000)
    while not until():
        assert time.ticks_diff(deadline, time.ticks_ms()) > 0, "timed out"
        await asyncio.sleep_ms(5)


async def test_pictures_go_to_the_card_by_day_and_the_oldest_go_above_the_limit():
    path = _blank_card("sd1.img", 2048)
    # a card with pictures of an earlier life: 1000 bytes under 1 MB
    vsd.mount(path, "/sd")
    for folder in ("/sd/camwatch", "/sd/camwatch/undated", "/sd/camwatch/2025-01-01"):
        os.mkdir(folder)
    _fill("/sd/camwatch/undated/000007-start.jpg", 600 * 1024)
    _fill("/sd/camwatch/2025-01-01/120000-9-start.jpg", 1024 * 1024 - 600 * 1024 - 1000)
    Card(path).sd_unmount()
    card = Card(path)
    app, ep = _episodes(card, sd_max_mb=1, thumbs_bytes=65536)
    task = asyncio.create_task(ep.run())
    try:
        cam = Cam(600)
        _episode(ep, cam, scores=(10, 20))  # no clock yet: undated, numbered on from 7
        _episode(ep, cam, scores=(10,), time_s=1764000000)  # 2025-11-24 16:00:00 UTC
        await _settle(ep, lambda: ep.card.written == 3)
        assert ("sd", "microSD card at /sd: 1023 KB of thumbnails on it") in app.status.reports
        files = _card_files()
        assert sorted(files) == ["2025-01-01/120000-9-start.jpg",
                                 "2025-11-24/160000-2-start.jpg",
                                 "undated/000008-peak.jpg", "undated/000008-start.jpg"], \
            sorted(files)  # the oldest (undated, 000007) went to make room
        assert files["undated/000008-peak.jpg"] == (600, 2)
        assert files["2025-11-24/160000-2-start.jpg"] == (600, 3)
        assert sum(size for size, _ in files.values()) <= 1024 * 1024
        assert ep.card.state == "ok" and not app.status.warnings
    finally:
        task.cancel()
        if ep.card.sd:
            card.sd_unmount()


async def test_a_missing_full_or_pulled_card_is_a_warning_never_a_crash():
    path = scratch("sd2.img")
    try:
        os.remove(path)
    except OSError:
        pass
    card = Card(path)
    app, ep = _episodes(card, thumbs_bytes=16384)
    ep.card.retry_ms = 50
    task = asyncio.create_task(ep.run())
    try:
        cam = Cam(2000)
        await _settle(ep, lambda: ep.card.state == "absent" and app.status.warnings)
        assert "no microSD card" in app.status.warnings[0]
        _episode(ep, cam)  # kept in RAM all the same
        assert _picture(ep, "1-start") is not None
        # a card goes in: found at the next try, and written to
        _blank_card("sd2.img", 128)
        ep.clock.t += 100
        await _settle(ep, lambda: ep.card.state == "ok")
        # more than the card holds: the oldest of ours make room, it stays ok
        for _ in range(60):
            ep.clock.t += 100
            _episode(ep, cam)
            await _settle(ep, lambda: not ep.card._queue)
        assert ep.card.state == "ok" and ep.card.written >= 60
        files = _card_files()
        assert 10 < len(files) < 60 and "undated/000061-start.jpg" in files
        assert all(size == 2000 and byte is not None for size, byte in files.values())
        # full of what is not ours (someone used the card for something
        # else): a warning, pictures stay in RAM
        for day in os.listdir("/sd/camwatch"):
            for name in os.listdir("/sd/camwatch/" + day):
                os.remove("/sd/camwatch/" + day + "/" + name)
            os.rmdir("/sd/camwatch/" + day)
        block = bytes(512)
        with open("/sd/other.bin", "wb") as f:
            try:
                while True:
                    f.write(block)
            except OSError:
                pass
        ep.clock.t += 100
        _episode(ep, cam)
        await _settle(ep, lambda: ep.card.state == "full")
        assert any("microSD card full" in w for w in app.status.warnings)
        # pulled out while it is in use: a warning, never an exception
        await _settle(ep, lambda: ep.card.sd is not None or ep.card.state == "full", seconds=5)
        os.remove(path)
        ep.clock.t += 100
        _episode(ep, cam)
        await _settle(ep, lambda: ep.card.state in ("failed", "absent"))
        assert any("was it pulled out?" in w or "no microSD card" in w
                   for w in app.status.warnings[-2:])
        assert _listed(ep)["episodes"][0]["start"] is not None
        assert not task.done()  # the card's task goes on
    finally:
        task.cancel()
        if ep.card.sd:
            card.sd_unmount()
