"""Motion detection on grayscale frames, block by block.

The frame is cut into square blocks (8x8 pixels by default: 20x15 blocks for
QQVGA). Each frame the mean of every block is compared with a slowly
adapting background of block means. A block whose mean moved away from the
background by more than the threshold is *changed*; a frame with at least
``min_area`` changed blocks is *moving*; ``start_frames`` moving frames in a
row start a motion event, ``end_frames`` still frames in a row end it.

Lighting. A global lighting change (lights switched on, the sun behind a
cloud, the sensor's auto exposure stepping) moves every block at once. Each
frame the detector fits the photometric change from background to frame as
``frame = gain * background + offset`` over the whole frame and measures each
block against that prediction instead of against the raw background. The
fit is robust: the offset is first taken as the *median* block difference,
then gain and offset are fitted by least squares over the blocks that agree
with that median (within three thresholds), so a moving object covering up to
about half the frame does not drag the lighting estimate. Gain is clamped to
0.5 .. 2 and is only fitted when the background has texture (block means
spreading by more than a few grey levels); on a flat scene only the offset is
used. A uniform step or ramp, additive or multiplicative, therefore changes
no block. Saturated pixels (clipped at 0 or 255) break the linear model; the
area and persistence rules absorb most of that.

Settings (a dict; ``configure()`` changes any subset live, unknown keys are
ignored, bad values raise ValueError):

- ``block`` (8): block edge in pixels, 2..32. Smaller finds smaller objects
  and costs more; changing it restarts the detector.
- ``threshold`` (16): grey levels (0-255) a block mean must differ from the
  lighting-corrected background to count as changed, at sensitivity 50.
  Block means average out sensor noise (8x8: noise / 8), so this is about
  contrast between a moving thing and what it covers.
- ``sensitivity`` (50): 1..100, the user's dial over ``threshold``: the
  threshold used is ``threshold * 50 / sensitivity`` (100 halves it, 25
  doubles it).
- ``min_area`` (3): changed blocks a frame needs to count as moving.
- ``start_frames`` (3): moving frames in a row that start an event.
- ``end_frames`` (10): still frames in a row that end it (about 1 s at
  10 fps).
- ``update_ms`` (500): least time between two ``update`` events (2 a second).
- ``learn_frames`` (32): how fast the background follows the scene, as a
  time constant in frames (rounded down to a power of two). Changed blocks
  learn four times slower, so what moves through does not smear into it.
- ``absorb_frames`` (50): a block changed this many frames in a row becomes
  background at once (2..255). Something that stops in view (a parked car,
  a person standing still, the "ghost" of whatever was in view when the
  detector started and has left) ends the event after that long instead of
  keeping it open forever. Moving things change each block only briefly.
- ``warmup_frames`` (5): frames after a (re)start that only teach the
  background; detection starts after them.
- ``mask`` ([]): pixel rectangles ``[x, y, w, h]`` to ignore; every block a
  rectangle touches is ignored.
- ``mask_blocks`` ([]): the same in block units ``[col, row, cols, rows]``.

The per-frame work is two functions with a ``@micropython.viper`` version
(what runs) and a pure-Python twin (the test oracle) giving identical
results: ``block_means_*`` and ``compare_*``. All buffers are allocated at
construction, so a frame that produces no event allocates nothing.
"""

import array
import micropython
import time
from micropython import const

# Largest number of blocks: keeps every sum inside a signed 32-bit integer,
# the viper int of the ESP32.
MAX_BLOCKS = const(4096)

# Slots of the int32 state array compare() works on. Inputs first (set by the
# Detector), then what compare() reports about the last frame.
S_THR = const(0)  # changed threshold, grey levels x16
S_LEARN = const(1)  # background learning shift (rate 1 / 2**shift)
S_INIT = const(2)  # 1: copy this frame into the background
S_NACT = const(3)  # out: blocks not masked
S_NCH = const(4)  # out: changed blocks
S_SUMR = const(5)  # out: sum of |residual| of changed blocks, x16
S_X0 = const(6)  # out: bounding box of changed blocks, in blocks
S_Y0 = const(7)
S_X1 = const(8)
S_Y1 = const(9)
S_SX = const(10)  # out: sum of changed block columns
S_SY = const(11)  # out: sum of changed block rows
S_OFF = const(12)  # out: median difference, grey levels
S_GAIN = const(13)  # out: fitted gain x256
S_NIN = const(14)  # out: blocks used for the lighting fit
S_ABSORB = const(15)  # changed frames in a row after which a block is background
STATE_SIZE = const(16)

