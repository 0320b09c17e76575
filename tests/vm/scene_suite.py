# On the MicroPython VM: the detection scene suite, shared by the on-VM
# tests (tests/vm/test_suite.py) and `make bench` (tests/bench/bench_suite.py).
#
# Each sequence is a scene (camwatch.board.scenes language) with a label of
# what a person watching would call motion:
#
# - kind "quiet": nothing a person calls motion (noise, clipping, lighting,
#   rain): any start is a false start;
# - kind "walk": people walking through; each one (an object with motion
#   true) is one visit, which must give exactly one episode, starting within
#   ``latency_ms`` of the person being wholly in view (or of the first frame
#   they are seen, for one who never is) and ending after they leave;
# - kind "repetitive": leaves or a curtain moving all the time, which is not
#   motion, with people walking through later; run with ``auto_mask``. What
#   happens in the first ``settle_ms`` (while the mask builds) is not scored.
#
# ``settings`` are detector settings for that sequence (on top of the
# defaults). Frames are 100 ms apart (10 fps, the board's default).
import gc

from camwatch.board.scenes import SceneCamera
from camwatch.motion import Detector

W, H = 160, 120
FRAME_MS = 100


def _scene(base, *events, **extra):
    spec = dict(base)
    spec["events"] = list(events)
    spec.update(extra)
    return spec


# ---- backgrounds ----------------------------------------------------------

# A living room: a dark sofa, a shelf, a bright window that clips easily,
# texture at three scales.
ROOM = {"background": "gradient", "level": 110, "contrast": 50, "cell": 2,
        "texture": [[24, 18], [8, 10], [2, 6]],
        "areas": [[6, 66, 60, 40, 62], [100, 6, 48, 34, 228], [22, 8, 16, 46, 150],
                  [74, 74, 24, 30, 165]],
        "noise": 4, "seed": 3}
# A garden: strong texture everywhere, no furniture.
YARD = {"background": "gradient", "level": 120, "contrast": 40, "cell": 2,
        "texture": [[32, 40], [8, 24], [2, 12]], "noise": 5, "seed": 11}
# A plain wall: almost no texture (the lighting fit has little to hold on to).
WALL = {"background": "flat", "level": 150, "cell": 4, "texture": [[16, 6]], "noise": 3,
        "seed": 5}
# The room at night: dark, a sensor at high gain (strong pixel and row noise).
DARK = {"background": "gradient", "level": 28, "contrast": 16, "cell": 2,
        "texture": [[16, 8], [4, 4]], "areas": [[100, 6, 48, 34, 64]],
        "noise": 30, "row_noise": 6, "seed": 3}


def _person(at, ms, w, h, x0, x1, y, level, **more):
    o = {"w": w, "h": h, "from": [x0, y], "to": [x1, y], "level": level, "shape": "person"}
    o.update(more)
    return {"at": at, "for": ms, "object": o}


def _leaf(x, y, size, level, sway, dx, dy=0):
    return {"at": 0, "for": 10 ** 6, "object": {"w": size, "h": size, "from": [x, y],
                                                 "to": [x + dx, y + dy], "level": level,
                                                 "sway": sway, "motion": False}}


