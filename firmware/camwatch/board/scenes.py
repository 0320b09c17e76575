"""A simulated grayscale camera for the virtual board: scripted scenes.

``SceneCamera.capture()`` behaves like the ESP32 camera driver: it returns a
memoryview of *signed* bytes (typecode 'b') over one frame buffer that the
next capture overwrites. The picture is rendered from a scenario, a timeline
of what happens in front of the camera, so every run is the same:

- a static background: a left-to-right gradient, "furniture" (rectangles of
  other grey levels) and value-noise texture at several scales, kept at a
  coarse resolution (``cell`` pixels) so it costs little memory;
- per-pixel sensor noise (same table every run, shifted every frame) and
  optionally row noise (whole rows brighter or darker each frame, as a
  sensor at high gain shows);
- moving objects: rectangles or person shapes of a grey level, sliding in a
  straight line or swaying back and forth;
- lighting: a global gain and offset (stepped or ramped), and local light
  patches (a lamp, a shadow, a cloud's shadow) with soft edges that may
  move; saturation clips at 0 and 255 like a sensor;
- rain or snow: bright streaks at new random places every frame;
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
- ``background``: ``"texture"`` (default: gradient and built-in furniture),
  ``"gradient"`` or ``"flat"``; ``level`` (100): its mean grey level;
  ``contrast`` (60): its spread.
- ``areas``: more furniture, ``[[x, y, w, h, level], ...]`` in pixels.
- ``texture``: value-noise octaves added to the background,
  ``[[scale_px, amplitude], ...]`` (amplitude in grey levels, +/-).
- ``cell`` (4): background resolution in pixels (1, 2, 4 or 8); the
  background costs (width / cell) x (height / cell) bytes.
- ``noise`` (3): noise amplitude, grey levels (+/-); ``row_noise`` (0):
  amplitude of the per-row noise.
- ``seed``: texture pattern (the ``seed`` argument picks the noise).
- ``init_fail``: true makes the constructor raise OSError (no camera).
- ``events``: a list of dicts, each with ``at`` (ms) and one of:

  - ``"object": {"w", "h", "from": [x, y], "to": [x, y], "level",
    "shape", "sway", "motion"}`` with ``for`` (ms): a w x h shape of grey
    ``level`` during ``at .. at + for``. It moves from ``from`` to ``to``
    (top-left corners, pixels, may be off-frame) in a straight line, or with
    ``sway`` (ms) goes back and forth between them with that period.
    ``shape``: ``"rect"`` (default) or ``"person"`` (a head over a body).
    ``motion`` (default true): whether a person watching would call it
    motion (false for leaves, a curtain: the tests' labels use it);
  - ``"light": {"gain", "offset"}`` with optional ``ramp_ms``: the global
    lighting goes from its previous value to this one, at once or linearly
    over ``ramp_ms`` (gain 1.0 and offset 0 at the start);
  - ``"patch": {"w", "h", "from", "to", "gain", "soft"}`` with optional
    ``for`` (ms, default: for good) and ``ramp_ms``: a local light (gain
    above 1: a lamp) or shadow (below 1) over a w x h rectangle, fading out
    over ``soft`` pixels around it, moving from ``from`` to ``to`` during
    its span and fading in (and out, when it ends) over ``ramp_ms``;
  - ``"rain": {"count", "len", "level"}`` with ``for``: ``count`` vertical
    streaks ``len`` pixels long at new random places every frame;
  - ``"fail": true`` with optional ``for`` (ms, default forever): capture()
    raises OSError during that span.

Ground truth for tests: ``truth(frame)`` gives the visible boxes of the
objects at frame N, ``objects_at(t_ms)`` at a scene time.
"""

import array
import json
import micropython
import time
from micropython import const

_NOISE_LEN = const(1021)  # a prime: the noise pattern never lines up with rows
_ROWS_LEN = const(127)  # row noise table, also a prime
_MAP = const(2)  # light map cells are 1 << _MAP pixels