HIST_SIZE = const(511)  # median histogram: differences -255..255
_GAIN_MIN = const(128)  # 0.5 x256
_GAIN_MAX = const(512)  # 2.0 x256

DEFAULTS = {
    "block": 8,
    "threshold": 16,
    "sensitivity": 50,
    "min_area": 3,
    "start_frames": 3,
    "end_frames": 10,
    "update_ms": 500,
    "learn_frames": 32,
    "absorb_frames": 50,
    "warmup_frames": 5,
    "mask": [],
    "mask_blocks": [],
}

# (low, high) accepted for the integer settings.
_RANGES = {
    "block": (2, 32),
    "threshold": (1, 255),
    "sensitivity": (1, 100),
    "min_area": (1, MAX_BLOCKS),
    "start_frames": (1, 1000),
    "end_frames": (1, 1000),
    "update_ms": (0, 3600000),
    "learn_frames": (1, 1 << 14),
    "absorb_frames": (2, 255),
    "warmup_frames": (0, 1000),
}


# ---- per-frame block math: viper, then its pure-Python twin -------------


@micropython.viper
def block_means_viper(frame: ptr8, out: ptr16, width: int, cols: int, rows: int, size: int):
    """Mean of every block, x16, into ``out`` (row-major, cols x rows).

    ``frame`` is read as unsigned bytes whatever its typecode, so a camera's
    signed memoryview reads as 0..255. Pixels right of ``cols * size`` or
    below ``rows * size`` are not used.
    """
    area = size * size
    i = 0
    by = 0
    while by < rows:
        top = by * size * width
        bx = 0
        while bx < cols:
            s = 0
            p = top + bx * size
            yy = 0
            while yy < size:
                q = p
                end = p + size
                while q < end:
                    s += frame[q]
                    q += 1
                p += width
                yy += 1
            out[i] = (s << 4) // area
            i += 1
            bx += 1
        by += 1


def block_means_py(frame, out, width, cols, rows, size):
    """Pure-Python twin of ``block_means_viper`` (same arguments, same result)."""
    area = size * size
    i = 0
    for by in range(rows):
        top = by * size * width
        for bx in range(cols):
            s = 0
            p = top + bx * size
            for yy in range(size):
                for q in range(p, p + size):
                    s += frame[q] & 0xFF
                p += width
            out[i] = (s << 4) // area
            i += 1