SEQUENCES = [
    # -- noise and clipping -------------------------------------------------
    {"name": "noise-low", "kind": "quiet", "frames": 100, "scene": _scene(ROOM, noise=2)},
    {"name": "noise-mid", "kind": "quiet", "frames": 100, "scene": _scene(ROOM, noise=12)},
    {"name": "noise-high", "kind": "quiet", "frames": 100, "scene": _scene(YARD, noise=25)},
    {"name": "noise-extreme", "kind": "quiet", "frames": 100,
     "scene": _scene(YARD, noise=40, row_noise=4)},
    {"name": "low-light", "kind": "quiet", "frames": 100, "scene": _scene(DARK)},
    {"name": "low-light-sens100", "kind": "quiet", "frames": 100, "scene": _scene(DARK),
     "settings": {"sensitivity": 100}},
    {"name": "clipping", "kind": "quiet", "frames": 100,
     "scene": _scene(ROOM, {"at": 0, "light": {"gain": 1.35}}, noise=8)},
    {"name": "flat-wall", "kind": "quiet", "frames": 100, "scene": _scene(WALL, noise=10)},
    # -- lighting -------------------------------------------------------------
    {"name": "offset-step-30", "kind": "quiet", "frames": 100,
     "scene": _scene(ROOM, {"at": 2000, "light": {"offset": 30}},
                     {"at": 6000, "light": {"offset": 0}})},
    {"name": "gain-steps", "kind": "quiet", "frames": 100,
     "scene": _scene(ROOM, {"at": 2000, "light": {"gain": 1.5}},
                     {"at": 4500, "light": {"gain": 0.6}},
                     {"at": 7000, "light": {"gain": 1.0}})},
    {"name": "ramps", "kind": "quiet", "frames": 120,
     "scene": _scene(YARD, {"at": 1000, "light": {"gain": 1.6}, "ramp_ms": 3000},
                     {"at": 5000, "light": {"offset": -30}, "ramp_ms": 2000},
                     {"at": 8000, "light": {"gain": 1.0, "offset": 0}, "ramp_ms": 3000})},
    {"name": "lights-on-auto-exposure", "kind": "quiet", "frames": 130,
     "scene": _scene(ROOM, {"at": 0, "light": {"gain": 0.35}},
                     {"at": 2000, "light": {"gain": 2.2}},
                     {"at": 2100, "light": {"gain": 1.1}, "ramp_ms": 1000},
                     {"at": 7000, "light": {"gain": 0.3}},
                     {"at": 7100, "light": {"gain": 0.6}, "ramp_ms": 1000})},
    {"name": "flat-wall-lights", "kind": "quiet", "frames": 100,
     "scene": _scene(WALL, {"at": 2000, "light": {"gain": 1.5, "offset": 20}},
                     {"at": 6000, "light": {"gain": 0.7, "offset": 0}})},
    {"name": "lamp-half", "kind": "quiet", "frames": 110,
     "scene": _scene(ROOM, {"at": 2000, "for": 5000,
                            "patch": {"w": 90, "h": 120, "from": [-20, 0], "gain": 1.7,
                                      "soft": 30}})},
    {"name": "lamp-dimmer", "kind": "quiet", "frames": 110,
     "scene": _scene(ROOM, {"at": 2000, "for": 6000, "ramp_ms": 1500,
                            "patch": {"w": 60, "h": 70, "from": [110, 50], "gain": 1.8,
                                      "soft": 30}})},
    {"name": "cloud", "kind": "quiet", "frames": 120,
     "scene": _scene(YARD, {"at": 2000, "light": {"gain": 0.55}, "ramp_ms": 1500},
                     {"at": 6000, "light": {"gain": 1.0}, "ramp_ms": 2500})},
    {"name": "cloud-shadow", "kind": "quiet", "frames": 130,
     "scene": _scene(YARD, {"at": 1000, "for": 11000,
                            "patch": {"w": 260, "h": 200, "from": [-400, -40],
                                      "to": [200, -40], "gain": 0.6, "soft": 100}})},
    {"name": "shadows-crossing", "kind": "quiet", "frames": 130,
     "scene": _scene(ROOM, {"at": 1000, "for": 10000,
                            "patch": {"w": 24, "h": 140, "from": [-80, -10], "to": [180, -10],
                                      "gain": 0.7, "soft": 32}},
                     {"at": 3000, "for": 8000,
                      "patch": {"w": 200, "h": 20, "from": [-20, -60], "to": [-20, 150],
                                "gain": 0.75, "soft": 30}})},
    {"name": "rain", "kind": "quiet", "frames": 100,
     "scene": _scene(YARD, {"at": 0, "for": 10 ** 6,
                            "rain": {"count": 60, "len": 4, "level": 215}})},
    {"name": "snow", "kind": "quiet", "frames": 100,
     "scene": _scene(ROOM, {"at": 0, "for": 10 ** 6,
                            "rain": {"count": 120, "len": 2, "level": 250}})},
    # -- people ---------------------------------------------------------------
    {"name": "walker", "kind": "walk", "frames": 110, "latency_ms": 500,
     "scene": _scene(ROOM, _person(1000, 4400, 16, 44, -16, 160, 48, 40))},
    {"name": "walker-fast", "kind": "walk", "frames": 80, "latency_ms": 500,
     "scene": _scene(YARD, _person(1000, 1500, 20, 50, 160, -20, 40, 210))},
    {"name": "walker-low-contrast", "kind": "walk", "frames": 120, "latency_ms": 500,
     "scene": _scene(ROOM, _person(1000, 5000, 16, 44, -16, 160, 40, 150))},
    {"name": "walker-near", "kind": "walk", "frames": 90, "latency_ms": 500,
     "scene": _scene(ROOM, _person(1000, 3000, 44, 116, -44, 160, 2, 55))},
    {"name": "walker-far-slow", "kind": "walk", "frames": 280, "latency_ms": 2500,
     "scene": _scene(YARD, _person(1000, 21000, 7, 16, -7, 160, 50, 30))},
    {"name": "walker-low-light", "kind": "walk", "frames": 120, "latency_ms": 500,
     "scene": _scene(DARK, _person(1000, 5000, 16, 44, 160, -16, 44, 100))},
    {"name": "walker-in-rain", "kind": "walk", "frames": 110, "latency_ms": 500,
     "scene": _scene(YARD, {"at": 0, "for": 10 ** 6, "rain": {"count": 60, "len": 4,
                                                              "level": 215}},
                     _person(1000, 4000, 16, 44, -16, 160, 50, 50))},
    {"name": "walker-lights-on", "kind": "walk", "frames": 150, "latency_ms": 500,
     "scene": _scene(ROOM, {"at": 0, "light": {"gain": 0.5}},
                     _person(1000, 5000, 16, 44, -16, 160, 48, 40),
                     {"at": 4000, "light": {"gain": 1.6}},
                     {"at": 4100, "light": {"gain": 1.0}, "ramp_ms": 1000})},
    {"name": "two-walkers", "kind": "walk", "frames": 200, "latency_ms": 500,
     "scene": _scene(ROOM, _person(1000, 3500, 16, 44, -16, 160, 48, 40),
                     _person(11000, 3500, 18, 48, 160, -18, 44, 190))},
    # -- repetitive motion ---------------------------------------------------
    {"name": "foliage", "kind": "repetitive", "frames": 350, "settle_ms": 12000,
     "settings": {"auto_mask": 1},
     "scene": _scene(YARD, _leaf(104, 8, 8, 50, 900, 6), _leaf(120, 14, 7, 190, 1300, -5, 3),
                     _leaf(136, 6, 9, 60, 1100, 5), _leaf(112, 28, 8, 200, 700, 6, -2),
                     _leaf(130, 30, 7, 45, 1500, -6), _leaf(146, 22, 6, 185, 1000, -4, 4),
                     _person(15000, 4000, 16, 44, -16, 160, 66, 45),
                     _person(26000, 4000, 16, 44, 160, -16, 66, 200))},
    {"name": "curtain", "kind": "repetitive", "frames": 400, "settle_ms": 12000,
     "settings": {"auto_mask": 1},
     "scene": _scene(ROOM, {"at": 0, "for": 20000,
                            "object": {"w": 22, "h": 40, "from": [100, 4], "to": [110, 4],
                                       "level": 175, "sway": 1800, "motion": False}},
                     {"at": 20000, "for": 10 ** 6,
                      "object": {"w": 22, "h": 40, "from": [100, 4], "level": 175,
                                 "motion": False}},
                     _person(14000, 4000, 16, 44, -16, 160, 66, 45),
                     # after the curtain calmed: someone in front of the window
                     _person(32000, 3000, 16, 44, 160, 60, 2, 40))},
]


