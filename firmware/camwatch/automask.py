"""The automatic mask: blocks that change most of the time (leaves, a
curtain, a screen) are masked, and unmasked once they have been quiet for a
while. camwatch.motion.Detector imports this only when ``auto_mask`` is on.
"""

from micropython import const

from camwatch.motion import MASK_AUTO

AUTO_ON = const(128)  # masked above this activity (half of recent periods active)
AUTO_OFF = const(38)  # unmasked below this (15%)
AUTO_RATE = const(3)  # activity averages over about 2**3 periods


def update(aux, act, mask, n, cols):
    """Fold one period of over-threshold counts into each block's activity
    and (un)mask blocks by it; return True if the automatic mask changed.

    A block is *active* in a period when it was over the threshold in any
    frame of it; its activity (0..255) is the share of recent periods it
    was active in (an average over about 2**AUTO_RATE periods). Above
    AUTO_ON it is masked, and so are its neighbours above a quarter of
    that (what sways reaches a little further now and then); below AUTO_OFF it is
    unmasked. ``aux``: compare()'s aux array (its third run, the counts, is
    read and cleared); ``act``: activity per block; ``mask``: MASK_AUTO is
    set or cleared here; ``cols``: blocks in a row. Runs once a period, not
    per frame: plain Python.
    """
    busy = 2 * n
    for i in range(n):
        a = act[i]
        if aux[busy + i]:
            a += (255 - a + (1 << AUTO_RATE) - 1) >> AUTO_RATE
        else:
            a -= (a + (1 << AUTO_RATE) - 1) >> AUTO_RATE
        act[i] = a
        aux[busy + i] = 0
    moved = False
    for i in range(n):
        a = act[i]
        on = a > AUTO_ON
        if not on and a > AUTO_ON // 4:
            x = i % cols
            for j in (i - cols - 1, i - cols, i - cols + 1, i - 1, i + 1,
                      i + cols - 1, i + cols, i + cols + 1):
                if 0 <= j < n and abs(j % cols - x) <= 1 and act[j] > AUTO_ON:
                    on = True
                    break
        m = mask[i]
        if on and not m & MASK_AUTO:
            mask[i] = m | MASK_AUTO
            moved = True
        elif m & MASK_AUTO and a < AUTO_OFF and not on:
            mask[i] = m & ~MASK_AUTO
            moved = True
    return moved


def rects(mask, cols, rows, size):
    """The automatic mask as pixel rectangles ``[[x, y, w, h], ...]``: the
    runs of masked blocks in each row (``size``: block edge in pixels)."""
    out = []
    for row in range(rows):
        col = 0
        while col < cols:
            if mask[row * cols + col] & MASK_AUTO:
                start = col
                while col < cols and mask[row * cols + col] & MASK_AUTO:
                    col += 1
                out.append([start * size, row * size, (col - start) * size, size])
            else:
                col += 1
    return out
