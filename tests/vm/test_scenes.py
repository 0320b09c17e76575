# On the MicroPython VM: camwatch.board.scenes, the virtual board's camera.
import gc
import json

import vmtest

from camwatch.board import scenes
from camwatch.board.scenes import NAMES, SceneCamera

W, H = 160, 120


def _mean(view, x, y, w, h):
    """Mean unsigned grey level of a rectangle of a signed frame."""
    s = 0
    for row in range(y, y + h):
        for col in range(x, x + w):
            s += view[row * W + col] & 0xFF
    return s // (w * h)


def test_capture_is_a_signed_memoryview_over_one_buffer():
    gc.collect()
    cam = SceneCamera("default")
    assert (cam.width, cam.height, cam.pixel_format) == (W, H, "GRAYSCALE")
    a = cam.capture()
    assert type(a) is memoryview and len(a) == W * H
    assert min(a) < 0, "expected signed bytes (typecode 'b')"
    b = cam.capture()
    assert b is a  # the same view: valid until the next capture, like the driver's
    assert cam.frame == 1 and cam.t_ms == 100


def test_every_scenario_renders():
    for name in NAMES:
        gc.collect()
        cam = SceneCamera(name)
        for _ in range(3):
            try:
                cam.capture()
            except OSError:
                pass


def test_rendering_is_deterministic():
    gc.collect()
    a = SceneCamera("walk-and-light")
    b = SceneCamera("walk-and-light")
    for _ in range(25):
        assert bytes(a.capture()) == bytes(b.capture())
    c = SceneCamera("walk-and-light", seed=2)
    a = SceneCamera("walk-and-light")
    assert bytes(a.capture()) != bytes(c.capture())  # another noise pattern


def test_truth_is_where_the_object_is_drawn():
    gc.collect()
    cam = SceneCamera("crossing")
    seen = 0
    for _ in range(60):
        view = cam.capture()
        boxes = cam.truth()
        assert boxes == cam.truth(cam.frame)
        for x, y, w, h in boxes:
            seen += 1
            assert _mean(view, x, y, w, h) >= 210  # the object (220 +- noise)
            if x >= 8:  # just left of it: background
                assert _mean(view, x - 4, y, 4, h) < 180
    assert seen >= 35
    # 1000..5000 ms, from x=-24 to x=160: entering at frame 10, gone by frame 50
    assert cam.truth(9) == [] and cam.truth(50) == []
    assert cam.truth(30) == [[68, 40, 24, 32]]


def test_objects_are_clipped_at_the_frame_edges():
    cam = SceneCamera("crossing")
    assert cam.objects_at(1261) == [[0, 40, 12, 32]]  # x = -24 + 184 * 261 // 4000 = -12
    x, y, w, h = cam.objects_at(4990)[0]
    assert x + w == W and w < 24


def test_lighting_steps_and_ramps():
    gc.collect()
    cam = SceneCamera({"noise": 0, "background": "flat", "events": [
        {"at": 1000, "light": {"offset": 40}},
        {"at": 2000, "light": {"gain": 2.0, "offset": 0}, "ramp_ms": 1000},
    ]})
    assert cam.light_at(999) == (256, 0)
    assert cam.light_at(1000) == (256, 40)
    assert cam.light_at(2500) == (384, 20)  # halfway up the ramp
    assert cam.light_at(3000) == (512, 0) and cam.light_at(60000) == (512, 0)
    levels = []
    for frame in (5, 15, 25, 35):
        cam.frame = frame - 1  # jump the frame clock
        view = cam.capture()
        levels.append(view[W * 60 + 80] & 0xFF)
    assert levels == [100, 140, 170, 200], levels


def test_scenario_loops():
    cam = SceneCamera("default")
    assert cam.truth(15) == cam.truth(115) != []  # 10 s period
    assert cam.truth(5) == []


