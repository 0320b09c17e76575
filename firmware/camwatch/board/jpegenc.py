"""A small baseline JPEG encoder for grayscale frames.

The virtual board's stand-in for what does this on a board (the sensor's
own JPEG, or mp_jpeg): /snapshot, /stream and the episode thumbnails get a
real JPEG, so the browser path is the same.

One ``Encoder`` per picture size and quality: the header, the quantisation
reciprocals and the Huffman codes (the standard tables of ITU T.81 Annex K)
are built once; ``encode(frame, out)`` writes a whole JPEG into the caller's
buffer in one synchronous pass, so the picture cannot change half-way (no
tearing) and nothing is allocated per picture. The DCT, quantisation and
entropy coding are one ``@micropython.viper`` function.
"""

import array
import micropython
from micropython import const

# Fixed-point DCT (Loeffler-Ligtenberg-Moschytz factorisation, as in the
# "islow" DCT of many JPEG codecs): constants are round(x * 2**13).
_CB = const(13)
_PB = const(2)  # extra bits kept between the row and the column pass
_F0298 = const(2446)
_F0390 = const(3196)
_F0541 = const(4433)
_F0765 = const(6270)
_F0899 = const(7373)
_F1175 = const(9633)
_F1501 = const(12299)
_F1847 = const(15137)
_F1961 = const(16069)
_F2053 = const(16819)
_F2562 = const(20995)
_F3072 = const(25172)

# Layout of the one int32 table the viper code works in.
_RECIP = const(0)  # 64: 65536 / (quantiser * 8), zigzag order
_ZZ = const(64)  # 64: natural index of each zigzag position
_WS = const(128)  # 64: the block being transformed (biased, see _BIAS)
_SYM = const(192)  # 160: the block's bit groups, (length << 16) | bits
_DC = const(352)  # 12: Huffman code of each DC size, (length << 16) | code
_AC = const(364)  # 256: Huffman code of each AC symbol (run << 4 | size)
_TAB = const(620)
_BIAS = const(1 << 20)  # keeps stored values positive (ptr32 loads are unsigned on 64-bit)
_MARGIN = const(512)  # most bytes one block can take, byte stuffing included

# ITU T.81 Annex K.1: luminance quantisation table, natural order.
_LUMA_Q = bytes((
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99))
# Annex K.3: luminance DC and AC Huffman tables (code counts per length 1..16,
# then the symbols in code order).
_DC_BITS = bytes((0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0))
_DC_VALS = bytes(range(12))
_AC_BITS = bytes((0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D))
_AC_VALS = bytes((
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61,
    0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52,
    0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25,
    0x26, 0x27, 0x28, 0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45,
    0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64,
    0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83,
    0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
    0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6,
    0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3,
    0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8,
    0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA))


def zigzag():
    """Natural (row-major) index of each of the 64 zigzag positions."""
    order = []
    for s in range(15):
        rows = range(min(s, 7), max(0, s - 7) - 1, -1)  # up and right on even diagonals
        if s & 1:
            rows = reversed(rows)
        for r in rows:
            order.append(r * 8 + s - r)
    return order


