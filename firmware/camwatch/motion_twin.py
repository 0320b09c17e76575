"""The pure-Python twins of camwatch.motion's viper functions: the test
oracle. Same arguments, same results, about 100 times slower; only
``Detector(native=False)`` imports this module, so a board never loads it.
"""

from camwatch.motion import MASK_USER

# camwatch.motion's constants (private there, so a board's module globals
# stay small); a difference would show at once as the twins disagreeing,
# which the tests check on every kind of scene.
BG_MAX = 0x3FFFFF
FAR = 0x1000000
GAIN_MAX = 1024
GAIN_MIN = 64
HI = 3920
HIST_SIZE = 256
LO = 128
MADH = 128
MASK_AUTO = 2
MEAN = 0xFFF
NMIN = 49
NOISE_K = 120
PMIN = 256
QLIM = 160
RAD = 4
SAT = 0x8000
STATE_SIZE = 20
S_ABSORB = 15
S_GAIN = 13
S_INIT = 2
S_LEARN = 1
S_MAD = 19
S_NACT = 3
S_NCH = 4
S_NHIT = 5
S_NHIT0 = 18
S_NIN = 14
S_NOISE = 16
S_OFF = 12
S_SX = 10
S_SY = 11
S_THR = 0
S_THRUSED = 17
S_X0 = 6
S_X1 = 8
S_Y0 = 7
S_Y1 = 9
WBIAS = 0x8000
WMAX = 0x7FFF


