"""Motion detection on grayscale frames, block by block.

The frame is cut into square blocks (8x8 pixels by default: 20x15 blocks for
QQVGA). Each frame the mean of every block is compared with a slowly
adapting background of block means. A block whose mean moved away from the
background by more than the threshold is *changed*; a frame with at least
``min_area`` changed blocks is *moving*; ``start_frames`` moving frames in a
row start a motion event (an episode), and it ends once nothing has moved
for ``end_s`` seconds, so one person crossing a room slowly, with pauses, is
one episode.

Lighting. A global lighting change (lights switched on, the sun behind a
cloud, the sensor's auto exposure stepping) moves every block at once. Each
frame the detector fits the photometric change from background to frame as
``frame = gain * background + offset`` and measures each block against that
prediction instead of against the raw background. The fit is robust: the
offset is first taken as the *median* block difference, then gain and
offset are fitted by least squares over the blocks that agree with that
median (within three thresholds), so a moving object covering up to about
half the frame does not drag the lighting estimate. Gain is clamped to
0.25 .. 4 and is only fitted when the background has texture.

Clipping. A sensor clips at 0 and 255, which breaks the linear model: a
block whose mean is near 255 (``_HI``) only says "at least this bright", one
near 0 (``_LO``) "at most this dark". Such blocks are left out of the fit,
and a block counts as changed only if even the most favourable reading of
what it shows is more than the threshold away from the prediction (a dark
person in front of a blown-out window is still seen; a window that clips
harder under more light is not). The background of a clipped block follows
the lighting fit instead of the clipped value, and a background learned
from a clipped block is a bound that the first clean look replaces.

Lights switched on or off. What changes over a large part of the picture at
once is light, not a visitor (Motion's ``lightswitch``, Frigate's
``lightning_threshold``): when blocks that became changed in the last two
frames make up ``light_switch_pct`` percent of the watched blocks, the
background is rebuilt from the new frames over ``_LIGHT_PAUSE_MS`` (1 s)
during which nothing is detected, and ``process()`` returns a ``light``
event. An open episode stays open through it. A lamp lighting one side of
the room is handled by this rule too: on the suite in tests/vm/scene_suite.py
it gives no false start, while fitting lighting per region of the frame
would also fit away any person who covers most of a region (a person near
the camera covers several), so the whole-frame fit plus this rule measured
better. Slow local changes (a dimmer, a cloud's shadow) are followed by
background learning; the noise floor below keeps what they leave below the
threshold.

Noise. The threshold is kept above the noise the camera really has (like
Motion's ``noise_tune``): each frame the median absolute residual of the
blocks is measured, smoothed (quick to rise, slow to fall), and the
threshold used is at least ``_NOISE_K`` (7.5) times it, about five standard
deviations of the block-mean noise, and at most three times the configured
threshold, so a noisy, dark picture gives neither a storm of false alarms
nor a blind camera. The same floor rises while the lighting model fits
poorly (a cloud's shadow sweeping through).

Speckle. A changed block with no changed neighbour (of its 8) is not
counted: rain, snow and single hot blocks do not add up to ``min_area``.

Repetitive motion. With ``auto_mask`` on, a block that was changed in more
than half of the frames over the last several seconds (leaves, a curtain, a
screen) is masked automatically, and unmasked once it has been quiet for a
while (camwatch.automask); every change of the automatic mask is returned
as a ``mask`` event. A masked block still has its activity measured.

Settings (a dict; ``configure()`` changes any subset live, unknown keys are
ignored, bad values raise ValueError):

- ``block`` (8): block edge in pixels, 2..32. Smaller finds smaller objects
  and costs more; changing it restarts the detector.
- ``threshold`` (16): grey levels (0-255) a block mean must differ from the
  lighting-corrected background to count as changed, at sensitivity 50
  (raised automatically above the measured noise).
- ``sensitivity`` (50): 1..100, the user's dial over ``threshold``: the
  threshold used is ``threshold * 50 / sensitivity`` (100 halves it, 25
  doubles it).
- ``min_area`` (3): changed blocks a frame needs to count as moving.
- ``start_frames`` (3): moving frames in a row that start an episode.
- ``end_s`` (4): seconds without a moving frame that end it.
- ``update_ms`` (500): least time between two ``update`` events (2 a second).
- ``light_switch_pct`` (20): share of the watched blocks (percent) that
  must change within two frames to be taken as a lighting change; 0 turns
  the rule off.
- ``auto_mask`` (0): 1 masks blocks that change most of the time.
- ``learn_frames`` (32): how fast the background follows the scene, as a
  time constant in frames (rounded down to a power of two). Changed blocks
  learn four times slower, so what moves through does not smear into it.
- ``absorb_frames`` (50): a block changed this many frames in a row becomes
  background at once (2..255). Something that stops in view (a parked car,
  a person standing still, the "ghost" of whatever was in view when the
  detector started and has left) ends the episode after that long instead
  of keeping it open forever. Moving things change each block only briefly.
- ``warmup_frames`` (5): frames after a (re)start that only teach the
  background; detection starts after them.
- ``mask`` ([]): pixel rectangles ``[x, y, w, h]`` to ignore; every block a
  rectangle touches is ignored.
- ``mask_blocks`` ([]): the same in block units ``[col, row, cols, rows]``.

The per-frame work is two functions with a ``@micropython.viper`` version
(what runs) and a pure-Python twin in ``camwatch.motion_twin`` (the test
oracle, never imported on a board) giving identical results:
``block_means_*`` and ``compare_*``. All buffers are allocated at
construction, so a frame that produces no event allocates nothing.
"""