def quant_table(quality):
    """The luminance table scaled for ``quality`` 1..100 (the IJG scaling:
    50 is the table as printed, 100 all ones), natural order."""
    quality = max(1, min(100, quality))
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return bytes(max(1, min(255, (q * scale + 50) // 100)) for q in _LUMA_Q)


def _codes(bits, vals, tab, at):
    # Annex C: canonical codes from the counts per length
    code = 0
    k = 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            tab[at + vals[k]] = (length << 16) | code
            code += 1
            k += 1
        code <<= 1


def _segment(marker, body):
    n = len(body) + 2
    return bytes((0xFF, marker, n >> 8, n & 0xFF)) + body


def header(width, height, qtable):
    """Every byte before the entropy-coded data: SOI, JFIF, DQT, SOF0, DHT, SOS."""
    zz = zigzag()
    return b"".join((
        b"\xff\xd8",
        _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
        _segment(0xDB, b"\x00" + bytes(qtable[i] for i in zz)),
        _segment(0xC0, bytes((8, height >> 8, height & 0xFF, width >> 8, width & 0xFF,
                              1, 1, 0x11, 0))),
        _segment(0xC4, b"\x00" + _DC_BITS + _DC_VALS + b"\x10" + _AC_BITS + _AC_VALS),
        _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"),
    ))


@micropython.viper
def _encode(src: ptr8, width: int, height: int, tab: ptr32, out: ptr8, pos: int,
            cap: int) -> int:
    # Every 8x8 block, left to right and top to bottom: forward DCT,
    # quantisation, Huffman coding; returns the new end of ``out``, or -1
    # when it would not fit in ``cap`` bytes. Edge blocks repeat the last
    # column / row. ``src`` is read as unsigned bytes.
    acc = 0  # bits not yet written, right-aligned
    nb = 0  # how many
    last_dc = 0
    by = 0
    while by < height:
        bx = 0
        while bx < width:
            if pos + _MARGIN > cap:
                return -1
            # -- rows: load with the level shift, 1-D DCT into the work area
            r = 0
            while r < 8:
                y = by + r
                if y >= height:
                    y = height - 1
                row = y * width
                x = bx
                if x + 8 <= width:
                    d0 = int(src[row + x]) - 128
                    d1 = int(src[row + x + 1]) - 128
                    d2 = int(src[row + x + 2]) - 128
                    d3 = int(src[row + x + 3]) - 128
                    d4 = int(src[row + x + 4]) - 128
                    d5 = int(src[row + x + 5]) - 128
                    d6 = int(src[row + x + 6]) - 128
                    d7 = int(src[row + x + 7]) - 128
                else:
                    last = row + width - 1
                    p = row + x
                    d0 = int(src[p if p <= last else last]) - 128
                    p += 1
                    d1 = int(src[p if p <= last else last]) - 128
                    p += 1
                    d2 = int(src[p if p <= last else last]) - 128
                    p += 1
                    d3 = int(src[p if p <= last else last]) - 128
                    p += 1
                    d4 = int(src[p if p <= last else last]) - 128
                    p += 1
                    d5 = int(src[p if p <= last else last]) - 128
                    p += 1
                    d6 = int(src[p if p <= last else last]) - 128
                    p += 1
                    d7 = int(src[p if p <= last else last]) - 128
                t0 = d0 + d7
                t7 = d0 - d7
                t1 = d1 + d6
                t6 = d1 - d6
                t2 = d2 + d5
                t5 = d2 - d5
                t3 = d3 + d4
                t4 = d3 - d4
                t10 = t0 + t3
                t13 = t0 - t3
                t11 = t1 + t2
                t12 = t1 - t2
                w = _WS + r * 8
                tab[w] = ((t10 + t11) << _PB) + _BIAS
                tab[w + 4] = ((t10 - t11) << _PB) + _BIAS
                z1 = (t12 + t13) * _F0541
                rnd = 1 << (_CB - _PB - 1)
                tab[w + 2] = ((z1 + t13 * _F0765 + rnd) >> (_CB - _PB)) + _BIAS
                tab[w + 6] = ((z1 - t12 * _F1847 + rnd) >> (_CB - _PB)) + _BIAS
                z1 = t4 + t7
                z2 = t5 + t6
                z3 = t4 + t6
                z4 = t5 + t7
                z5 = (z3 + z4) * _F1175
                z1 = z1 * (0 - _F0899)
                z2 = z2 * (0 - _F2562)
                z3 = z3 * (0 - _F1961) + z5
                z4 = z4 * (0 - _F0390) + z5
                tab[w + 7] = ((t4 * _F0298 + z1 + z3 + rnd) >> (_CB - _PB)) + _BIAS
                tab[w + 5] = ((t5 * _F2053 + z2 + z4 + rnd) >> (_CB - _PB)) + _BIAS
                tab[w + 3] = ((t6 * _F3072 + z2 + z3 + rnd) >> (_CB - _PB)) + _BIAS
                tab[w + 1] = ((t7 * _F1501 + z1 + z4 + rnd) >> (_CB - _PB)) + _BIAS
                r += 1
            # -- columns, in place: the result is 8x the DCT coefficients
            c = 0
            while c < 8:
                w = _WS + c
                d0 = int(tab[w]) - _BIAS
                d1 = int(tab[w + 8]) - _BIAS
                d2 = int(tab[w + 16]) - _BIAS
                d3 = int(tab[w + 24]) - _BIAS
                d4 = int(tab[w + 32]) - _BIAS
                d5 = int(tab[w + 40]) - _BIAS
                d6 = int(tab[w + 48]) - _BIAS
                d7 = int(tab[w + 56]) - _BIAS
                t0 = d0 + d7
                t7 = d0 - d7
                t1 = d1 + d6
                t6 = d1 - d6
                t2 = d2 + d5
                t5 = d2 - d5
                t3 = d3 + d4
                t4 = d3 - d4
                t10 = t0 + t3
                t13 = t0 - t3
                t11 = t1 + t2
                t12 = t1 - t2
                rnd = 1 << (_PB - 1)
                tab[w] = ((t10 + t11 + rnd) >> _PB) + _BIAS
                tab[w + 32] = ((t10 - t11 + rnd) >> _PB) + _BIAS
                z1 = (t12 + t13) * _F0541
                rnd = 1 << (_CB + _PB - 1)
                tab[w + 16] = ((z1 + t13 * _F0765 + rnd) >> (_CB + _PB)) + _BIAS
                tab[w + 48] = ((z1 - t12 * _F1847 + rnd) >> (_CB + _PB)) + _BIAS
                z1 = t4 + t7
                z2 = t5 + t6
                z3 = t4 + t6
                z4 = t5 + t7
                z5 = (z3 + z4) * _F1175
                z1 = z1 * (0 - _F0899)
                z2 = z2 * (0 - _F2562)
                z3 = z3 * (0 - _F1961) + z5
                z4 = z4 * (0 - _F0390) + z5
                tab[w + 56] = ((t4 * _F0298 + z1 + z3 + rnd) >> (_CB + _PB)) + _BIAS
                tab[w + 40] = ((t5 * _F2053 + z2 + z4 + rnd) >> (_CB + _PB)) + _BIAS
                tab[w + 24] = ((t6 * _F3072 + z2 + z3 + rnd) >> (_CB + _PB)) + _BIAS
                tab[w + 8] = ((t7 * _F1501 + z1 + z4 + rnd) >> (_CB + _PB)) + _BIAS
                c += 1
            # -- quantise in zigzag order and collect the bit groups
            n = _SYM
            i = 0
            run = 0
            while i < 64:
                v = int(tab[_WS + tab[_ZZ + i]]) - _BIAS
                neg = v < 0
                if neg:
                    v = 0 - v
                v = (v * int(tab[_RECIP + i]) + 32768) >> 16
                if neg:
                    v = 0 - v
                if i == 0:
                    diff = v - last_dc
                    last_dc = v
                    a = diff if diff >= 0 else 0 - diff
                    size = 0
                    while a:
                        size += 1
                        a >>= 1
                    tab[n] = tab[_DC + size]
                    n += 1
                    if size:
                        if diff < 0:
                            diff = diff - 1
                        tab[n] = (size << 16) | (diff & ((1 << size) - 1))
                        n += 1
                elif v == 0:
                    run += 1
                else:
                    while run > 15:
                        tab[n] = tab[_AC + 0xF0]
                        n += 1
                        run -= 16
                    a = v if v > 0 else 0 - v
                    size = 0
                    while a:
                        size += 1
                        a >>= 1
                    tab[n] = tab[_AC + ((run << 4) | size)]
                    n += 1
                    if v < 0:
                        v = v - 1
                    tab[n] = (size << 16) | (v & ((1 << size) - 1))
                    n += 1
                    run = 0
                i += 1
            if run:
                tab[n] = tab[_AC]  # end of block
                n += 1
            # -- write the bit groups, a 0 after every 0xFF byte
            k = _SYM
            while k < n:
                g = int(tab[k])
                size = g >> 16
                acc = (acc << size) | (g & 0xFFFF)
                nb += size
                while nb >= 8:
                    nb -= 8
                    b = (acc >> nb) & 0xFF
                    out[pos] = b
                    pos += 1
                    if b == 0xFF:
                        out[pos] = 0
                        pos += 1
                acc &= (1 << nb) - 1
                k += 1
            bx += 8
        by += 8
    if nb:  # pad the last byte with 1 bits
        b = ((acc << (8 - nb)) | ((1 << (8 - nb)) - 1)) & 0xFF
        out[pos] = b
        pos += 1
        if b == 0xFF:
            out[pos] = 0
            pos += 1
    out[pos] = 0xFF
    out[pos + 1] = 0xD9
    return pos + 2


class Encoder:
    """Grayscale baseline JPEG of ``width`` x ``height`` frames at ``quality``
    (1..100, the usual IJG scale: higher is better and bigger).

    Holds about 3 KB of tables; encoding allocates nothing.
    """

    def __init__(self, width, height, quality=80):
        self.width = width
        self.height = height
        self._tab = array.array("i", bytes(4 * _TAB))
        tab = self._tab
        zz = zigzag()
        for i in range(64):
            tab[_ZZ + i] = zz[i]
        _codes(_DC_BITS, _DC_VALS, tab, _DC)
        _codes(_AC_BITS, _AC_VALS, tab, _AC)
        self.quality = None
        self._head = b""
        self.configure(quality)

    def configure(self, quality):
        """Change the quality; rebuilds the header and the quantiser table."""
        if quality == self.quality:
            return
        qt = quant_table(quality)
        zz = zigzag()
        for i in range(64):
            self._tab[_RECIP + i] = (65536 + qt[zz[i]] * 4) // (qt[zz[i]] * 8)
        self._head = header(self.width, self.height, qt)
        self.quality = quality

    def encode(self, frame, out):
        """Write the JPEG of ``frame`` (``width * height`` bytes, row-major,
        read as unsigned) into ``out``; return its length, or -1 when ``out``
        is too small (nothing useful is left in it then)."""
        head = self._head
        n = len(head)
        if len(out) < n + _MARGIN:
            return -1
        out[:n] = head
        return _encode(frame, self.width, self.height, self._tab, out, n, len(out))