def block_means_py(frame, out, width, cols, rows, size):
    """Pure-Python twin of ``block_means_viper`` (same arguments, same result)."""
    area = size * size
    i = 0
    for by in range(rows):
        top = by * size * width
        for bx in range(cols):
            s = sat = 0
            p = top + bx * size
            for yy in range(size):
                for q in range(p, p + size):
                    v = frame[q] & 0xFF
                    s += v
                    sat += v >= 252 and yy % 2 == 0
                p += width
            out[i] = ((s << 4) // area) | (SAT if sat * 32 >= area else 0)
            i += 1


def compare_py(cur, bg, mask, changed, aux, work, hist, st, n, cols):
    """Pure-Python twin of ``compare_viper`` (same arguments, same result)."""
    thr0 = st[S_THR]
    learn = st[S_LEARN]
    absorb = st[S_ABSORB]
    hits = n
    busy = 2 * n
    if st[S_INIT]:
        for i in range(n):
            c = cur[i]
            bg[i] = (c & MEAN) << 4
            changed[i] = 0
            aux[i] = 1 if c >= HI else 2 if c <= LO else 0
        st[S_INIT] = 0

    def clean(i):  # watched, unclipped now and in the background
        c = cur[i]
        b = bg[i] >> 4
        return mask[i] == 0 and aux[i] == 0 and LO < c < HI and LO < b < HI

    for i in range(HIST_SIZE):
        hist[i] = 0
    nact = nfit = 0
    for i in range(n):
        if mask[i] == 0:
            nact += 1
            if clean(i):
                hist[min(max((cur[i] >> 4) - (bg[i] >> 8) + 127, 0), 255)] += 1
                nfit += 1
    off = 0
    if nfit > 0:
        half = (nfit + 1) >> 1
        acc = 0
        i = 0
        while i < HIST_SIZE:
            acc += hist[i]
            if acc >= half:
                break
            i += 1
        off = i - 127
    off16 = off << 4
    win = thr0 * 3
    def inliers():
        for i in range(n):
            if clean(i) and abs(cur[i] - (bg[i] >> 4) - off16) <= win:
                yield i

    nin = sum(1 for i in inliers())
    gain = 256
    mx = 0
    my = off16
    if nin > 0:
        mx = sum(bg[i] >> 4 for i in inliers()) // nin
        my = sum(cur[i] for i in inliers()) // nin
        var = cov = 0
        for i in inliers():
            dx = ((bg[i] >> 4) - mx) >> 3
            dy = (cur[i] - my) >> 3
            var += dx * dx
            cov += dx * dy
        if var >= nin * 64:
            while var > 0x100000:
                var >>= 1
                cov >>= 1
            if cov * 4 < var:
                gain = GAIN_MIN
            elif cov > var * 4:
                gain = GAIN_MAX
            else:
                gain = (cov << 8) // var
        else:
            mx = 0
            my = off16

    def predict(b256):
        return my + ((gain * ((b256 >> 4) - mx)) >> 8)

    for i in range(MADH):
        hist[i] = 0
    nmad = 0
    for i in range(n):  # r into work[:n], q into work[n:]
        r = q = 0
        p = PMIN
        if not mask[i] & MASK_USER:
            c = cur[i]
            p = predict(bg[i])
            clo = -FAR if c <= LO else c & MEAN
            chi = FAR if c >= HI else c & MEAN
            plo = -FAR if aux[i] == 2 else p
            phi = FAR if aux[i] == 1 else p
            r = clo - phi if clo > phi else chi - plo if plo > chi else 0
            if clean(i):
                hist[min(abs(r) >> 2, MADH - 1)] += 1
                nmad += 1
            p = min(max(p, PMIN), WMAX)
            r = min(max(r, -WMAX), WMAX)
            if abs(r) > thr0 >> 2 and not (aux[hits + i] & 1 and changed[i] <= 2):
                q = min(max((r << 8) // p, -QLIM), QLIM)
        work[i] = r + WBIAS
        work[n + i] = q + WBIAS
    mad = 0
    noise = st[S_NOISE]
    if nmad > 0:
        half = (nmad + 1) >> 1
        acc = 0
        i = 0
        while i < MADH:
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
        st[S_NOISE] = noise
    thr = min(max((noise * NOISE_K) >> 8, (mad * NOISE_K) >> 4, thr0), thr0 * 3)
    rows = n // cols
    nhit = nhit0 = 0
    for i in range(n):
        y, x = divmod(i, cols)
        total = count = 0
        for yy in range(max(0, y - RAD), min(rows, y + RAD + 1)):
            for xx in range(max(0, x - RAD), min(cols, x + RAD + 1)):
                total += work[n + yy * cols + xx] - WBIAS
                count += 1
        r = work[i] - WBIAS
        p = min(max(predict(bg[i]), PMIN), WMAX)
        d = r - ((((total * (65536 // max(count, NMIN))) >> 16) * p) >> 8)
        d = abs(min(max(d, 0), r) if r >= 0 else max(min(d, 0), r))
        flag = 0
        if mask[i] == 0 and abs(r) > thr0:
            flag = 4
            nhit0 += 1
        if d > thr:
            if not mask[i] & MASK_USER:
                nhit += 1
                aux[busy + i] = min(aux[busy + i] + 1, 255)
            if mask[i] == 0:
                flag |= 1
        elif d > thr >> 1 and mask[i] == 0:
            flag |= 2
        aux[hits + i] = flag
    nch = scol = srow = 0
    x0, y0, x1, y1 = cols, n, -1, -1
    slow = learn + 2
    for i in range(n):
        by, bx = divmod(i, cols)
        raw = cur[i]
        c = raw & MEAN
        b256 = bg[i]
        m = mask[i]
        keep = 0
        if aux[hits + i] & 1:
            for j in (i - cols - 1, i - cols, i - cols + 1, i - 1, i + 1,
                      i + cols - 1, i + cols, i + cols + 1):
                if 0 <= j < n and abs(j % cols - bx) <= 1 and aux[hits + j] & 1:
                    keep = 1
        if m & MASK_USER:
            changed[i] = 0
            b256 += ((c << 4) - b256) >> learn
        elif keep:
            nch += 1
            x0 = min(x0, bx)
            x1 = max(x1, bx)
            y0 = min(y0, by)
            y1 = by
            scol += bx
            srow += by
            age = changed[i] + 1
            if age >= absorb:
                b256 = c << 4
                aux[i] = 1 if raw >= HI else 2 if raw <= LO else 0
                age = 1
            else:
                p = predict(b256)
                b256 += (((p << 4) - b256) >> learn) + (((c - p) << 4) >> slow)
            changed[i] = age
        else:
            changed[i] = 0
            p = predict(b256)
            if aux[hits + i] & 3:
                b256 += (((p << 4) - b256) >> learn) + (((c - p) << 4) >> slow)
            elif LO < raw < HI and aux[i] == 0:
                b256 += ((c << 4) - b256) >> learn
            elif LO < raw < HI:
                if gain > 0:
                    b256 = (mx + (((c - my) << 8) // gain)) << 4
                aux[i] = 0
            else:
                b256 += ((p << 4) - b256) >> learn
        bg[i] = min(max(b256, 0), BG_MAX)
    st[S_NACT] = nact
    st[S_NCH] = nch
    st[S_NHIT] = nhit
    st[S_X0] = x0
    st[S_Y0] = y0
    st[S_X1] = x1
    st[S_Y1] = y1
    st[S_SX] = scol
    st[S_SY] = srow
    st[S_OFF] = off
    st[S_GAIN] = gain
    st[S_NIN] = nin
    st[S_THRUSED] = thr
    st[S_NHIT0] = nhit0
    st[S_MAD] = mad
    return nch