import array
import micropython
import time
from micropython import const

# Largest number of blocks: keeps every sum inside a signed 32-bit integer,
# the viper int of the ESP32.
_MAX_BLOCKS = const(4096)

# Slots of the int32 state array compare() works on. Inputs first (set by the
# Detector), then what compare() reports about the last frame. Inputs are
# never negative: a 64-bit viper reads int32 items without sign extension.
_S_THR = const(0)  # configured threshold, grey levels x16
_S_LEARN = const(1)  # background learning shift (rate 1 / 2**shift)
_S_INIT = const(2)  # 1: copy this frame into the background
_S_NACT = const(3)  # out: blocks watched (not masked)
_S_NCH = const(4)  # out: changed blocks that count (they have a changed neighbour)
_S_NHIT = const(5)  # out: blocks over the threshold, counted or not, masked ones included
_S_X0 = const(6)  # out: bounding box of counted blocks, in blocks
_S_Y0 = const(7)
_S_X1 = const(8)
_S_Y1 = const(9)
_S_SX = const(10)  # out: sum of counted block columns
_S_SY = const(11)  # out: sum of counted block rows
_S_OFF = const(12)  # out: median difference, grey levels
_S_GAIN = const(13)  # out: fitted gain x256
_S_NIN = const(14)  # out: blocks used for the lighting fit
_S_ABSORB = const(15)  # changed frames in a row after which a block is background
_S_NOISE = const(16)  # state: smoothed median |residual|, grey levels x256
_S_THRUSED = const(17)  # out: threshold used this frame, grey levels x16
_S_NHIT0 = const(18)  # out: watched blocks over the configured threshold
_S_MAD = const(19)  # out: median |residual| of this frame, grey levels x16
_STATE_SIZE = const(20)

_HIST_SIZE = const(256)  # median histograms: differences -127..128, |residual| 0..127
_GAIN_MIN = const(64)  # 0.25 x256
_GAIN_MAX = const(1024)  # 4.0 x256
_LO = const(128)  # block means at or below 8 (x16) may be clipped at 0
_HI = const(3920)  # at or above 245 (x16) may be clipped at 255
_SAT = const(0x8000)  # block_means: a sixteenth of the pixels or more saturated
_MEAN = const(0xFFF)  # block_means: the mean, x16
_FAR = const(0x1000000)  # "unbounded" end of an interval (x16)
_BG_MAX = const(0x3FFFFF)  # background cap (x256): 16383 grey levels
_RAD = const(4)  # the local light around a block: 9x9 blocks
_NMIN = const(49)  # near the edges: averaged as if over at least 49 (shrunk)
_MADH = const(128)  # median |residual| histogram: 0 .. 31.75 grey levels
_QLIM = const(160)  # relative residuals are clamped to +/- 0.625 (x256) for it
_PMIN = const(256)  # predictions below 16 grey levels count as 16 there
_WBIAS = const(0x8000)  # added to what goes in the (16-bit) work array
_WMAX = const(0x7FFF)  # residuals and predictions are clamped to this there
_NOISE_K = const(120)  # threshold floor: 7.5 x the median |residual| (x16)
_SMALL_MS = const(1000)  # a pair of changed blocks this long, moving, is something small
_LIGHT_PAUSE_MS = const(1000)  # after a light switch: rebuild, detect nothing
_AUTO_PERIOD_MS = const(1000)  # auto mask: how often activity is taken (camwatch.automask)

