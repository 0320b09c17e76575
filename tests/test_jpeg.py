"""camwatch's own JPEG encoder (the virtual board's, firmware/camwatch/board/
jpegenc.py), run on the MicroPython VM; its output decoded by Pillow, an
independent decoder, must be the frame within JPEG error: no further from it
than libjpeg's own encoding of the same frame at the same quality (same
tables, same quality scale), give or take rounding."""

import io
import os

import pytest
from PIL import Image

from conftest import run_vm



def errors(a, b):
    diff = [abs(x - y) for x, y in zip(a, b)]
    return sum(diff) / len(diff), max(diff)


def libjpeg(raw, w, h, q):
    """The frame through Pillow's libjpeg at quality q, decoded again."""
    out = io.BytesIO()
    Image.frombytes("L", (w, h), raw).save(out, "JPEG", quality=q)
    with Image.open(out) as im:
        return im.tobytes()


@pytest.fixture(scope="module")
def encoded(vboard_fs, tmp_path_factory):
    out = tmp_path_factory.mktemp("jpeg")
    proc = run_vm(["jpeg_frames.py", str(out)], vboard_fs, timeout=300)
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stdout + proc.stderr
    return out


def cases(out):
    return sorted(n[:-4] for n in os.listdir(out) if n.endswith(".jpg"))


def test_pillow_decodes_every_picture_to_the_frame(encoded):
    seen = cases(encoded)
    assert len(seen) == 25, seen
    for tag in seen:
        w, h = map(int, tag.split("-")[1].split("x"))
        q = int(tag.split("-q")[1])
        with Image.open(encoded / (tag + ".jpg")) as im:
            im.load()
            assert im.format == "JPEG" and im.mode == "L" and im.size == (w, h), tag
            assert not im.info.get("progressive"), tag  # baseline, as browsers and VLC take
            got = im.tobytes()
        want = (encoded / (tag + ".raw")).read_bytes()
        mean, worst = errors(got, want)
        ref_mean, ref_worst = errors(libjpeg(want, w, h, q), want)
        assert mean <= ref_mean * 1.05 + 0.15 and worst <= ref_worst * 1.1 + 3, \
            (tag, (mean, worst), "libjpeg", (ref_mean, ref_worst))
        if q >= 95:
            assert mean < 1.5, (tag, mean)


def test_quality_trades_size_for_error(encoded):
    sizes = [os.path.getsize(encoded / ("scene-160x120-q%d.jpg" % q)) for q in (10, 50, 80, 95)]
    assert sizes == sorted(sizes) and sizes[0] * 3 < sizes[-1], sizes
