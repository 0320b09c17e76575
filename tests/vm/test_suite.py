# On the MicroPython VM: the detector over the labelled scene suite
# (tests/vm/scene_suite.py): what a person would call motion is reported,
# once per visit and in time, and nothing else is. The viper detector runs
# every sequence whole; the pure-Python twin runs every sequence up to a
# little past its first event, in lockstep, and must agree frame by frame.
import gc

import scene_suite as S
from camwatch.board.scenes import SceneCamera
from camwatch.motion import MASK_AUTO, Detector

W, H = 160, 120


def _problems(kind, settings=None):
    out = []
    for seq in S.SEQUENCES:
        if seq["kind"] != kind:
            continue
        events, cam = S.run(seq, settings=settings)
        for p in S.score(seq, events, cam)["problems"]:
            out.append("%s: %s" % (seq["name"], p))
    return out


def test_noise_clipping_lighting_and_rain_start_nothing():
    problems = _problems("quiet")
    assert not problems, "\n".join(problems)


def test_every_visit_is_one_episode_started_in_time():
    problems = _problems("walk")
    assert not problems, "\n".join(problems)
    # and each episode ends after the person has left, end_s later
    for seq in S.SEQUENCES:
        if seq["kind"] == "walk":
            events, cam = S.run(seq)
            for v in S.score(seq, events, cam)["visits"]:
                assert v["end_ms"] is not None and 3000 <= v["end_ms"] <= 6000, (seq["name"], v)


def test_repetitive_motion_masks_itself_and_people_are_still_seen():
    problems = _problems("repetitive")
    assert not problems, "\n".join(problems)
    events, cam = S.run(S.by_name("curtain"))
    masks = [p["blocks"] for _, kind, p in events if kind == "mask"]
    assert masks and max(masks) >= 6, masks
    # the curtain calms at 20 s: most of the mask is gone by the end
    assert masks[-1] <= max(masks) // 2, masks


def test_without_auto_mask_leaves_are_motion():
    # the same sequences with auto_mask off: the leaves keep an episode
    # open, so the people walking through are not told apart
    problems = _problems("repetitive", {"auto_mask": 0})
    assert problems, "expected the leaves and curtain to be reported as motion"


def test_a_light_switch_pauses_detection_and_says_so():
    events, _ = S.run(S.by_name("lamp-half"))
    lights = [(f, p) for f, kind, p in events if kind == "light"]
    assert len(lights) == 2, events  # the lamp on, then off
    for frame, p in lights:
        assert p["pause_ms"] == 1000 and 20 <= p["share"] <= 100, p
    assert [f for f, _ in lights] == [20, 70], lights
    # the threshold is back where it was a second later: the switch was not noise
    seen = []
    S.run(S.by_name("lamp-half"), check=lambda f, det: seen.append(det.noise()[1]))
    assert seen[19] == 256 and max(seen[32:69]) == 256, seen
    # with the rule off the lamp is taken for motion
    events, cam = S.run(S.by_name("lamp-half"), settings={"light_switch_pct": 0})
    assert [k for _, k, _ in events if k == "start"], events
    assert not [k for _, k, _ in events if k == "light"], events


def test_the_threshold_follows_the_measured_noise():
    seen = {}

    def check(frame, det):
        if frame == 60:
            seen["thr"] = det.noise()[1]

    # a clean room: the configured threshold (16 x 16)
    S.run(S.by_name("noise-low"), check=check)
    assert seen["thr"] == 256, seen
    # a dark, noisy room at sensitivity 100 (threshold 8): raised above the noise
    S.run(S.by_name("low-light-sens100"), check=check)
    assert 128 < seen["thr"] <= 3 * 128, seen


def test_auto_mask_is_cleared_when_turned_off():
    gc.collect()
    seq = S.by_name("foliage")
    cam = SceneCamera(seq["scene"], frame_ms=S.FRAME_MS)
    det = Detector(W, H, {"auto_mask": 1})
    events = []
    for _ in range(120):
        ev = det.process(cam.capture(), cam.t_ms)
        if ev:
            events.append(ev)
    assert [m for m in det.mask if m & MASK_AUTO], "nothing masked after 12 s of leaves"
    assert det.auto_mask_rects()
    det.configure({"auto_mask": 0})
    assert not [m for m in det.mask if m & MASK_AUTO]
    ev = None
    while ev is None or ev[0] != "mask":
        ev = det.process(cam.capture(), cam.t_ms)
    assert ev[1]["blocks"] == 0 and ev[1]["rects"] == [], ev
    cam.close()


def test_the_twin_agrees_on_every_kind_of_scene():
    for seq in S.SEQUENCES:
        gc.collect()
        spec = seq["scene"]
        first = min([e["at"] for e in spec["events"] if e["at"] > 0] or [0])
        frames = min(seq["frames"], first // S.FRAME_MS + 25)
        cam = SceneCamera(spec, frame_ms=S.FRAME_MS)
        fast = Detector(W, H, seq.get("settings"))
        slow = Detector(W, H, seq.get("settings"), native=False)
        for _ in range(frames):
            view = cam.capture()
            a = fast.process(view, cam.t_ms)
            b = slow.process(view, cam.t_ms)
            where = "%s frame %d" % (seq["name"], cam.frame)
            assert a == b, "%s: %r / %r" % (where, a, b)
            assert fast._cur == slow._cur, where
            assert fast._bg == slow._bg, where
            assert fast.changed == slow.changed and fast.mask == slow.mask, where
            assert fast._st == slow._st, where
        cam.close()
