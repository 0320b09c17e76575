"""A simulated grayscale camera for the virtual board: scripted scenes.

``SceneCamera.capture()`` behaves like the ESP32 camera driver: it returns a
memoryview of *signed* bytes (typecode 'b') over one frame buffer that the
next capture overwrites. The picture is rendered from a scenario, a timeline
of what happens in front of the camera, so every run is the same:

- a static textured background (a gradient and some "furniture");
- per-pixel sensor noise (same table every run, shifted every frame);
- moving objects: rectangles of a given size and grey level sliding in a
  straight line from one point to another over a time span;
- lighting: gain and offset applied to the whole scene (objects included),
  stepped or ramped;
- camera failures: while a ``fail`` span lasts, ``capture()`` raises OSError.

Scene time. By default it advances ``frame_ms`` per capture (frame N is at
``N * frame_ms``), which makes tests exact; each camera starts at 0. Pass
``clock=time.ticks_ms`` to follow the wall clock instead (the live virtual
board): time then counts from the first camera made with that clock, so a
camera re-made after a scripted failure carries on where the scene is.
capture() never sleeps, pacing is the caller's. Failed captures advance
time too.

A scenario is a dict (or a JSON file with one) with these keys, all optional:

- ``loop_ms``: the timeline repeats with this period; 0 plays it once and
  then holds its last lighting.
- ``background``: ``"texture"`` (default), ``"gradient"`` or ``"flat"``;
  ``level`` (100): its mean grey level; ``contrast`` (60): its spread.
- ``noise`` (3): noise amplitude, grey levels (+/-).
- ``init_fail``: true makes the constructor raise OSError (no camera).
- ``events``: a list of dicts, each with ``at`` (ms) and one of:

  - ``"object": {"w", "h", "from": [x, y], "to": [x, y], "level"}`` with
    ``for`` (ms): a w x h rectangle of grey ``level`` moving from ``from``
    to ``to`` (top-left corners, pixels, may be off-frame) during
    ``at .. at + for``;
  - ``"light": {"gain", "offset"}`` with optional ``ramp_ms``: the lighting
    goes from its previous value to this one, at once or linearly over
    ``ramp_ms`` (gain 1.0 and offset 0 at the start);
  - ``"fail": true`` with optional ``for`` (ms, default forever): capture()
    raises OSError during that span.

Ground truth for tests: ``truth(frame)`` gives the visible boxes of the
objects at frame N, ``objects_at(t_ms)`` at a scene time.
"""

import array
import json
import micropython
import struct
import time
from micropython import const

_NOISE_LEN = const(1021)  # a prime: the noise pattern never lines up with rows

SCENARIOS = {
    # An object crossing every 6 s, some sensor noise: motion within seconds.
    "default": {
        "loop_ms": 6000,
        "noise": 3,
        "events": [
            {"at": 1000, "for": 3000,
             "object": {"w": 24, "h": 32, "from": [-24, 44], "to": [160, 44], "level": 230}},
        ],
    },
    # Nothing but noise.
    "idle": {"noise": 3, "events": []},
    # Lighting steps and ramps only, no motion.
    "lighting": {
        "loop_ms": 16000,
        "noise": 3,
        "events": [
            {"at": 2000, "light": {"offset": 40}},
            {"at": 4000, "light": {"offset": 0}},
            {"at": 6000, "light": {"gain": 1.4}, "ramp_ms": 2000},
            {"at": 9000, "light": {"gain": 0.7}},
            {"at": 11000, "light": {"gain": 1.0, "offset": 0}, "ramp_ms": 3000},
        ],
    },
    # One object crossing once, left to right, then nothing.
    "crossing": {
        "noise": 3,
        "events": [
            {"at": 1000, "for": 4000,
             "object": {"w": 24, "h": 32, "from": [-24, 40], "to": [160, 40], "level": 220}},
        ],
    },
    # Someone walks through while the light ramps up, then the light steps down.
    "walk-and-light": {
        "loop_ms": 12000,
        "noise": 3,
        "events": [
            {"at": 1000, "for": 5000,
             "object": {"w": 24, "h": 40, "from": [160, 60], "to": [-24, 30], "level": 25}},
            {"at": 2000, "light": {"gain": 1.3, "offset": 10}, "ramp_ms": 3000},
            {"at": 8000, "light": {"gain": 1.0, "offset": 0}},
        ],
    },
    # The camera stops answering for 3 s, then comes back.
    "camera-fail": {
        "loop_ms": 10000,
        "noise": 3,
        "events": [
            {"at": 2000, "for": 3000, "fail": True},
            {"at": 6000, "for": 2500,
             "object": {"w": 24, "h": 32, "from": [-24, 44], "to": [160, 44], "level": 230}},
        ],
    },
}