# mask bits per block
MASK_USER = const(1)
MASK_AUTO = const(2)
# aux array: three runs of n bytes
_BOUND = const(0)  # 0: background known; 1: at least it (clipped high); 2: at most (low)

DEFAULTS = {
    "block": 8,
    "threshold": 16,
    "sensitivity": 50,
    "min_area": 3,
    "start_frames": 3,
    "end_s": 4,
    "update_ms": 500,
    "light_switch_pct": 20,
    "auto_mask": 0,
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
    "min_area": (1, _MAX_BLOCKS),
    "start_frames": (1, 1000),
    "end_s": (1, 3600),
    "update_ms": (0, 3600000),
    "light_switch_pct": (0, 100),
    "auto_mask": (0, 1),
    "learn_frames": (1, 1 << 14),
    "absorb_frames": (2, 255),
    "warmup_frames": (0, 1000),
}


# ---- per-frame block math: viper, then its pure-Python twin -------------


@micropython.viper
def block_means_viper(frame: ptr8, out: ptr16, width: int, cols: int, rows: int, size: int):
    """Mean of every block, x16, into ``out`` (row-major, cols x rows), with
    bit 15 (_SAT) set when a sixteenth or more of the pixels of its even rows
    are saturated (252 or more).

    ``frame`` is read as unsigned bytes whatever its typecode, so a camera's
    signed memoryview reads as 0..255. Pixels right of ``cols * size`` or
    below ``rows * size`` are not used. When the block size, the width and
    the buffer's address allow, pixels are read four at a time (one 32-bit
    word, summed as two pairs of 16-bit lanes; saturated bytes found with a
    carry-free zero-byte test).
    """
    area = size * size
    i = 0
    by = 0
    if (size & 3) == 0 and (width & 3) == 0 and (int(frame) & 3) == 0:
        f32 = ptr32(frame)
        w4 = width >> 2
        s4 = size >> 2
        k = 16  # a variable: constants past 30 bits would be objects here
        m7f = (0x7F7F << k) | 0x7F7F
        mfc = (0xFCFC << k) | 0xFCFC
        m80 = (0x8080 << k) | 0x8080
        while by < rows:
            top = by * size * w4
            bx = 0
            while bx < cols:
                lo = 0
                hi = 0
                sat = 0
                p = top + bx * s4
                yy = 0
                while yy < size:
                    q = p
                    end = p + s4
                    while q < end:  # an even row: sum, count saturated
                        v = int(f32[q])
                        lo += v & 0x00FF00FF
                        hi += (v >> 8) & 0x00FF00FF
                        x = (v ^ mfc) & mfc  # a zero byte: that pixel is 252..255
                        sat += (((((x & m7f) + m7f) | x) & m80) ^ m80) >> 7
                        q += 1
                    p += w4
                    q = p
                    end = p + s4
                    while q < end:  # an odd row: sum
                        v = int(f32[q])
                        lo += v & 0x00FF00FF
                        hi += (v >> 8) & 0x00FF00FF
                        q += 1
                    p += w4
                    yy += 2
                s = (lo & 0xFFFF) + ((lo >> 16) & 0xFFFF) + (hi & 0xFFFF) + ((hi >> 16) & 0xFFFF)
                sat = (sat & 0xFF) + ((sat >> 8) & 0xFF) + ((sat >> 16) & 0xFF) + ((sat >> 24) & 0xFF)
                v = (s << 4) // area
                if (sat << 5) >= area:
                    v |= _SAT
                out[i] = v
                i += 1
                bx += 1
            by += 1
        return
    while by < rows:
        top = by * size * width
        bx = 0
        while bx < cols:
            s = 0
            sat = 0
            p = top + bx * size
            yy = 0
            while yy < size:
                q = p
                end = p + size
                while q < end:
                    v = frame[q]
                    s += v
                    if v >= 252 and (yy & 1) == 0:
                        sat += 1
                    q += 1
                p += width
                yy += 1
            v = (s << 4) // area
            if (sat << 5) >= area:
                v |= _SAT
            out[i] = v
            i += 1
            bx += 1
        by += 1