# render context slots (an int32 array, so viper reads them without allocating)
_C_W = const(0)
_C_X0 = const(1)
_C_Y0 = const(2)
_C_X1 = const(3)
_C_Y1 = const(4)
_C_LEVEL = const(5)  # 1 + grey level of a shape, or 0: the background
_C_CS = const(6)  # background cell shift
_C_BW = const(7)  # background width in cells
_C_GAIN = const(8)  # global gain x256
_C_OFF = const(9)  # global offset + _BIAS
_C_MAP = const(10)  # 1: per-cell gains in the light map
_C_MW = const(11)  # light map width in cells
_C_AMP = const(12)  # noise amplitude
_C_NSTART = const(13)  # noise table start of this frame
_C_RAMP = const(14)  # row noise amplitude
_C_RSTART = const(15)  # row noise start of this frame
_C_SIZE = const(16)
# Added to values that can be negative before they go in an int32 array: a
# 64-bit viper reads ptr32 items without sign extension.
_BIAS = const(4096)

# The named scenarios. Each is built only when asked for (a dict literal in
# a function: its code stays in ROMFS, the dict exists only for the camera
# being made).
NAMES = ("default", "idle", "lighting", "crossing", "walk-and-light", "camera-fail", "room", "garden", "night")


def scenario(name):
    """The scenario dict called ``name`` (see NAMES), or None."""
    # A person crossing every 10 s in a furnished, textured room: motion
    # within seconds of boot, and an end between the crossings.
    if name == "default":
        return {
            "loop_ms": 10000,
            "noise": 3,
            "cell": 8,
            "texture": [[16, 16], [8, 8]],
            "events": [
                {"at": 1000, "for": 3000,
                 "object": {"w": 24, "h": 32, "from": [-24, 44], "to": [160, 44], "level": 230}},
            ],
        }
    # Nothing but noise.
    if name == "idle":
        return {"noise": 3, "events": []}
    # Lighting steps and ramps only, no motion.
    if name == "lighting":
        return {
            "loop_ms": 16000,
            "noise": 3,
            "events": [
                {"at": 2000, "light": {"offset": 40}},
                {"at": 4000, "light": {"offset": 0}},
                {"at": 6000, "light": {"gain": 1.4}, "ramp_ms": 2000},
                {"at": 9000, "light": {"gain": 0.7}},
                {"at": 11000, "light": {"gain": 1.0, "offset": 0}, "ramp_ms": 3000},
            ],
        }
    # One object crossing once, left to right, then nothing.
    if name == "crossing":
        return {
            "noise": 3,
            "events": [
                {"at": 1000, "for": 4000,
                 "object": {"w": 24, "h": 32, "from": [-24, 40], "to": [160, 40], "level": 220}},
            ],
        }
    # Someone walks through while the light ramps up, then the light steps down.
    if name == "walk-and-light":
        return {
            "loop_ms": 12000,
            "noise": 3,
            "events": [
                {"at": 1000, "for": 5000,
                 "object": {"w": 24, "h": 40, "from": [160, 60], "to": [-24, 30], "level": 25}},
                {"at": 2000, "light": {"gain": 1.3, "offset": 10}, "ramp_ms": 3000},
                {"at": 8000, "light": {"gain": 1.0, "offset": 0}},
            ],
        }
    # The camera stops answering for 3 s, then comes back.
    if name == "camera-fail":
        return {
            "loop_ms": 10000,
            "noise": 3,
            "events": [
                {"at": 2000, "for": 3000, "fail": True},
                {"at": 6000, "for": 2500,
                 "object": {"w": 24, "h": 32, "from": [-24, 44], "to": [160, 44], "level": 230}},
            ],
        }
    # A room with a bright window: lights on (part of the picture clips) and
    # the sensor's exposure pulling back, a lamp on one side, a person now
    # and then. Only the person is motion.
    if name == "room":
        return {
            "loop_ms": 40000,
            "noise": 4,
            "cell": 4,
            "texture": [[16, 14], [8, 8]],
            "areas": [[104, 8, 40, 32, 225]],
            "events": [
                {"at": 0, "light": {"gain": 0.5}},
                {"at": 3000, "light": {"gain": 1.8}},
                {"at": 3200, "light": {"gain": 1.0}, "ramp_ms": 1000},
                {"at": 7000, "for": 4000, "object": {"w": 16, "h": 48, "from": [-16, 50],
                                                     "to": [160, 40], "level": 40,
                                                     "shape": "person"}},
                {"at": 15000, "for": 10000, "patch": {"w": 80, "h": 120, "from": [-16, 0],
                                                      "gain": 1.5, "soft": 24}},
                {"at": 18000, "for": 5000, "object": {"w": 14, "h": 40, "from": [170, 60],
                                                      "to": [-14, 60], "level": 200,
                                                      "shape": "person"}},
                {"at": 28000, "light": {"offset": 30}},
                {"at": 34000, "light": {"offset": 0}},
            ],
        }
    # A garden: leaves swaying all the time top right (turn auto_mask on to
    # see them masked), a cloud dimming everything, people now and then.
    if name == "garden":
        return {
            "loop_ms": 40000,
            "noise": 5,
            "cell": 4,
            "background": "gradient",
            "level": 120,
            "contrast": 40,
            "texture": [[32, 30], [8, 16]],
            "events": [
                {"at": 0, "for": 40000, "object": {"w": 8, "h": 8, "from": [104, 8], "to": [110, 8],
                                                    "level": 50, "sway": 900, "motion": False}},
                {"at": 0, "for": 40000, "object": {"w": 8, "h": 7, "from": [124, 16],
                                                    "to": [118, 19], "level": 190, "sway": 1300,
                                                    "motion": False}},
                {"at": 0, "for": 40000, "object": {"w": 9, "h": 8, "from": [138, 6], "to": [143, 6],
                                                    "level": 60, "sway": 1100, "motion": False}},
                {"at": 0, "for": 40000, "object": {"w": 8, "h": 8, "from": [114, 28],
                                                    "to": [120, 26], "level": 200, "sway": 700,
                                                    "motion": False}},
                {"at": 12000, "for": 4000, "object": {"w": 16, "h": 44, "from": [-16, 66],
                                                      "to": [160, 66], "level": 45,
                                                      "shape": "person"}},
                {"at": 20000, "light": {"gain": 0.55}, "ramp_ms": 1500},
                {"at": 25000, "light": {"gain": 1.0}, "ramp_ms": 2500},
                {"at": 30000, "for": 4000, "object": {"w": 16, "h": 44, "from": [160, 66],
                                                      "to": [-16, 66], "level": 200,
                                                      "shape": "person"}},
            ],
        }
    # The room at night: dark, a noisy sensor at high gain; someone walks
    # through every 15 s.
    if name == "night":
        return {
            "loop_ms": 15000,
            "noise": 30,
            "row_noise": 6,
            "cell": 4,
            "background": "gradient",
            "level": 28,
            "contrast": 16,
            "texture": [[16, 8]],
            "events": [
                {"at": 3000, "for": 5000, "object": {"w": 16, "h": 44, "from": [160, 44],
                                                     "to": [-16, 44], "level": 100,
                                                     "shape": "person"}},
            ],
        }
    return None


