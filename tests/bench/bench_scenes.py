# `make bench` on the MicroPython VM: the viper detector over the labelled
# scene suite (tests/vm/scene_suite.py, the one tests/vm/test_suite.py
# asserts). One row per sequence: false starts, and per visit the start
# latency (from wholly in view) and the episodes it gave; then the detector's
# own time per frame over the sequence (scene rendering not counted).
# Measures, asserts nothing.
import gc
import sys
import time

sys.path.append("../vm")

import scene_suite as S  # noqa: E402
from camwatch.board.scenes import SceneCamera  # noqa: E402
from camwatch.motion import Detector  # noqa: E402


def run(seq):
    gc.collect()
    cam = SceneCamera(seq["scene"], frame_ms=S.FRAME_MS)
    det = Detector(S.W, S.H, seq.get("settings"))
    events = []
    spent = 0
    for _ in range(seq["frames"]):
        view = cam.capture()
        t0 = time.ticks_us()
        ev = det.process(view, cam.t_ms)
        spent += time.ticks_diff(time.ticks_us(), t0)
        if ev:
            events.append((cam.frame, ev[0], ev[1]))
    cam.close()
    return events, cam, spent / seq["frames"]


def main():
    print("%-26s %-10s %6s  %-22s %-9s %7s" % ("sequence", "kind", "false", "start latency ms",
                                               "episodes", "us/frm"))
    totals = {"quiet": 0, "walk": 0, "repetitive": 0}
    problems = 0
    for seq in S.SEQUENCES:
        events, cam, us = run(seq)
        r = S.score(seq, events, cam)
        lat = ",".join("-" if v["latency_ms"] is None else str(v["latency_ms"])
                       for v in r["visits"]) or "-"
        eps = ",".join(str(v["episodes"]) for v in r["visits"]) or "-"
        totals[seq["kind"]] += r["false_starts"]
        problems += 1 if r["problems"] else 0
        print("%-26s %-10s %6d  %-22s %-9s %7.0f" % (seq["name"], seq["kind"], r["false_starts"],
                                                     lat, eps, us))
    print("false starts on lighting/noise sequences: %d; on repetitive: %d; walk sequences: %d"
          % (totals["quiet"], totals["repetitive"], totals["walk"]))
    print("sequences breaking their label: %d of %d" % (problems, len(S.SEQUENCES)))


main()