def by_name(name):
    for seq in SEQUENCES:
        if seq["name"] == name:
            return seq
    raise KeyError(name)


def visits(cam, frames):
    """What a person would call motion over frames 0 .. frames - 1:
    ``[(first, full, last), ...]``, one per object of ``cam`` that counts as
    motion and is seen: the first frame it is in view, the first frame it is
    wholly in view (None if never) and the last frame it is in view."""
    out = []
    for obj in cam._objects:
        if not obj[11]:  # motion: false
            continue
        first = full = last = None
        for n in range(frames):
            box = cam._place(obj, cam._scene_ms(cam.time_of(n)))
            if box is None:
                continue
            if first is None:
                first = n
            last = n
            if full is None and box[2] == obj[2] and box[3] == obj[3]:
                full = n
        if first is not None:
            out.append((first, full, last))
    return out


def run(seq, native=True, frames=None, settings=None, check=None):
    """Run the detector over one sequence: ``(events, camera)``, events as
    ``[(frame, kind, payload), ...]``. ``check(frame, detector)``, if given,
    is called after every frame."""
    gc.collect()
    cam = SceneCamera(seq["scene"], frame_ms=FRAME_MS)
    conf = dict(seq.get("settings", ()))
    conf.update(settings or ())
    det = Detector(W, H, conf, native=native)
    events = []
    for _ in range(frames or seq["frames"]):
        view = cam.capture()
        ev = det.process(view, cam.t_ms)
        if ev:
            events.append((cam.frame, ev[0], ev[1]))
        if check:
            check(cam.frame, det)
    cam.close()  # its frame buffer goes to the next camera; visits() still works
    return events, cam