# ---- rendering -----------------------------------------------------------


@micropython.viper
def _paint(out: ptr8, base: ptr8, lmap: ptr16, noise: ptr8, rows: ptr8, c: ptr32):
    """Draw the rectangle c[X0..X1) x [Y0..Y1) of ``out``: the background
    (c[LEVEL] 0) or a flat grey (c[LEVEL] - 1), lit by the global gain or the light map,
    plus offset, row noise and pixel noise; clipped to 0..255 as a sensor."""
    w = c[_C_W]
    x0 = c[_C_X0]
    x1 = c[_C_X1]
    y = c[_C_Y0]
    y1 = c[_C_Y1]
    level = c[_C_LEVEL] - 1
    cs = c[_C_CS]
    bw = c[_C_BW]
    gain = c[_C_GAIN]
    usemap = c[_C_MAP]
    mw = c[_C_MW]
    amp = c[_C_AMP]
    ramp = c[_C_RAMP]
    rstart = c[_C_RSTART]
    while y < y1:
        j = (c[_C_NSTART] + y * w + x0) % _NOISE_LEN
        add = c[_C_OFF] - _BIAS - amp
        if ramp:
            add += int(rows[(rstart + y) % _ROWS_LEN]) - ramp
        i = y * w + x0
        brow = (y >> cs) * bw
        mrow = (y >> _MAP) * mw
        x = x0
        while x < x1:
            v = level
            if v < 0:
                v = base[brow + (x >> cs)]
            g = gain
            if usemap:
                g = lmap[mrow + (x >> _MAP)]
            v = ((v * g) >> 8) + add + noise[j]
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
        y += 1