@micropython.viper
def compare_viper(cur: ptr16, bg: ptr32, mask: ptr8, changed: ptr8, aux: ptr8, work: ptr16,
                  hist: ptr16, st: ptr32, n: int, cols: int) -> int:
    """Compare block means with the background; return the counted changed blocks.

    ``cur``: block means x16 (from block_means); ``bg``: background x256
    (int32, never negative), updated here; ``mask``: per block, MASK_USER
    (ignored) and MASK_AUTO (measured, not counted) bits; ``changed``: per
    block, 0 or how many frames in a row it has counted as changed (up to
    _S_ABSORB, when the block is taken into the background at once); ``aux``:
    3 x n bytes: what the background of each block knows (0 known, 1 a lower
    bound, 2 an upper bound), this frame's over-threshold flags, and how many
    frames each block was over the threshold since the caller last cleared
    it (up to 255); ``work``: 16-bit scratch of 2 x n; ``hist``: scratch of
    _HIST_SIZE entries; ``st``: the state
    array (inputs _S_THR, _S_LEARN, _S_INIT, _S_ABSORB, _S_NOISE; the rest is
    output); ``n`` blocks, ``cols`` a row.
    """
    thr0 = st[_S_THR]
    learn = st[_S_LEARN]
    absorb = st[_S_ABSORB]
    hits = n
    busy = n + n
    if st[_S_INIT]:
        i = 0
        while i < n:
            c = cur[i]
            bg[i] = (c & _MEAN) << 4
            changed[i] = 0
            b = 0
            if c >= _HI:
                b = 1
            elif c <= _LO:
                b = 2
            aux[i] = b
            i += 1
        st[_S_INIT] = 0
    # 1. median block difference (grey levels) over watched, unclipped blocks
    i = 0
    while i < _HIST_SIZE:
        hist[i] = 0
        i += 1
    nact = 0
    nfit = 0
    i = 0
    while i < n:
        # 1: clean (watched, unclipped now and in the background); 8: newly
        # over the threshold in the last frame (something coming, not light)
        k = 0
        if aux[hits + i] & 1 and changed[i] <= 2:
            k = 8
        if mask[i] == 0:
            nact += 1
            c = cur[i]
            b = int(bg[i]) >> 4
            if aux[i] == 0 and c > _LO and c < _HI and b > _LO and b < _HI:
                # past +/- 127 grey levels in one frame is a light switch
                d = (c >> 4) - (b >> 4) + 127
                if d < 0:
                    d = 0
                elif d > 255:
                    d = 255
                hist[d] += 1
                nfit += 1
                k |= 1
        aux[hits + i] = k
        i += 1
    off = 0
    if nfit > 0:
        half = (nfit + 1) >> 1
        acc = 0
        i = 0
        while i < _HIST_SIZE:
            acc += hist[i]
            if acc >= half:
                break
            i += 1
        off = i - 127
    # 2. blocks agreeing with the median: their means
    off16 = off << 4
    win = thr0 * 3
    sx = 0
    sy = 0
    nin = 0
    i = 0
    while i < n:
        if aux[hits + i] & 1:
            c = cur[i]
            b = int(bg[i]) >> 4
            d = c - b - off16
            if d < 0:
                d = -d
            if d <= win:
                sx += b
                sy += c
                nin += 1
                aux[hits + i] |= 2  # an inlier of the fit
        i += 1
    gain = 256
    mx = 0
    my = off16
    if nin > 0:
        mx = sx // nin
        my = sy // nin
        # 3. gain by least squares over those blocks (x2 scale: no overflow)
        var = 0
        cov = 0
        i = 0
        while i < n:
            if aux[hits + i] & 2:
                dx = ((int(bg[i]) >> 4) - mx) >> 3
                dy = (int(cur[i]) - my) >> 3
                var += dx * dx
                cov += dx * dy
            i += 1
        if var >= nin * 64:
            while var > 0x100000:
                var >>= 1
                cov >>= 1
            if cov * 4 < var:
                gain = _GAIN_MIN
            elif cov > var * 4:
                gain = _GAIN_MAX
            else:
                gain = (cov << 8) // var
        else:
            mx = 0
            my = off16
    # 4. residual of every block against the lighting prediction: the
    # distance between what the block may be and what it should be, signed
    # (positive: brighter than predicted), into work[:n]; the median
    # |residual| of clean blocks (noise and what the lighting model cannot
    # explain)
    i = 0
    while i < _MADH:
        hist[i] = 0
        i += 1
    nmad = 0
    qmin = thr0 >> 2
    i = 0
    while i < n:
        r = 0
        q = 0
        p = _PMIN
        if (mask[i] & MASK_USER) == 0:
            c = cur[i]
            p = my + ((gain * ((int(bg[i]) >> 4) - mx)) >> 8)
            k = aux[i]
            if k == 0 and c > _LO and c < _HI:
                r = c - p
            else:
                clo = c & _MEAN
                chi = clo
                if c >= _HI:
                    chi = _FAR
                elif c <= _LO:
                    clo = -_FAR
                plo = p
                phi = p
                if k == 1:
                    phi = _FAR
                elif k == 2:
                    plo = -_FAR
                if clo > phi:
                    r = clo - phi
                elif plo > chi:
                    r = chi - plo
            if aux[hits + i] & 3:
                d = r
                if d < 0:
                    d = -d
                d >>= 2
                if d >= _MADH:
                    d = _MADH - 1
                hist[d] += 1
                nmad += 1
            # relative to the prediction (below: the light around it)
            if p < _PMIN:
                p = _PMIN
            elif p > _WMAX:
                p = _WMAX
            if r > _WMAX:
                r = _WMAX
            elif r < -_WMAX:
                r = -_WMAX
            if (r > qmin or r < -qmin) and (aux[hits + i] & 8) == 0:
                q = (r << 8) // p
                if q > _QLIM:
                    q = _QLIM
                elif q < -_QLIM:
                    q = -_QLIM
        work[i] = r + _WBIAS
        work[n + i] = q + _WBIAS
        i += 1
    mad = 0
    noise = st[_S_NOISE]
    if nmad > 0:
        half = (nmad + 1) >> 1
        acc = 0
        i = 0
        while i < _MADH:
            acc += hist[i]
            if acc >= half:
                break
            i += 1
        mad = i << 2
        target = mad << 4
        if target > noise:
            noise += (target - noise + 3) >> 2
        else:
            noise -= (noise - target) >> 5
        st[_S_NOISE] = noise
    # the threshold: the configured one, raised above the noise (smoothed,
    # or this frame's if higher), at most three times the configured one
    thr = (noise * _NOISE_K) >> 8
    k = (mad * _NOISE_K) >> 4
    if thr < k:
        thr = k
    if thr < thr0:
        thr = thr0
    if thr > thr0 * 3:
        thr = thr0 * 3
    half = thr >> 1
    # ... what is left once the light around the block is taken out. Light
    # multiplies: the residual relative to the prediction, q = r / p (x256,
    # clamped to +/- _QLIM; 0 for residuals within a quarter threshold, which
    # are noise, and for blocks that looked like something rather than light
    # in the last frame, so a person does not explain himself away),
    # averaged over the 9x9 blocks around the block, times its prediction,
    # is what the light around it explains. q is in work[n:], replaced by
    # its horizontal sums, then vertical ones; then which blocks are over the
    # threshold (bit 1 of aux[hits]: counts, bit 2: over half of it, bit 4:
    # over the configured threshold before the light was taken out, which
    # the light-switch rule counts)
    nhit = 0
    nhit0 = 0
    row = 0
    while row < n:
        s = 0
        j = 0
        while j <= _RAD and j < cols:
            s += int(work[n + row + j]) - _WBIAS
            j += 1
        x = 0
        while x < cols:
            # the sum goes where q was; q is kept a little longer in a ring
            # (hist is free by now) for when it leaves the window
            k = n + row + x
            hist[x & 15] = work[k]
            work[k] = s + _WBIAS
            j = x + _RAD + 1
            if j < cols:
                s += int(work[n + row + j]) - _WBIAS
            j = x - _RAD
            if j >= 0:
                s -= int(hist[j & 15]) - _WBIAS
            x += 1
        row += cols
    rows = n // cols
    last = 0
    recip = 0
    x = 0
    while x < cols:
        cx = x + _RAD
        if cx >= cols:
            cx = cols - 1
        k = x - _RAD
        if k < 0:
            k = 0
        cx = cx - k + 1
        s = 0
        cy = 0
        j = n + x  # the next row of sums to add
        while cy <= _RAD and cy < rows:
            s += int(work[j]) - _WBIAS
            j += cols
            cy += 1
        jo = n + x  # the next row of sums to drop
        i = x
        y = 0
        while y < rows:
            k = cx * cy
            if k < _NMIN:
                k = _NMIN
            if k != last:  # the count changes only near the edges
                last = k
                recip = 65536 // k
            r = int(work[i]) - _WBIAS
            p = my + ((gain * ((int(bg[i]) >> 4) - mx)) >> 8)
            if p < _PMIN:
                p = _PMIN
            elif p > _WMAX:
                p = _WMAX
            d = r - ((((s * recip) >> 16) * p) >> 8)
            # taking light out only explains changes away: what is left
            # is never more than the residual itself, nor of the other sign
            flag = 0
            if r >= 0:
                if d > r:
                    d = r
                elif d < 0:
                    d = 0
                if r > thr0 and mask[i] == 0:
                    flag = 4
                    nhit0 += 1
            else:
                if d < r:
                    d = r
                elif d > 0:
                    d = 0
                d = -d
                if r < -thr0 and mask[i] == 0:
                    flag = 4
                    nhit0 += 1
            if d > thr:
                if (mask[i] & MASK_USER) == 0:
                    nhit += 1
                    if aux[busy + i] < 255:
                        aux[busy + i] += 1
                if mask[i] == 0:
                    flag |= 1
            elif d > half and mask[i] == 0:
                flag |= 2
            aux[hits + i] = flag
            if y + _RAD + 1 < rows:
                s += int(work[j]) - _WBIAS
                j += cols
                cy += 1
            if y >= _RAD:
                s -= int(work[jo]) - _WBIAS
                jo += cols
                cy -= 1
            i += cols
            y += 1
        x += 1
    # 5. count changed blocks that have a changed neighbour; learn the background
    nch = 0
    x0 = cols
    y0 = n
    x1 = -1
    y1 = -1
    scol = 0
    srow = 0
    bx = 0
    by = 0
    slow = learn + 2
    i = 0
    while i < n:
        raw = cur[i]
        c = raw & _MEAN
        b256 = int(bg[i])
        m = mask[i]
        keep = 0
        h = hits + i
        if aux[h] & 1:
            # a neighbour over the threshold too (of the 8)?
            if bx > 0 and aux[h - 1] & 1:
                keep = 1
            elif bx + 1 < cols and aux[h + 1] & 1:
                keep = 1
            if keep == 0 and i >= cols:
                u = h - cols
                if aux[u] & 1:
                    keep = 1
                elif bx > 0 and aux[u - 1] & 1:
                    keep = 1
                elif bx + 1 < cols and aux[u + 1] & 1:
                    keep = 1
            if keep == 0 and i + cols < n:
                u = h + cols
                if aux[u] & 1:
                    keep = 1
                elif bx > 0 and aux[u - 1] & 1:
                    keep = 1
                elif bx + 1 < cols and aux[u + 1] & 1:
                    keep = 1
        if m & MASK_USER:
            changed[i] = 0
            b256 += ((c << 4) - b256) >> learn
        elif keep:
            nch += 1
            if bx < x0:
                x0 = bx
            if bx > x1:
                x1 = bx
            if by < y0:
                y0 = by
            y1 = by
            scol += bx
            srow += by
            age = int(changed[i]) + 1
            if age >= absorb:
                b256 = c << 4
                k = 0
                if raw >= _HI:
                    k = 1
                elif raw <= _LO:
                    k = 2
                aux[i] = k
                age = 1
            else:
                # follow the lighting, and let what is there soak in slowly
                p = my + ((gain * ((b256 >> 4) - mx)) >> 8)
                b256 += (((p << 4) - b256) >> learn) + (((c - p) << 4) >> slow)
            changed[i] = age
        else:
            changed[i] = 0
            p = my + ((gain * ((b256 >> 4) - mx)) >> 8)
            if aux[h] & 3:
                # over half the threshold, but not counted: something small
                # may be there; learn as slowly as a changed block
                b256 += (((p << 4) - b256) >> learn) + (((c - p) << 4) >> slow)
            elif raw > _LO and raw < _HI:
                if aux[i] == 0:
                    b256 += ((c << 4) - b256) >> learn
                else:
                    # a clean look at a block whose background was clipped:
                    # take it, in the background's lighting
                    if gain > 0:
                        b256 = (mx + (((c - my) << 8) // gain)) << 4
                    aux[i] = 0
            else:
                b256 += ((p << 4) - b256) >> learn
        if b256 < 0:
            b256 = 0
        elif b256 > _BG_MAX:
            b256 = _BG_MAX
        bg[i] = b256
        i += 1
        bx += 1
        if bx == cols:
            bx = 0
            by += 1
    st[_S_NACT] = nact
    st[_S_NCH] = nch
    st[_S_NHIT] = nhit
    st[_S_X0] = x0
    st[_S_Y0] = y0
    st[_S_X1] = x1
    st[_S_Y1] = y1
    st[_S_SX] = scol
    st[_S_SY] = srow
    st[_S_OFF] = off
    st[_S_GAIN] = gain
    st[_S_NIN] = nin
    st[_S_THRUSED] = thr
    st[_S_NHIT0] = nhit0
    st[_S_MAD] = mad
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
    of viper (tests use it as the oracle; about 40 times slower).
    """

    def __init__(self, width, height, settings=None, native=True):
        self.width = width
        self.height = height
        if native:
            self._means = block_means_viper
            self._compare = compare_viper
        else:  # the oracle: never loaded on a board
            from camwatch import motion_twin

            self._means = motion_twin.block_means_py
            self._compare = motion_twin.compare_py
        self._st = array.array("i", bytes(4 * _STATE_SIZE))
        self._hist = array.array("H", bytes(2 * _HIST_SIZE))
        self.settings = {}
        self.block = 0
        self._active = False
        self._box0 = self._box1 = 0
        self._pause = False
        self._pending = None
        self.configure(DEFAULTS)
        if settings:
            self.configure(settings)

    # -- settings --

    def configure(self, settings):
        """Apply the keys of ``settings`` that are ours; keep the others.

        Raises ValueError (naming the key) on a bad value, changing nothing.
        A new ``block`` size restarts the background; an open episode stays
        open (warm-up frames count as still ones), so it ends after
        ``end_s`` unless motion goes on.
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
        if cols < 1 or rows < 1 or cols * rows > _MAX_BLOCKS:
            raise ValueError("motion setting block: %d gives %dx%d blocks for %dx%d"
                             % (size, cols, rows, self.width, self.height))
        was_auto = self.settings.get("auto_mask")
        self.settings = new
        if size != self.block:
            self._allocate(size, cols, rows)
        elif was_auto and not new["auto_mask"]:
            self._clear_auto_mask()
        self._apply_mask()
        st = self._st
        st[_S_THR] = max(1, (new["threshold"] * 16 * 50) // new["sensitivity"])
        st[_S_LEARN] = _shift_for(new["learn_frames"])
        st[_S_ABSORB] = new["absorb_frames"]
        self._min_area = new["min_area"]
        self._start_frames = new["start_frames"]
        self._end_ms = new["end_s"] * 1000
        self._update_ms = new["update_ms"]
        self._light_pct = new["light_switch_pct"]
        self._auto = new["auto_mask"]

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
        self._bg = array.array("i", bytes(4 * n))
        self.mask = bytearray(n)
        self.changed = bytearray(n)
        self._aux = bytearray(3 * n)
        self._work = array.array("H", bytes(4 * n))
        self._act = None  # activity per block: only with auto_mask on
        self._auto_since = None
        self.reset()

    def _apply_mask(self):
        mask = self.mask
        size = self.block
        for i in range(self._n):
            mask[i] &= MASK_AUTO
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
                self.mask[row * cols + col] |= MASK_USER

    def _clear_auto_mask(self):
        had = False
        for i in range(self._n):
            had = had or bool(self.mask[i] & MASK_AUTO)
            self.mask[i] &= ~MASK_AUTO
            self._aux[2 * self._n + i] = 0
        self._act = None
        if had:
            self._pending = "mask"

    def reset(self):
        """Forget the background: the next frames teach it again."""
        self._st[_S_INIT] = 1
        self._h0a = self._h0b = 0
        self._small = False
        self._warm = self.settings["warmup_frames"] + 1
        self._run = 0  # moving frames in a row while no episode is open

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
        ``update_ms``. kind ``"light"``: a lighting change was seen
        (``pause_ms``: how long detection pauses, ``share``: percent of the
        watched blocks that changed). kind ``"mask"``: the automatic mask
        changed (``blocks``: how many are masked, ``rects``: them as pixel
        rectangles).
        """
        if len(frame) < self.width * self.height:
            raise ValueError("frame too short")
        st = self._st
        if self._pause:
            # after a light switch: the background is the newest frame
            if time.ticks_diff(now_ms, self._pause_until) >= 0:
                self._pause = False
            st[_S_INIT] = 1
        noise = st[_S_NOISE]
        self._means(frame, self._cur, self.width, self.cols, self.rows, self.block)
        nch = self._compare(self._cur, self._bg, self.mask, self.changed, self._aux, self._work,
                            self._hist, st, self._n, self.cols)
        if self._auto:
            if self._act is None:
                from camwatch import automask  # only with auto_mask on

                self._act = bytearray(self._n)
                self._update_mask = automask.update
            if self._auto_since is None:
                self._auto_since = now_ms
            elif time.ticks_diff(now_ms, self._auto_since) >= _AUTO_PERIOD_MS:
                if self._update_mask(self._aux, self._act, self.mask, self._n, self.cols):
                    self._pending = "mask"
                self._auto_since = now_ms
        h0 = self._h0b  # over the configured threshold two frames ago
        self._h0b = self._h0a
        self._h0a = st[_S_NHIT0]
        if self._warm:
            self._warm -= 1
            nch = 0
        elif self._pause:
            nch = 0
        elif self._light_pct and (st[_S_NHIT0] - h0) * 100 >= self._light_pct * st[_S_NACT]:
            share = (st[_S_NHIT0] * 100) // st[_S_NACT]
            self._h0a = self._h0b = 0
            self._pause = True
            self._pause_until = time.ticks_add(now_ms, _LIGHT_PAUSE_MS)
            st[_S_INIT] = 1
            st[_S_NOISE] = noise  # what this frame showed was light, not noise
            self._run = 0
            return ("light", {"pause_ms": _LIGHT_PAUSE_MS, "share": share})
        # moving: min_area blocks changed, or something small (a pair of
        # neighbours, despeckle's least) has stayed changed for _SMALL_MS and
        # moved a block or more meanwhile (a person far away walks; what is
        # left of a lighting change stays where it is)
        moving = nch >= self._min_area
        if nch < 2:
            self._small = False
        else:
            x8 = (st[_S_SX] << 3) // nch  # centre, in eighths of a block
            y8 = (st[_S_SY] << 3) // nch
            if not self._small:
                self._small = True
                self._small_since = now_ms
                self._small_x = x8
                self._small_y = y8
            elif (not moving and self._min_area <= 3
                  and time.ticks_diff(now_ms, self._small_since) >= _SMALL_MS
                  and abs(x8 - self._small_x) + abs(y8 - self._small_y) >= 8):
                moving = True
        if not self._active:
            if not moving:
                self._run = 0
                return None if self._pending is None else self._status()
            self._run += 1
            if self._run < self._start_frames:
                return None if self._pending is None else self._status()
            self._active = True
            self._run = 0
            self._started = now_ms
            self._last_moving = now_ms
            self._last_update = now_ms
            self._peak = 0
            return ("start", self._payload())
        if not moving:
            if time.ticks_diff(now_ms, self._last_moving) < self._end_ms:
                return None if self._pending is None else self._status()
            self._active = False
            return ("end", {"duration_ms": time.ticks_diff(self._last_moving, self._started),
                            "peak_score": self._peak, "bbox": self._last_bbox()})
        self._last_moving = now_ms
        self._box0 = st[_S_X0] | (st[_S_Y0] << 16)  # small ints: no allocation
        self._box1 = st[_S_X1] | (st[_S_Y1] << 16)
        score = self._score()
        if score > self._peak:
            self._peak = score
        if time.ticks_diff(now_ms, self._last_update) < self._update_ms:
            return None if self._pending is None else self._status()
        self._last_update = now_ms
        return ("update", self._payload())

    def _status(self):
        """The pending ``mask`` event (it waits for a frame with no motion
        event of its own)."""
        self._pending = None
        rects = self.auto_mask_rects()
        return ("mask", {"blocks": sum(1 for m in self.mask if m & MASK_AUTO), "rects": rects})

    @property
    def active(self):
        """True between a start event and its end event."""
        return self._active

    def auto_mask_rects(self):
        """The automatic mask as pixel rectangles ``[[x, y, w, h], ...]``
        (runs of masked blocks in each row; none while auto_mask is off)."""
        if self._act is None:
            return []
        from camwatch import automask

        return automask.rects(self.mask, self.cols, self.rows, self.block)

    def _score(self):
        st = self._st
        nact = st[_S_NACT]
        return (st[_S_NCH] * 100 + nact - 1) // nact if nact else 0  # rounded up: never 0

    def _last_bbox(self):
        size = self.block
        x0, y0 = self._box0 & 0xFFFF, self._box0 >> 16
        x1, y1 = self._box1 & 0xFFFF, self._box1 >> 16
        return [x0 * size, y0 * size, (x1 - x0 + 1) * size, (y1 - y0 + 1) * size]

    def _payload(self):
        st = self._st
        size = self.block
        nch = st[_S_NCH]
        score = self._score()
        if score > self._peak:
            self._peak = score
        self._box0 = st[_S_X0] | (st[_S_Y0] << 16)
        self._box1 = st[_S_X1] | (st[_S_Y1] << 16)
        bbox = self._last_bbox()
        centroid = [(st[_S_SX] * size) // nch + size // 2, (st[_S_SY] * size) // nch + size // 2]
        return {"score": score, "blocks": nch, "bbox": bbox, "centroid": centroid}

    def lighting(self):
        """(offset, gain x256, blocks fitted) of the last frame: for tests, tuning."""
        st = self._st
        return st[_S_OFF], st[_S_GAIN], st[_S_NIN]

    def noise(self):
        """(median |residual| of the last frame, threshold used), grey levels
        x16: for tests, tuning."""
        st = self._st
        return st[_S_MAD], st[_S_THRUSED]