@micropython.viper
def compare_viper(cur: ptr16, bg: ptr16, mask: ptr8, changed: ptr8, hist: ptr16, st: ptr32,
                  n: int, cols: int) -> int:
    """Compare block means with the background; return the changed count.

    ``cur``: block means x16 (from block_means); ``bg``: background x256,
    updated here; ``mask``: 1 for ignored blocks; ``changed``: per block, 0
    or how many frames in a row it has been changed (up to S_ABSORB, when
    the block is taken into the background at once); ``hist``: scratch of
    HIST_SIZE entries; ``st``: the state array (inputs S_THR, S_LEARN,
    S_INIT, S_ABSORB; outputs S_NACT..S_NIN); ``n`` blocks, ``cols`` a row.
    """
    thr = st[S_THR]
    learn = st[S_LEARN]
    absorb = st[S_ABSORB]
    if st[S_INIT]:
        i = 0
        while i < n:
            bg[i] = cur[i] << 4
            changed[i] = 0
            i += 1
        st[S_INIT] = 0
    # 1. median block difference (grey levels) over the watched blocks
    i = 0
    while i < HIST_SIZE:
        hist[i] = 0
        i += 1
    nact = 0
    i = 0
    while i < n:
        if mask[i] == 0:
            d = (cur[i] >> 4) - (bg[i] >> 8) + 255
            hist[d] += 1
            nact += 1
        i += 1
    off = 0
    if nact > 0:
        half = (nact + 1) >> 1
        acc = 0
        i = 0
        while i < HIST_SIZE:
            acc += hist[i]
            if acc >= half:
                break
            i += 1
        off = i - 255
    # 2. blocks agreeing with the median: their means
    off16 = off << 4
    win = thr * 3
    sx = 0
    sy = 0
    nin = 0
    i = 0
    while i < n:
        if mask[i] == 0:
            c = int(cur[i])
            b = int(bg[i]) >> 4
            d = c - b - off16
            if d < 0:
                d = -d
            if d <= win:
                sx += b
                sy += c
                nin += 1
        i += 1
    gain = 256
    if nin > 0:
        mx = sx // nin
        my = sy // nin
        # 3. gain by least squares over those blocks (x2 scale: no overflow)
        var = 0
        cov = 0
        i = 0
        while i < n:
            if mask[i] == 0:
                c = int(cur[i])
                b = int(bg[i]) >> 4
                d = c - b - off16
                if d < 0:
                    d = -d
                if d <= win:
                    dx = (b - mx) >> 3
                    dy = (c - my) >> 3
                    var += dx * dx
                    cov += dx * dy
            i += 1
        if var >= nin * 64:
            while var > 0x100000:
                var >>= 1
                cov >>= 1
            if cov * 2 < var:
                gain = _GAIN_MIN
            elif cov > var * 2:
                gain = _GAIN_MAX
            else:
                gain = (cov << 8) // var
        else:
            mx = 0
            my = off16
    else:
        mx = 0
        my = off16
    # 4. residual against the lighting prediction; learn the background
    nch = 0
    sumr = 0
    x0 = cols
    y0 = n
    x1 = -1
    y1 = -1
    scol = 0
    srow = 0
    bx = 0
    by = 0
    fast = learn
    slow = learn + 2
    i = 0
    while i < n:
        c = int(cur[i])
        b256 = int(bg[i])
        hit = 0
        if mask[i] == 0:
            r = c - my - ((gain * ((b256 >> 4) - mx)) >> 8)
            if r < 0:
                r = -r
            if r > thr:
                hit = 1
                nch += 1
                sumr += r
                if bx < x0:
                    x0 = bx
                if bx > x1:
                    x1 = bx
                if by < y0:
                    y0 = by
                y1 = by
                scol += bx
                srow += by
        if hit:
            age = changed[i] + 1
            if age >= absorb:
                bg[i] = c << 4
                age = 1
            else:
                bg[i] = b256 + (((c << 4) - b256) >> slow)
            changed[i] = age
        else:
            changed[i] = 0
            bg[i] = b256 + (((c << 4) - b256) >> fast)
        i += 1
        bx += 1
        if bx == cols:
            bx = 0
            by += 1
    st[S_NACT] = nact
    st[S_NCH] = nch
    st[S_SUMR] = sumr
    st[S_X0] = x0
    st[S_Y0] = y0
    st[S_X1] = x1
    st[S_Y1] = y1
    st[S_SX] = scol
    st[S_SY] = srow
    st[S_OFF] = off
    st[S_GAIN] = gain
    st[S_NIN] = nin
    return nch


def compare_py(cur, bg, mask, changed, hist, st, n, cols):
    """Pure-Python twin of ``compare_viper`` (same arguments, same result)."""
    thr = st[S_THR]
    learn = st[S_LEARN]
    absorb = st[S_ABSORB]
    if st[S_INIT]:
        for i in range(n):
            bg[i] = cur[i] << 4
            changed[i] = 0
        st[S_INIT] = 0
    for i in range(HIST_SIZE):
        hist[i] = 0
    nact = 0
    for i in range(n):
        if mask[i] == 0:
            hist[(cur[i] >> 4) - (bg[i] >> 8) + 255] += 1
            nact += 1
    off = 0
    if nact > 0:
        half = (nact + 1) >> 1
        acc = 0
        i = 0
        while i < HIST_SIZE:
            acc += hist[i]
            if acc >= half:
                break
            i += 1
        off = i - 255
    off16 = off << 4
    win = thr * 3
    sx = sy = nin = 0
    for i in range(n):
        if mask[i] == 0:
            c = cur[i]
            b = bg[i] >> 4
            if abs(c - b - off16) <= win:
                sx += b
                sy += c
                nin += 1
    gain = 256
    mx = 0
    my = off16
    if nin > 0:
        mx = sx // nin
        my = sy // nin
        var = cov = 0
        for i in range(n):
            if mask[i] == 0:
                c = cur[i]
                b = bg[i] >> 4
                if abs(c - b - off16) <= win:
                    dx = (b - mx) >> 3
                    dy = (c - my) >> 3
                    var += dx * dx
                    cov += dx * dy
        if var >= nin * 64:
            while var > 0x100000:
                var >>= 1
                cov >>= 1
            if cov * 2 < var:
                gain = _GAIN_MIN
            elif cov > var * 2:
                gain = _GAIN_MAX
            else:
                gain = (cov << 8) // var
        else:
            mx = 0
            my = off16
    nch = sumr = scol = srow = 0
    x0, y0, x1, y1 = cols, n, -1, -1
    slow = learn + 2
    for i in range(n):
        by, bx = divmod(i, cols)
        c = cur[i]
        b256 = bg[i]
        hit = 0
        if mask[i] == 0:
            r = abs(c - my - ((gain * ((b256 >> 4) - mx)) >> 8))
            if r > thr:
                hit = 1
                nch += 1
                sumr += r
                x0 = min(x0, bx)
                x1 = max(x1, bx)
                y0 = min(y0, by)
                y1 = by
                scol += bx
                srow += by
        if hit:
            age = changed[i] + 1
            if age >= absorb:
                bg[i] = c << 4
                age = 1
            else:
                bg[i] = b256 + (((c << 4) - b256) >> slow)
            changed[i] = age
        else:
            changed[i] = 0
            bg[i] = b256 + (((c << 4) - b256) >> learn)
    st[S_NACT] = nact
    st[S_NCH] = nch
    st[S_SUMR] = sumr
    st[S_X0] = x0
    st[S_Y0] = y0
    st[S_X1] = x1
    st[S_Y1] = y1
    st[S_SX] = scol
    st[S_SY] = srow
    st[S_OFF] = off
    st[S_GAIN] = gain
    st[S_NIN] = nin
    return nch