@micropython.viper
def _light_patch(lmap: ptr16, mw: int, mh: int, box: ptr32, soft: int, dg: int):
    """Multiply the light map by a soft-edged patch: 1 + dg/256 inside
    box = [x0, y0, x1, y1) (pixels, each + _BIAS), falling linearly to 1
    over ``soft`` pixels outside it."""
    x0 = box[0] - _BIAS
    y0 = box[1] - _BIAS
    x1 = box[2] - _BIAS
    y1 = box[3] - _BIAS
    half = 1 << (_MAP - 1)
    cy = 0
    while cy < mh:
        py = (cy << _MAP) + half
        d = 0
        if py < y0:
            d = y0 - py
        elif py >= y1:
            d = py - y1 + 1
        fy = 256
        if d > 0:
            fy = 0
            if d < soft:
                fy = 256 - (d << 8) // soft
        if fy > 0:
            i = cy * mw
            cx = 0
            while cx < mw:
                px = (cx << _MAP) + half
                d = 0
                if px < x0:
                    d = x0 - px
                elif px >= x1:
                    d = px - x1 + 1
                f = fy
                if d > 0:
                    f = 0
                    if d < soft:
                        f = (fy * (256 - (d << 8) // soft)) >> 8
                if f > 0:
                    g = (int(lmap[i]) * (256 + ((dg * f) >> 8))) >> 8
                    if g < 0:
                        g = 0
                    elif g > 65535:
                        g = 65535
                    lmap[i] = g
                i += 1
                cx += 1
        cy += 1


@micropython.viper
def _fill16(buf: ptr16, n: int, v: int):
    i = 0
    while i < n:
        buf[i] = v
        i += 1


@micropython.viper
def _streaks(out: ptr8, w: int, h: int, count: int, length: int, level: int, seed: int):
    """``count`` vertical streaks of ``level`` at pseudo-random places."""
    s = seed & 0xFFFF
    k = 0
    while k < count:
        s = (s * 25173 + 13849) & 0xFFFF
        x = (s >> 4) % w
        s = (s * 25173 + 13849) & 0xFFFF
        y = (s >> 4) % h
        end = y + length
        if end > h:
            end = h
        i = y * w + x
        while y < end:
            out[i] = level
            i += w
            y += 1
        k += 1


@micropython.viper
def _octave(base: ptr8, bw: int, bh: int, lat: ptr8, lw: int, step: int, amp: int):
    """Add one octave of value noise to ``base``: lattice values (0..255)
    every ``step`` cells, bilinearly interpolated, scaled to +/- ``amp``."""
    area = step * step
    by = 0
    i = 0
    while by < bh:
        ly = by // step
        fy = by - ly * step
        row = ly * lw
        bx = 0
        while bx < bw:
            lx = bx // step
            fx = bx - lx * step
            k = row + lx
            v = (int(lat[k]) * (step - fx) * (step - fy) + int(lat[k + 1]) * fx * (step - fy)
                 + int(lat[k + lw]) * (step - fx) * fy + int(lat[k + lw + 1]) * fx * fy) // area
            v = int(base[i]) + (((v - 128) * amp) >> 7)
            if v < 0:
                v = 0
            elif v > 255:
                v = 255
            base[i] = v
            i += 1
            bx += 1
        by += 1


def _noise_table(amp, seed, length=_NOISE_LEN):
    """``length`` values in 0 .. 2*amp (a 16-bit LCG: same on every port)."""
    table = bytearray(length)
    s = seed & 0xFFFF
    span = 2 * amp + 1
    for i in range(length):
        s = (s * 25173 + 13849) & 0xFFFF
        table[i] = (s >> 8) % span
    return table


# Furniture of the "texture" background: x, y, w, h as fractions of the
# frame, and grey offset from the background level (at contrast 60).
_FURNITURE = ((0.05, 0.1, 0.2, 0.5, -40), (0.6, 0.05, 0.3, 0.25, 45), (0.35, 0.6, 0.4, 0.3, -25),
              (0.8, 0.55, 0.15, 0.4, 30), (0.3, 0.15, 0.1, 0.15, 35))


def _clip(x, y, w, h, width, height):
    """The part of a rectangle inside the frame, or None."""
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        return None
    return [x0, y0, x1 - x0, y1 - y0]


def _background(spec, width, height, cell):
    """The unlit background at one byte per ``cell`` x ``cell`` pixels."""
    shift = {1: 0, 2: 1, 4: 2, 8: 3}.get(cell)
    if shift is None:
        raise ValueError("scene cell must be 1, 2, 4 or 8, not %r" % cell)
    bw = (width + cell - 1) >> shift
    bh = (height + cell - 1) >> shift
    base = bytearray(bw * bh)
    kind = spec.get("background", "texture")
    level = int(spec.get("level", 100))
    contrast = 0 if kind == "flat" else int(spec.get("contrast", 60))
    low = max(0, level - contrast // 2)
    for bx in range(bw):
        v = min(255, low + contrast * (bx << shift) // width)
        for by in range(bh):
            base[by * bw + bx] = v
    rects = []
    if kind == "texture":
        for fx, fy, fw, fh, dv in _FURNITURE:
            rects.append((int(fx * width), int(fy * height), int(fw * width), int(fh * height),
                          max(0, min(255, level + dv * contrast // 60))))
    for x, y, w, h, v in spec.get("areas", ()):
        rects.append((int(x), int(y), int(w), int(h), max(0, min(255, int(v)))))
    for x, y, w, h, v in rects:
        for by in range(max(0, y >> shift), min(bh, (y + h + cell - 1) >> shift)):
            for bx in range(max(0, x >> shift), min(bw, (x + w + cell - 1) >> shift)):
                base[by * bw + bx] = v
    seed = int(spec.get("seed", 7))
    for scale, amp in spec.get("texture", ()):
        step = max(1, int(scale) >> shift)
        lw = bw // step + 2
        lat = _noise_table(127, seed, lw * (bh // step + 2))
        _octave(base, bw, bh, lat, lw, step, int(amp))
        seed += 101
    return base, shift, bw


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

# The camera driver's memory. On a board the driver keeps its frame buffers
# outside the MicroPython heap (in PSRAM); the virtual board gives its camera
# the same: tools/vboard.py allocates one QQVGA frame before the app starts,
# in memory the VM's heap cap was raised for, and hands it over as the module
# ``_vboard_camera`` (absent elsewhere, e.g. in the on-VM tests: then the
# buffer comes from the heap).
try:
    from _vboard_camera import frame as _driver_frame
except ImportError:
    _driver_frame = None


def _frame_buffer(size):
    """A signed-byte array of ``size``: the driver's frame if it fits, else
    the spare one if it fits, else a new one (every capture overwrites all of
    it). The driver's frame is never given back to the heap."""
    if _driver_frame is not None and len(_driver_frame) == size:
        return _driver_frame  # one camera at a time: the app closes one before the next
    if _spare and len(_spare[0]) == size:
        return _spare.pop()
    _spare[:] = []
    return array.array("b", bytes(size))  # array('b') has no way to allocate in place


def load_scenario(scenario):
    """A scenario dict from a name in NAMES, a path to a .json file, or a dict."""
    if isinstance(scenario, dict):
        return scenario
    if scenario.endswith(".json"):
        with open(scenario) as f:
            return json.load(f)
    spec = globals()["scenario"](scenario)
    if spec is None:
        raise ValueError("unknown scenario %r (have: %s)" % (scenario, ", ".join(NAMES)))
    return spec


def _span(at, ev, default=-1):
    span = ev.get("for")
    return at + max(1, int(span)) if span is not None else default


class SceneCamera:
    """The virtual board's camera.

    ``scenario``: a name (see NAMES), a .json path or a dict.
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
        self._ramp = int(spec.get("row_noise", 0))
        self._rows = _noise_table(self._ramp, seed + 17, _ROWS_LEN)
        self._base, shift, bw = _background(spec, width, height, int(spec.get("cell", 4)))
        self._light = array.array("i", (256, 0))  # gain x256, offset of this frame
        self._objects = []  # (at, until, w, h, x0, y0, x1, y1, level, sway, shape, motion)
        self._lights = []  # (at, ramp, gain x256, offset)
        self._patches = []  # (at, until, ramp, w, h, x0, y0, x1, y1, gain x256 - 256, soft)
        self._rain = []  # (at, until, count, len, level)
        self._fails = []  # (at, until or -1)
        gain, offset = 256, 0
        for ev in sorted(spec.get("events", ()), key=lambda e: e["at"]):
            at = int(ev["at"])
            if "object" in ev:
                o = ev["object"]
                fx, fy = o.get("from", (0, 0))
                tx, ty = o.get("to", (fx, fy))
                self._objects.append((at, _span(at, ev, at + 1000), int(o["w"]), int(o["h"]),
                                      int(fx), int(fy), int(tx), int(ty),
                                      int(o.get("level", 220)), int(o.get("sway", 0)),
                                      o.get("shape", "rect"), o.get("motion", True)))
            elif "light" in ev:
                li = ev["light"]
                gain = int(li.get("gain", gain / 256) * 256)
                offset = int(li.get("offset", offset))
                self._lights.append((at, int(ev.get("ramp_ms", 0)), gain, offset))
            elif "patch" in ev:
                p = ev["patch"]
                fx, fy = p.get("from", (0, 0))
                tx, ty = p.get("to", (fx, fy))
                self._patches.append((at, _span(at, ev), int(ev.get("ramp_ms", 0)),
                                      int(p["w"]), int(p["h"]), int(fx), int(fy), int(tx),
                                      int(ty), int(p.get("gain", 1.5) * 256) - 256,
                                      max(1, int(p.get("soft", 16)))))
            elif "rain" in ev:
                r = ev["rain"]
                self._rain.append((at, _span(at, ev), int(r.get("count", 40)),
                                   int(r.get("len", 3)), int(r.get("level", 230))))
            elif ev.get("fail"):
                self._fails.append((at, _span(at, ev)))
        # what render() works with, allocated once
        ctx = self._ctx = array.array("i", bytes(4 * _C_SIZE))
        ctx[_C_W] = width
        ctx[_C_CS] = shift
        ctx[_C_BW] = bw
        ctx[_C_AMP] = self._amp
        ctx[_C_RAMP] = self._ramp
        self._mw = (width + (1 << _MAP) - 1) >> _MAP
        self._mh = (height + (1 << _MAP) - 1) >> _MAP
        ctx[_C_MW] = self._mw
        self._map = array.array("H", bytes(2 * self._mw * self._mh)) if self._patches else None
        self._box = array.array("i", bytes(16))
        self._buf = _frame_buffer(width * height)
        self._view = memoryview(self._buf)

    # -- scene time --

    def _scene_ms(self, t):
        return t % self._loop if self._loop else t

    def time_of(self, frame):
        """Scene time (ms, before looping) of frame N in frame-counter mode."""
        return frame * self.frame_ms

    def _where(self, at, until, fx, fy, tx, ty, sway, t):
        """Top-left corner at loop time t of something moving during
        at..until, into ``self._box[0:2]`` (no allocation per frame)."""
        box = self._box
        if sway:
            k = (t - at) % sway
            k = 2 * k if 2 * k < sway else 2 * (sway - k)  # 0 .. sway and back
            box[0] = fx + (tx - fx) * k // sway
            box[1] = fy + (ty - fy) * k // sway
            return
        span = until - at
        box[0] = fx + (tx - fx) * (t - at) // span
        box[1] = fy + (ty - fy) * (t - at) // span

    def _place(self, obj, t):
        """Where object ``obj`` is at loop time t: its visible box, or None."""
        at, until, w, h, fx, fy, tx, ty, _, sway, _, _ = obj
        if not at <= t < until:
            return None
        self._where(at, until, fx, fy, tx, ty, sway, t)
        return _clip(self._box[0], self._box[1], w, h, self.width, self.height)

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

    def _lightmap(self, t, gain):
        """Fill the light map for loop time t; False when no patch is lit."""
        lmap, box = self._map, self._box
        lit = False
        for at, until, ramp, w, h, fx, fy, tx, ty, dg, soft in self._patches:
            if t < at or (until >= 0 and t >= until):
                continue
            if not lit:
                _fill16(lmap, len(lmap), gain)
                lit = True
            if ramp:
                k = min(t - at, until - t if until >= 0 else ramp, ramp)
                dg = dg * k // ramp
            self._where(at, until if until >= 0 else at + 1, fx, fy, tx, ty, 0,
                        t if until >= 0 else at)
            box[0] += _BIAS
            box[1] += _BIAS
            box[2] = box[0] + w
            box[3] = box[1] + h
            _light_patch(lmap, self._mw, self._mh, box, soft, dg)
        return lit

    def render(self, t_ms):
        """Draw the scene at t_ms into the frame buffer (capture() calls it)."""
        w, h = self.width, self.height
        ctx = self._ctx
        light = self._light
        self._light_into(t_ms, light)
        t = self._scene_ms(t_ms)
        ctx[_C_GAIN] = light[0]
        ctx[_C_OFF] = light[1] + _BIAS
        ctx[_C_NSTART] = (self.frame * 1031) % _NOISE_LEN
        ctx[_C_RSTART] = (self.frame * 59) % _ROWS_LEN
        ctx[_C_MAP] = 1 if self._map is not None and self._lightmap(t, light[0]) else 0
        lmap = self._map if ctx[_C_MAP] else self._noise  # unread when not lit
        buf = self._buf
        ctx[_C_X0] = 0
        ctx[_C_Y0] = 0
        ctx[_C_X1] = w
        ctx[_C_Y1] = h
        ctx[_C_LEVEL] = 0
        _paint(buf, self._base, lmap, self._noise, self._rows, ctx)
        pos = self._box
        for at, until, ow, oh, fx, fy, tx, ty, level, sway, shape, _ in self._objects:
            if at <= t < until:
                self._where(at, until, fx, fy, tx, ty, sway, t)
                ctx[_C_LEVEL] = level + 1
                if shape == "person":
                    # a head a third as wide as the body, a sixth of the height
                    head = oh // 6
                    self._rect(pos[0] + ow // 3, pos[1], ow - 2 * (ow // 3), head, buf, lmap)
                    self._rect(pos[0], pos[1] + head, ow, oh - head, buf, lmap)
                else:
                    self._rect(pos[0], pos[1], ow, oh, buf, lmap)
        for at, until, count, length, level in self._rain:
            if at <= t < until:
                _streaks(buf, w, h, count, length,
                         max(0, min(255, ((level * light[0]) >> 8) + light[1])),
                         self.frame * 7919 + at)

    def _rect(self, x, y, w, h, buf, lmap):
        ctx = self._ctx
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(self.width, x + w), min(self.height, y + h)
        if x1 > x0 and y1 > y0:
            ctx[_C_X0] = x0
            ctx[_C_Y0] = y0
            ctx[_C_X1] = x1
            ctx[_C_Y1] = y1
            _paint(buf, self._base, lmap, self._noise, self._rows, ctx)

    def close(self):
        """Stop using this camera; its frame buffer goes to the next SceneCamera.

        The app closes a failing camera and makes a new one: reusing the
        buffer saves that a fresh 2 x frame-size allocation on a busy heap.
        """
        if self._buf is not None and self._buf is not _driver_frame and not _spare:
            _spare.append(self._buf)
        self._buf = self._view = None