def score(seq, events, cam, frames=None):
    """What the detector got right and wrong on one sequence, as a dict:
    ``false_starts`` (starts not explained by a visit), ``visits`` (one dict
    per visit: ``latency_ms`` from wholly in view to its start or None when
    missed, ``episodes`` that overlapped it, ``end_ms`` from the last frame
    in view to the end event), and ``problems`` (what breaks the label, as
    text; empty when the detector did what a person would)."""
    frames = frames or seq["frames"]
    settle = seq.get("settle_ms", 0) // FRAME_MS
    seen = visits(cam, frames)
    # episodes as [start frame, end frame or None]
    episodes = []
    for frame, kind, _ in events:
        if kind == "start":
            episodes.append([frame, None])
        elif kind == "end" and episodes:
            episodes[-1][1] = frame
    problems = []
    result = {"false_starts": 0, "visits": [], "problems": problems}
    used = set()
    for first, full, last in seen:
        ref = full if full is not None else first
        mine = [k for k, (s, e) in enumerate(episodes)
                if s <= last + 5 and (e is None or e >= first) and s >= max(first - 2, settle)]
        v = {"latency_ms": None, "episodes": len(mine), "end_ms": None}
        if mine:
            s, e = episodes[mine[0]]
            v["latency_ms"] = (s - ref) * FRAME_MS
            end = episodes[mine[-1]][1]
            v["end_ms"] = None if end is None else (end - last) * FRAME_MS
        used.update(mine)
        result["visits"].append(v)
        limit = seq.get("latency_ms", 500)
        if v["latency_ms"] is None:
            problems.append("visit in frames %d..%d: not detected" % (first, last))
        elif v["latency_ms"] > limit:
            problems.append("visit in frames %d..%d: started %d ms after in view (limit %d)"
                            % (first, last, v["latency_ms"], limit))
        if v["episodes"] > 1:
            problems.append("visit in frames %d..%d: %d episodes" % (first, last, v["episodes"]))
    for k, (s, e) in enumerate(episodes):
        if k not in used and s >= settle:
            result["false_starts"] += 1
            problems.append("false start at frame %d" % s)
    return result