# ---- rendering -----------------------------------------------------------


@micropython.viper
def _shade(out: ptr8, width: int, height: int, ramp: ptr8, noise: ptr8, start: int, amp: int):
    """Every pixel of row-major ``out`` = ramp[column] + noise, clamped."""
    j = start
    i = 0
    row = 0
    while row < height:
        x = 0
        while x < width:
            v = ramp[x] + noise[j] - amp
            if v < 0:
                v = 0
            elif v > 255:
                v = 255
            out[i] = v
            i += 1
            x += 1
            j += 1
            if j == _NOISE_LEN:
                j = 0
        row += 1


@micropython.viper
def _fill(out: ptr8, width: int, x: int, y: int, w: int, h: int, level: int, noise: ptr8,
          start: int, amp: int):
    """Fill a rectangle (already clipped) with ``level`` plus noise."""
    j = start
    row = y
    while row < y + h:
        i = row * width + x
        end = i + w
        while i < end:
            v = level + noise[j] - amp
            if v < 0:
                v = 0
            elif v > 255:
                v = 255
            out[i] = v
            i += 1
            j += 1
            if j == _NOISE_LEN:
                j = 0
        row += 1


def _noise_table(amp, seed):
    """_NOISE_LEN values in 0 .. 2*amp (a 16-bit LCG: same on every port)."""
    table = bytearray(_NOISE_LEN)
    s = seed & 0xFFFF
    span = 2 * amp + 1
    for i in range(_NOISE_LEN):
        s = (s * 25173 + 13849) & 0xFFFF
        table[i] = (s >> 8) % span
    return table


# Furniture of the "texture" background: x, y, w, h as fractions of the
# frame, and grey offset from the background level (at contrast 60).
_FURNITURE = ((0.05, 0.1, 0.2, 0.5, -40), (0.6, 0.05, 0.3, 0.25, 45), (0.35, 0.6, 0.4, 0.3, -25),
              (0.8, 0.55, 0.15, 0.4, 30), (0.3, 0.15, 0.1, 0.15, 35))


def _lit(level, gain, offset):
    """A grey level under lighting (gain x256, offset), clamped to 0..255."""
    return max(0, min(255, ((level * gain) >> 8) + offset))


def _clip(x, y, w, h, width, height):
    """The part of a rectangle inside the frame, or None."""
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        return None
    return [x0, y0, x1 - x0, y1 - y0]


# Start of scene time per clock function: a camera made again after a
# failure (the app closes a failing camera and makes a new one) continues
# the same timeline instead of starting it over.
_epochs = {}


def _epoch(clock):
    t0 = _epochs.get(clock)
    if t0 is None:
        t0 = _epochs[clock] = clock()
    return t0


# A frame buffer released by close(), for the next SceneCamera.
_spare = []


def _frame_buffer(size):
    """A signed-byte array of ``size`` (the spare one if it fits; every
    capture overwrites all of it)."""
    if _spare and len(_spare[0]) == size:
        return _spare.pop()
    _spare[:] = []
    return array.array("b", bytes(size))  # array('b') has no way to allocate in place


def load_scenario(scenario):
    """A scenario dict from a name in SCENARIOS, a path to a .json file, or a dict."""
    if isinstance(scenario, dict):
        return scenario
    if scenario in SCENARIOS:
        return SCENARIOS[scenario]
    if scenario.endswith(".json"):
        with open(scenario) as f:
            return json.load(f)
    raise ValueError("unknown scenario %r (have: %s)" % (scenario, ", ".join(sorted(SCENARIOS))))