# ---- the detector --------------------------------------------------------


def _shift_for(frames):
    """log2 of ``frames`` rounded down (the background learning shift)."""
    k = 0
    while (2 << k) <= frames:
        k += 1
    return k


class Detector:
    """Turns a stream of grayscale frames into motion events.

    ``width``, ``height``: frame size in pixels (one byte per pixel).
    ``settings``: dict of settings (see the module docstring); missing keys
    take their defaults. ``native``: False runs the pure-Python twins instead
    of viper (tests use it as the oracle; about 50 times slower).
    """

    def __init__(self, width, height, settings=None, native=True):
        self.width = width
        self.height = height
        self._means = block_means_viper if native else block_means_py
        self._compare = compare_viper if native else compare_py
        self._st = array.array("i", bytes(4 * STATE_SIZE))
        self._hist = array.array("H", bytes(2 * HIST_SIZE))
        self.settings = {}
        self.block = 0
        self._active = False
        self._box0 = self._box1 = 0
        self.configure(DEFAULTS)
        if settings:
            self.configure(settings)

    # -- settings --

    def configure(self, settings):
        """Apply the keys of ``settings`` that are ours; keep the others.

        Raises ValueError (naming the key) on a bad value, changing nothing.
        A new ``block`` size restarts the background; an open event stays
        open (warm-up frames count as still ones), so it ends after
        ``end_frames`` unless motion goes on.
        """
        new = dict(self.settings)
        for key in DEFAULTS:
            if key not in settings:
                continue
            value = settings[key]
            if key in ("mask", "mask_blocks"):
                new[key] = self._check_rects(key, value)
                continue
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ValueError("motion setting %s: not a number: %r" % (key, value))
            low, high = _RANGES[key]
            if not low <= value <= high:
                raise ValueError("motion setting %s: %d not in %d..%d" % (key, value, low, high))
            new[key] = value
        size = new["block"]
        cols = self.width // size
        rows = self.height // size
        if cols < 1 or rows < 1 or cols * rows > MAX_BLOCKS:
            raise ValueError("motion setting block: %d gives %dx%d blocks for %dx%d"
                             % (size, cols, rows, self.width, self.height))
        self.settings = new
        if size != self.block:
            self._allocate(size, cols, rows)
        self._apply_mask()
        st = self._st
        st[S_THR] = max(1, (new["threshold"] * 16 * 50) // new["sensitivity"])
        st[S_LEARN] = _shift_for(new["learn_frames"])
        st[S_ABSORB] = new["absorb_frames"]
        self._min_area = new["min_area"]
        self._start_frames = new["start_frames"]
        self._end_frames = new["end_frames"]
        self._update_ms = new["update_ms"]

    @staticmethod
    def _check_rects(key, value):
        try:
            rects = [[int(v) for v in r] for r in value]
        except (TypeError, ValueError):
            raise ValueError("motion setting %s: want a list of [x, y, w, h]" % key)
        for r in rects:
            if len(r) != 4 or r[2] < 0 or r[3] < 0:
                raise ValueError("motion setting %s: bad rectangle %r" % (key, r))
        return rects

    def _allocate(self, size, cols, rows):
        n = cols * rows
        self.block = size
        self.cols = cols
        self.rows = rows
        self._n = n
        self._cur = array.array("H", bytes(2 * n))
        self._bg = array.array("H", bytes(2 * n))
        self.mask = bytearray(n)
        self.changed = bytearray(n)
        self.reset()

    def _apply_mask(self):
        mask = self.mask
        size = self.block
        for i in range(self._n):
            mask[i] = 0
        for x, y, w, h in self.settings["mask"]:
            if w and h:  # pixels -> every block touched
                self._mask_blocks(x // size, y // size,
                                  (x + w - 1) // size - x // size + 1,
                                  (y + h - 1) // size - y // size + 1)
        for bx, by, bw, bh in self.settings["mask_blocks"]:
            self._mask_blocks(bx, by, bw, bh)

    def _mask_blocks(self, bx, by, bw, bh):
        cols = self.cols
        for row in range(max(0, by), min(self.rows, by + bh)):
            for col in range(max(0, bx), min(cols, bx + bw)):
                self.mask[row * cols + col] = 1

    def reset(self):
        """Forget the background: the next frames teach it again."""
        self._st[S_INIT] = 1
        self._warm = self.settings["warmup_frames"] + 1
        self._run = 0  # moving frames in a row (idle) / still frames in a row (active)

    # -- frames --

    def process(self, frame, now_ms):
        """Feed one frame; return None or ``(kind, payload)``.

        ``frame``: width * height grayscale bytes: bytes, bytearray, or a
        memoryview of signed bytes as the ESP32 camera driver returns (read
        here and not kept, so it may be reused after this returns).
        ``now_ms``: a ``time.ticks_ms()`` value (wrap-safe).

        kind ``"start"`` / ``"update"``: payload ``score`` (percent of the
        watched, unmasked area that changed, rounded up: 1..100), ``blocks``
        (changed blocks), ``bbox`` ([x, y, w, h] pixels around the changed
        blocks), ``centroid`` ([x, y] pixels, mean of the changed block
        centres). kind ``"end"``: ``duration_ms`` (start event to the last
        moving frame), ``peak_score`` and ``bbox`` (of the last moving
        frame). ``update`` comes only on moving frames, at most one per
        ``update_ms``.
        """
        if len(frame) < self.width * self.height:
            raise ValueError("frame too short")
        self._means(frame, self._cur, self.width, self.cols, self.rows, self.block)
        nch = self._compare(self._cur, self._bg, self.mask, self.changed, self._hist, self._st,
                            self._n, self.cols)
        if self._warm:
            self._warm -= 1
            nch = 0
        moving = nch >= self._min_area
        if not self._active:
            if not moving:
                self._run = 0
                return None
            self._run += 1
            if self._run < self._start_frames:
                return None
            self._active = True
            self._run = 0
            self._started = now_ms
            self._last_moving = now_ms
            self._last_update = now_ms
            self._peak = 0
            return ("start", self._payload())
        if not moving:
            self._run += 1
            if self._run < self._end_frames:
                return None
            self._active = False
            self._run = 0
            return ("end", {"duration_ms": time.ticks_diff(self._last_moving, self._started),
                            "peak_score": self._peak, "bbox": self._last_bbox()})
        self._run = 0
        self._last_moving = now_ms
        st = self._st
        self._box0 = st[S_X0] | (st[S_Y0] << 16)  # small ints: no allocation
        self._box1 = st[S_X1] | (st[S_Y1] << 16)
        score = self._score()
        if score > self._peak:
            self._peak = score
        if time.ticks_diff(now_ms, self._last_update) < self._update_ms:
            return None
        self._last_update = now_ms
        return ("update", self._payload())

    @property
    def active(self):
        """True between a start event and its end event."""
        return self._active

    def _score(self):
        st = self._st
        nact = st[S_NACT]
        return (st[S_NCH] * 100 + nact - 1) // nact if nact else 0  # rounded up: never 0

    def _last_bbox(self):
        size = self.block
        x0, y0 = self._box0 & 0xFFFF, self._box0 >> 16
        x1, y1 = self._box1 & 0xFFFF, self._box1 >> 16
        return [x0 * size, y0 * size, (x1 - x0 + 1) * size, (y1 - y0 + 1) * size]

    def _payload(self):
        st = self._st
        size = self.block
        nch = st[S_NCH]
        score = self._score()
        if score > self._peak:
            self._peak = score
        self._box0 = st[S_X0] | (st[S_Y0] << 16)
        self._box1 = st[S_X1] | (st[S_Y1] << 16)
        bbox = self._last_bbox()
        centroid = [(st[S_SX] * size) // nch + size // 2, (st[S_SY] * size) // nch + size // 2]
        return {"score": score, "blocks": nch, "bbox": bbox, "centroid": centroid}

    def lighting(self):
        """(offset, gain x256, blocks fitted) of the last frame: for tests, tuning."""
        st = self._st
        return st[S_OFF], st[S_GAIN], st[S_NIN]