def test_failing_camera_raises_then_recovers():
    gc.collect()
    cam = SceneCamera("camera-fail")  # fails 2000..5000 ms of every 10 s
    failed = []
    for _ in range(120):
        try:
            cam.capture()
        except OSError as exc:
            assert exc.errno == 5
            failed.append(cam.frame)
    assert failed == list(range(20, 50)), failed
    cam = SceneCamera({"events": [{"at": 300, "fail": True}]})  # forever
    cam.capture()
    cam.frame = 9
    for _ in range(3):
        try:
            cam.capture()
        except OSError:
            continue
        raise AssertionError("should fail for good")


def test_missing_camera_fails_at_start():
    try:
        SceneCamera({"init_fail": True})
    except OSError as exc:
        assert exc.errno == 19
    else:
        raise AssertionError("no OSError")


def test_real_time_clock():
    now = [5000]

    def clock():
        return now[0]

    cam = SceneCamera("crossing", clock=clock)
    cam.capture()
    assert cam.t_ms == 0
    now[0] += 3000
    cam.capture()
    assert cam.t_ms == 3000 and cam.truth() == cam.objects_at(3000) != []
    cam.close()
    # a camera made again later carries on with the same timeline
    now[0] += 500
    cam = SceneCamera("crossing", clock=clock)
    cam.capture()
    assert cam.t_ms == 3500


def test_failure_and_recovery_across_new_cameras():
    # what the app does: on OSError close the camera, wait, make a new one
    now = [0]

    def clock():
        return now[0]

    states = []
    cam = None
    while now[0] < 12000:
        if cam is None:
            cam = SceneCamera("camera-fail", clock=clock)
        try:
            cam.capture()
            state = "ok"
        except OSError:
            cam.close()
            cam = None
            state = "error"
        if not states or states[-1][1] != state:
            states.append((now[0], state))
        now[0] += 250 if state == "ok" else 1000  # 1 s backoff
    assert states == [(0, "ok"), (2000, "error"), (5000, "ok")], states


def test_scenario_from_json_file():
    path = vmtest.scratch("camwatch-scene-test.json")
    spec = {"noise": 1, "background": "gradient", "events": [
        {"at": 0, "for": 1000, "object": {"w": 10, "h": 10, "from": [0, 0], "to": [100, 0],
                                          "level": 250}}]}
    with open(path, "w") as f:
        json.dump(spec, f)
    cam = SceneCamera(path)
    assert cam.name == path
    cam.capture()
    assert cam.truth() == [[0, 0, 10, 10]]
    cam.capture()
    assert cam.truth() == [[10, 0, 10, 10]]
    try:
        SceneCamera("no-such-scene")
    except ValueError as exc:
        assert "default" in str(exc)
    else:
        raise AssertionError("unknown scenario accepted")


def test_closed_camera_lends_its_buffer_to_the_next():
    gc.collect()
    a = SceneCamera("idle")
    buf = a._buf
    a.close()
    a.close()
    try:
        a.capture()
    except OSError:
        pass
    else:
        raise AssertionError("a closed camera captured")
    b = SceneCamera("default")
    assert b._buf is buf
    c = SceneCamera("default")
    if scenes._driver_frame is not None:
        # on the virtual board the camera driver's frame (held outside the
        # heap) is every camera's buffer: the heap gives none
        assert c._buf is buf is scenes._driver_frame
    else:
        assert c._buf is not buf
    assert bytes(b.capture()) == bytes(c.capture())


def test_noise_table_stays_in_range():
    for amp in (0, 1, 3, 40):
        t = scenes._noise_table(amp, 7)
        assert min(t) >= 0 and max(t) <= 2 * amp
        if amp:
            assert len(set(t)) == 2 * amp + 1


def test_capture_allocates_nothing_per_frame():
    # The virtual board's per-frame loop: a lighting ramp is the busiest path.
    # Any allocation per frame is at least one 16-byte block, so 200 frames
    # must stay well under 200 * 16 bytes (one-off costs are allowed).
    cam = SceneCamera("lighting")
    for _ in range(5):
        cam.capture()
    gc.collect()
    gc.disable()
    try:
        before = gc.mem_alloc()
        for _ in range(200):
            cam.capture()
        used = gc.mem_alloc() - before
    finally:
        gc.enable()
    assert used < 200 * 16, used