class SceneCamera:
    """The virtual board's camera.

    ``scenario``: a name (see SCENARIOS), a .json path or a dict.
    ``width``, ``height``: frame size (QQVGA by default). ``frame_ms``: scene
    time per capture when ``clock`` is None. ``clock``: a function returning
    milliseconds (``time.ticks_ms``) to run the scene in real time.
    ``seed``: noise pattern.
    """

    pixel_format = "GRAYSCALE"

    def __init__(self, scenario="default", width=160, height=120, frame_ms=100, clock=None,
                 seed=1):
        spec = load_scenario(scenario)
        if spec.get("init_fail"):
            raise OSError(19, "camera: no sensor (scripted)")  # ENODEV
        self.name = scenario if isinstance(scenario, str) else spec.get("name", "custom")
        self.width = width
        self.height = height
        self.frame_ms = frame_ms
        self._clock = clock
        self._t0 = _epoch(clock) if clock else 0
        self.frame = -1  # index of the last captured frame
        self.t_ms = 0  # scene time of the last captured frame
        self._loop = int(spec.get("loop_ms", 0))
        self._amp = int(spec.get("noise", 3))
        self._noise = _noise_table(self._amp, seed) if self._amp else bytearray(_NOISE_LEN)
        # The background is drawn every frame, never stored: a left-to-right
        # gradient (one grey per column) and, for "texture", furniture.
        kind = spec.get("background", "texture")
        level = int(spec.get("level", 100))
        contrast = 0 if kind == "flat" else int(spec.get("contrast", 60))
        low = max(0, level - contrast // 2)
        self._gradient = bytes(min(255, low + contrast * x // width) for x in range(width))
        self._ramp = bytearray(width)  # the gradient under the current lighting
        self._light = array.array("i", (256, 0))  # gain x256, offset of this frame
        self._furniture = []
        if kind == "texture":
            for fx, fy, fw, fh, dv in _FURNITURE:
                self._furniture.append((int(fx * width), int(fy * height), int(fw * width),
                                        int(fh * height),
                                        max(0, min(255, level + dv * contrast // 60))))
        self._objects = []  # (at, for, w, h, x0, y0, x1, y1, level)
        self._lights = []  # (at, ramp, gain x256, offset)
        self._fails = []  # (at, until or -1)
        gain, offset = 256, 0
        for ev in sorted(spec.get("events", ()), key=lambda e: e["at"]):
            at = int(ev["at"])
            if "object" in ev:
                o = ev["object"]
                fx, fy = o.get("from", (0, 0))
                tx, ty = o.get("to", (fx, fy))
                self._objects.append((at, max(1, int(ev.get("for", 1000))), int(o["w"]),
                                      int(o["h"]), int(fx), int(fy), int(tx), int(ty),
                                      int(o.get("level", 220))))
            elif "light" in ev:
                li = ev["light"]
                gain = int(li.get("gain", gain / 256) * 256)
                offset = int(li.get("offset", offset))
                self._lights.append((at, int(ev.get("ramp_ms", 0)), gain, offset))
            elif ev.get("fail"):
                span = ev.get("for")
                self._fails.append((at, at + int(span) if span is not None else -1))
        self._buf = _frame_buffer(width * height)
        self._view = memoryview(self._buf)

    # -- scene time --

    def _scene_ms(self, t):
        return t % self._loop if self._loop else t

    def time_of(self, frame):
        """Scene time (ms, before looping) of frame N in frame-counter mode."""
        return frame * self.frame_ms

    def _place(self, obj, t):
        """Where object ``obj`` is at loop time t: its visible box, or None."""
        at, span, w, h, fx, fy, tx, ty, _ = obj
        if not at <= t < at + span:
            return None
        return _clip(fx + (tx - fx) * (t - at) // span, fy + (ty - fy) * (t - at) // span, w, h,
                     self.width, self.height)

    def objects_at(self, t_ms):
        """Visible boxes [x, y, w, h] (clipped to the frame) at scene time t_ms."""
        t = self._scene_ms(t_ms)
        boxes = []
        for obj in self._objects:
            box = self._place(obj, t)
            if box:
                boxes.append(box)
        return boxes

    def truth(self, frame=None):
        """Visible object boxes in frame N (default: the last captured one)."""
        if frame is None:
            return self.objects_at(self.t_ms)
        return self.objects_at(self.time_of(frame))

    def light_at(self, t_ms):
        """(gain x256, offset) of the lighting at scene time t_ms."""
        self._light_into(t_ms, self._light)
        return self._light[0], self._light[1]

    def _light_into(self, t_ms, out):
        # render()'s per-frame path: the result goes into a preallocated
        # array, so a frame allocates nothing here
        t = self._scene_ms(t_ms)
        gain, offset = 256, 0
        for at, ramp, g, o in self._lights:
            if t < at:
                break
            if ramp and t < at + ramp:
                k = t - at
                gain, offset = gain + (g - gain) * k // ramp, offset + (o - offset) * k // ramp
                break
            gain, offset = g, o
        out[0] = gain
        out[1] = offset

    def failing_at(self, t_ms):
        """True if capture() fails at scene time t_ms."""
        t = self._scene_ms(t_ms)
        for at, until in self._fails:
            if at <= t and (until < 0 or t < until):
                return True
        return False

    # -- the camera interface --

    def capture(self):
        """Render the next frame; return it as a memoryview of signed bytes.

        The view is the same buffer every time: it holds this frame until the
        next capture(). Raises OSError while the scenario says the camera
        fails, and after close().
        """
        if self._buf is None:
            raise OSError(9, "camera: closed")  # EBADF
        self.frame += 1
        if self._clock:
            t = time.ticks_diff(self._clock(), self._t0)
        else:
            t = self.frame * self.frame_ms
        self.t_ms = t
        if self.failing_at(t):
            raise OSError(5, "camera: capture failed (scripted)")  # EIO
        self.render(t)
        return self._view

    def render(self, t_ms):
        """Draw the scene at t_ms into the frame buffer (capture() calls it)."""
        w, h = self.width, self.height
        amp = self._amp
        start = (self.frame * 1031) % _NOISE_LEN
        light = self._light
        self._light_into(t_ms, light)
        gain, offset = light[0], light[1]
        ramp, gradient = self._ramp, self._gradient
        for x in range(w):
            ramp[x] = _lit(gradient[x], gain, offset)
        _shade(self._buf, w, h, ramp, self._noise, start, amp)
        for x, y, fw, fh, level in self._furniture:
            _fill(self._buf, w, x, y, fw, fh, _lit(level, gain, offset), self._noise, start, amp)
        t = self._scene_ms(t_ms)
        for obj in self._objects:
            box = self._place(obj, t)
            if box:
                _fill(self._buf, w, box[0], box[1], box[2], box[3], _lit(obj[8], gain, offset),
                      self._noise, start, amp)

    def snapshot(self):
        """The last frame as an 8-bit grey BMP: ``("image/bmp", chunks)``.

        ``chunks`` is a generator of bytes (the header, then 8 rows at a
        time, bottom-up as BMP stores them), read from the live frame buffer
        as the response goes out: no frame-sized copy, which the heap of a
        busy board may not have in one piece. A frame captured while it is
        being sent can show in the lower rows. Captures one first if nothing
        was captured yet.
        """
        if self.frame < 0:
            self.capture()
        return "image/bmp", self._bmp_chunks()

    def _bmp_chunks(self, rows_per_chunk=8):
        w, h = self.width, self.height
        stride = (w + 3) & ~3
        head = 14 + 40 + 1024
        out = bytearray(head)
        struct.pack_into("<2sIHHI", out, 0, b"BM", head + stride * h, 0, 0, head)
        struct.pack_into("<IiiHHIIiiII", out, 14, 40, w, h, 1, 8, 0, stride * h, 2835, 2835,
                         256, 256)
        for i in range(256):
            out[54 + 4 * i] = out[55 + 4 * i] = out[56 + 4 * i] = i
        yield out
        # One chunk buffer for the whole picture: Microdot's write sends (or
        # copies) each chunk before asking for the next.
        chunk = bytearray(rows_per_chunk * stride)
        view = self._view
        row = h
        while row > 0:
            n = 0
            for r in range(row - 1, max(row - rows_per_chunk, 0) - 1, -1):
                chunk[n:n + w] = view[r * w:r * w + w]
                n += stride  # BMP rows are padded to 4 bytes; padding stays 0
            row -= rows_per_chunk
            yield memoryview(chunk)[:n]

    def close(self):
        """Stop using this camera; its frame buffer goes to the next SceneCamera.

        The app closes a failing camera and makes a new one: reusing the
        buffer saves that a fresh 2 x frame-size allocation on a busy heap.
        """
        if self._buf is not None and not _spare:
            _spare.append(self._buf)
        self._buf = self._view = None
