# On the MicroPython VM: camwatch.motion, the detector (x64 .mpy: viper is
# machine code here). Scenes come from camwatch.board.scenes; every wait is a
# frame count, never a sleep.
import array
import gc

from camwatch import motion, motion_twin
from camwatch.board.scenes import SceneCamera
from camwatch.motion import Detector

W, H = 160, 120


def _lcg_frame(seed, n=W * H):
    """n pseudo-random bytes (a fixed LCG: same frames every run)."""
    out = bytearray(n)
    s = seed & 0xFFFFFFFF
    for i in range(n):
        s = (s * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = s >> 23
    return out


def _signed(buf):
    """A memoryview of signed bytes over a copy of buf, like the ESP32 driver's."""
    return memoryview(array.array("b", buf))  # copies the raw bytes


def _structured(seed, gain, offset, box=None, level=0):
    """A textured frame under lighting, optionally with a flat box drawn in."""
    out = bytearray(W * H)
    for y in range(H):
        for x in range(W):
            v = 40 + ((x >> 3) * 37 + (y >> 3) * 23) % 140  # texture at block scale
            v = (v * gain >> 8) + offset + ((x * 31 + y * 17 + seed) % 7) - 3
            out[y * W + x] = 0 if v < 0 else 255 if v > 255 else v
    if box:
        bx, by, bw, bh = box
        for y in range(by, by + bh):
            for x in range(bx, bx + bw):
                out[y * W + x] = level
    return out


def _run(cam, det, frames, log=None):
    """Feed ``frames`` captures to the detector; return the events as (frame, kind, payload)."""
    gc.collect()  # big frame buffers come and go: keep the heap in one piece
    events = []
    for _ in range(frames):
        try:
            frame = cam.capture()
        except OSError:
            continue
        ev = det.process(frame, cam.t_ms)
        if log is not None:
            log.append((cam.frame, det.active))
        if ev:
            events.append((cam.frame, ev[0], ev[1]))
    return events


def _kinds(events):
    return [kind for _, kind, _ in events]


class _Pair:
    """The viper and pure functions over two identical copies of the state."""

    def __init__(self, n, cols, thr=256, learn=5, absorb=50, width=W):
        self.n, self.cols, self.width = n, cols, width
        self.sides = []
        for _ in range(2):
            st = array.array("i", bytes(4 * motion_twin.STATE_SIZE))
            st[motion_twin.S_THR] = thr
            st[motion_twin.S_LEARN] = learn
            st[motion_twin.S_INIT] = 1
            st[motion_twin.S_ABSORB] = absorb
            self.sides.append({
                "cur": array.array("H", bytes(2 * n)), "bg": array.array("i", bytes(4 * n)),
                "mask": bytearray(n), "changed": bytearray(n), "aux": bytearray(3 * n),
                "work": array.array("H", bytes(4 * n)),
                "hist": array.array("H", bytes(2 * motion_twin.HIST_SIZE)), "st": st,
            })

    def feed(self, frame, size):
        cols, rows = self.cols, self.n // self.cols
        v, p = self.sides
        motion.block_means_viper(frame, v["cur"], self.width, cols, rows, size)
        motion_twin.block_means_py(frame, p["cur"], self.width, cols, rows, size)
        assert bytes(v["cur"]) == bytes(p["cur"]), "block means differ"
        rv = motion.compare_viper(v["cur"], v["bg"], v["mask"], v["changed"], v["aux"],
                                  v["work"], v["hist"], v["st"], self.n, cols)
        rp = motion_twin.compare_py(p["cur"], p["bg"], p["mask"], p["changed"], p["aux"], p["work"],
                               p["hist"], p["st"], self.n, cols)
        assert rv == rp, "changed count %d != %d" % (rv, rp)
        for key in ("bg", "changed", "aux", "work", "st"):
            a, b = v[key], p[key]
            # item by item, nothing copied; work's tail is scratch
            for k in range(self.n if key == "work" else len(a)):
                if a[k] != b[k]:
                    raise AssertionError("%s[%d] differs: %d / %d" % (key, k, a[k], b[k]))
        return rv, v["st"][motion_twin.S_GAIN]


# ---- viper and pure twins -------------------------------------------------


def test_twins_agree_on_random_frames():
    pair = None
    for size in (8, 5, 16):
        pair = None
        gc.collect()
        cols, rows = W // size, H // size
        pair = _Pair(cols * rows, cols)
        pair.feed(_lcg_frame(size), size)  # init
        for k in range(5):
            gc.collect()  # frames come and go: keep the heap in one piece
            frame = _lcg_frame(1000 * size + k)
            pair.feed(frame, size)
            frame = _signed(frame)
            pair.feed(frame, size)
            frame = None
            gc.collect()
            frame = _lcg_frame(77 + k)
            pair.feed(_signed(frame), size)
            frame = None


def test_twins_agree_on_edge_values():
    # small frames (64x48) so every pair of levels fits in the heap
    gc.collect()
    w, h = 64, 48
    cols, rows = w // 8, h // 8
    levels = (0, 127, -128, 255, -1, 1)
    for a in levels:
        fa = _signed(bytes([a & 0xFF]) * (w * h))
        for b in levels:
            fb = bytes([b & 0xFF]) * (w * h)
            half = bytearray(fb)
            half[: w * h // 2] = bytes(fa[: w * h // 2])  # top half a, bottom half b
            for learn, absorb in ((0, 2), (5, 3), (14, 255)):
                pair = _Pair(cols * rows, cols, learn=learn, absorb=absorb, width=w)
                for frame in (fa, fb, _signed(fb), half, half, half, fa, half):
                    pair.feed(frame, 8)


def test_twins_agree_on_lighting_and_objects():
    # structured frames reach every branch of the lighting fit
    cols, rows = W // 8, H // 8
    gains = set()
    for thr in (16, 256, 2000):
        pair = _Pair(cols * rows, cols, thr=thr)
        pair.feed(_structured(0, 256, 0), 8)
        for seed, gain, offset, box, level in (
                (1, 256, 0, None, 0), (2, 256, 40, None, 0), (3, 330, -10, None, 0),
                (4, 200, 20, (30, 30, 24, 32), 250), (5, 100, 0, None, 0),
                (6, 700, -100, None, 0), (7, 256, -60, (0, 0, 80, 120), 0),
                (8, 256, 0, (100, 20, 40, 60), 255), (9, 180, 90, None, 0),
                (10, 40, 20, None, 0), (11, 1100, -170, None, 0)):
            gc.collect()
            frame = _structured(seed, gain, offset, box, level)
            gains.add(pair.feed(frame, 8)[1])
            gains.add(pair.feed(_signed(frame), 8)[1])
            frame = None
    assert motion_twin.GAIN_MIN in gains and motion_twin.GAIN_MAX in gains, gains
    assert [g for g in gains if motion_twin.GAIN_MIN < g < motion_twin.GAIN_MAX and g != 256], gains


def test_twin_detectors_give_the_same_events():
    gc.collect()
    settings = {"mask": [[60, 0, 20, 40]], "update_ms": 0}
    for name in ("walk-and-light", "default"):
        cam = SceneCamera(name)
        fast = Detector(W, H, settings)
        slow = Detector(W, H, settings, native=False)
        n = 0
        for _ in range(70):
            frame = cam.capture()
            a = fast.process(frame, cam.t_ms)
            b = slow.process(frame, cam.t_ms)
            assert a == b, "frame %d: %r / %r" % (cam.frame, a, b)
            assert list(fast._bg) == list(slow._bg)
            assert fast.changed == slow.changed
            n += a is not None
        assert n > 5, n
        cam.close()  # its frame buffer goes to the next camera


# ---- detection ------------------------------------------------------------


def test_crossing_gives_one_start_updates_on_the_object_and_one_end():
    cam = SceneCamera("crossing")
    det = Detector(W, H, {"update_ms": 0})  # an update every moving frame
    size = det.block
    events = _run(cam, det, 90)
    kinds = _kinds(events)
    assert kinds[0] == "start" and kinds[-1] == "end", kinds
    assert kinds.count("start") == 1 and kinds.count("end") == 1, kinds
    assert kinds.count("update") >= 25, kinds
    checked = 0
    for frame, kind, p in events:
        if kind == "end":
            assert p["duration_ms"] >= 3000, p
            assert p["peak_score"] >= 3 and len(p["bbox"]) == 4, p
            continue
        boxes = cam.truth(frame)
        assert len(boxes) == 1, (frame, boxes)
        tx, ty, tw, th = boxes[0]
        cx, cy = p["centroid"]
        # centroid within 1.5 blocks of the object's centre; box around it
        assert abs(cx - (tx + tw // 2)) <= size * 3 // 2, (frame, p, boxes)
        assert abs(cy - (ty + th // 2)) <= size * 3 // 2, (frame, p, boxes)
        bx, by, bw, bh = p["bbox"]
        assert bx <= tx + tw // 2 < bx + bw and by <= ty + th // 2 < by + bh, (frame, p, boxes)
        assert bx % size == 0 and bw % size == 0 and bw <= tw + 2 * size, p
        assert p["blocks"] >= 3 and 0 < p["score"] <= 100, p
        checked += 1
    assert checked >= 25


def test_start_within_a_few_frames_of_the_object_entering():
    cam = SceneCamera("crossing")
    det = Detector(W, H)
    events = _run(cam, det, 40)
    first_seen = 0
    while not cam.truth(first_seen):
        first_seen += 1
    start = [f for f, kind, _ in events if kind == "start"][0]
    assert start - first_seen <= 5, (first_seen, start)


def test_updates_are_rate_limited():
    cam = SceneCamera("crossing")
    det = Detector(W, H, {"update_ms": 700})
    events = _run(cam, det, 90)
    times = [cam.time_of(f) for f, kind, _ in events if kind != "end"]
    assert len(times) >= 4, events
    for a, b in zip(times, times[1:]):
        assert b - a >= 700, times


def test_default_scene_repeats_motion():
    cam = SceneCamera("default")
    det = Detector(W, H)
    kinds = _kinds(_run(cam, det, 210))  # 21 s: two crossings
    assert kinds.count("start") == 2 and kinds.count("end") == 2, kinds


def test_lighting_steps_and_ramps_are_not_motion():
    cam = SceneCamera("lighting")
    det = Detector(W, H)
    log = []
    events = _run(cam, det, 170, log)  # the whole 16 s timeline
    assert events == [], events
    # harsher: big steps both ways, additive and multiplicative, on a flat scene too
    for background in ("texture", "gradient", "flat"):
        spec = {"noise": 4, "background": background, "events": [
            {"at": 1000, "light": {"offset": 70}},
            {"at": 2000, "light": {"offset": -50}},
            {"at": 3000, "light": {"gain": 1.8, "offset": 0}},
            {"at": 4000, "light": {"gain": 0.55}},
            {"at": 5000, "light": {"gain": 1.0}, "ramp_ms": 500},
            {"at": 6000, "light": {"gain": 1.5, "offset": -30}, "ramp_ms": 1500},
            {"at": 8000, "light": {"gain": 1.0, "offset": 0}},
        ]}
        cam = SceneCamera(spec)
        det = Detector(W, H)
        assert _run(cam, det, 100) == [], background


def test_motion_is_found_through_a_lighting_ramp():
    cam = SceneCamera("walk-and-light")
    det = Detector(W, H)
    kinds = _kinds(_run(cam, det, 120))  # one loop: walk with a ramp, then a step
    assert kinds.count("start") == 1 and kinds.count("end") == 1, kinds


def test_noise_alone_is_not_motion():
    for amp in (3, 12, 25):
        cam = SceneCamera({"noise": amp, "events": []}, seed=amp)
        det = Detector(W, H)
        assert _run(cam, det, 100) == [], amp


def test_small_object_below_min_area_is_ignored():
    spec = {"noise": 3, "events": [
        {"at": 500, "for": 4000, "object": {"w": 8, "h": 8, "from": [4, 60], "to": [150, 60],
                                            "level": 250}}]}
    det = Detector(W, H, {"min_area": 5})  # an 8x8 object touches 4 blocks at most
    assert _run(SceneCamera(spec), det, 60) == []
    det = Detector(W, H, {"min_area": 1})
    assert "start" in _kinds(_run(SceneCamera(spec), det, 60))


def test_mask_suppresses_motion_inside():
    # the crossing object runs through y 40..72: masking that band hides it
    for settings in ({"mask": [[0, 36, 160, 40]]}, {"mask_blocks": [[0, 4, 20, 6]]}):
        det = Detector(W, H, settings)
        assert _run(SceneCamera("crossing"), det, 90) == [], settings
    # masking the left half: motion only in the right half
    det = Detector(W, H, {"mask": [[0, 0, 80, 120]], "update_ms": 0})
    events = _run(SceneCamera("crossing"), det, 90)
    assert _kinds(events).count("start") == 1, events
    for frame, kind, p in events:
        if kind != "end":
            assert p["bbox"][0] >= 80, (frame, p)
    # a pixel rectangle masks every block it touches
    det = Detector(W, H, {"mask": [[9, 9, 1, 1], [30, 30, 10, 2]]})
    cols = det.cols
    masked = [i for i in range(len(det.mask)) if det.mask[i]]
    assert masked == [1 * cols + 1, 3 * cols + 3, 3 * cols + 4], masked


def test_signed_views_and_bytes_give_the_same_events():
    cam = SceneCamera("default")
    a = Detector(W, H)
    b = Detector(W, H)
    got_a, got_b = [], []
    for _ in range(50):
        view = cam.capture()
        got_a.append(a.process(view, cam.t_ms))
        got_b.append(b.process(bytes(view), cam.t_ms))
    assert got_a == got_b
    assert [e for e in got_a if e]


def test_configure_live_and_bad_values():
    det = Detector(W, H)
    assert det.cols == 20 and det.rows == 15
    det.configure({"sensitivity": 100, "unknown_key": 1})
    assert det.settings["sensitivity"] == 100 and det.settings["threshold"] == 16
    for bad in ({"sensitivity": 0}, {"threshold": "x"}, {"mask": [[1, 2, 3]]},
                {"block": 100}, {"min_area": -1}):
        try:
            det.configure(bad)
        except ValueError:
            pass
        else:
            raise AssertionError("accepted %r" % bad)
    assert det.settings["sensitivity"] == 100 and det.block == 8
    det.configure({"block": 10})
    assert (det.cols, det.rows, len(det.changed)) == (16, 12, 192)
    # still detects at the new block size
    assert "start" in _kinds(_run(SceneCamera("crossing"), det, 60))


def test_block_change_mid_event_keeps_one_event():
    cam = SceneCamera("crossing")
    det = Detector(W, H)
    kinds = _kinds(_run(cam, det, 25))
    assert kinds[0] == "start" and "end" not in kinds, kinds
    det.configure({"block": 16})  # restarts the background, not the event
    # the object was in the new background: its ghost is absorbed (absorb_frames)
    kinds = _kinds(_run(cam, det, 100))
    assert "start" not in kinds and kinds[-1] == "end", kinds
    assert kinds.count("end") == 1, kinds


def test_short_frame_is_refused():
    det = Detector(W, H)
    try:
        det.process(bytes(W * H - 1), 0)
    except ValueError:
        pass
    else:
        raise AssertionError("short frame accepted")


def test_steady_state_allocates_nothing():
    gc.collect()
    cam = SceneCamera("idle")
    det = Detector(W, H)
    views = [_signed(cam.capture()), _signed(cam.capture())]
    del cam
    for i in range(20):  # past warm-up
        det.process(views[i % 2], i * 100)
    gc.collect()
    before = gc.mem_alloc()
    for i in range(200):
        assert det.process(views[i % 2], 2000 + i * 100) is None
    used = gc.mem_alloc() - before
    print("motion: steady state", used, "bytes allocated over 200 frames")
    assert used == 0, used


def test_an_episode_ends_only_after_end_s_without_motion():
    # someone crosses, is hidden for 2 s (behind a wall: gone from view),
    # and crosses back: one visit
    spec = {"noise": 3, "events": [
        {"at": 1000, "for": 2000, "object": {"w": 24, "h": 32, "from": [-24, 40],
                                             "to": [60, 40], "level": 220}},
        {"at": 5000, "for": 2000, "object": {"w": 24, "h": 32, "from": [60, 40],
                                             "to": [160, 40], "level": 220}}]}
    for frame_ms in (100, 200):  # 10 and 5 frames a second: the same seconds
        cam = SceneCamera(spec, frame_ms=frame_ms)
        events = _run(cam, Detector(W, H, {"end_s": 4}), 14000 // frame_ms)
        kinds = _kinds(events)
        assert kinds.count("start") == 1 and kinds.count("end") == 1, (frame_ms, kinds)
        end_ms = [cam.time_of(f) for f, k, _ in events if k == "end"][0]
        assert 10500 <= end_ms <= 11400, (frame_ms, end_ms)  # gone at 7 s, + 4 s
        cam.close()
        # a shorter end_s makes it two episodes
        cam = SceneCamera(spec, frame_ms=frame_ms)
        kinds = _kinds(_run(cam, Detector(W, H, {"end_s": 1}), 14000 // frame_ms))
        assert kinds.count("start") == 2 and kinds.count("end") == 2, (frame_ms, kinds)
        cam.close()
