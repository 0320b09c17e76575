# On the MicroPython VM: camwatch/board/esp32_camera.py, the real camera's
# wrapper, driven through stand-ins for cnadler86's `camera` and `jpeg`
# modules (the real ones exist only in the ESP32 camera firmware). The
# stand-ins have the real API's names, keyword-only arguments and checks
# (micropython-camera-API src/modcamera*.c, mp_jpeg src/jpeg_esp.c), and
# record what they are asked. The wrapper is loaded from source: the
# virtual board's build does not ship it.
import array
import sys

import vmtest

SOURCE = vmtest.source("firmware/camwatch/board/esp32_camera.py")

PINS = {"pwdn": 32, "reset": -1, "xclk": 0, "siod": 26, "sioc": 27,
        "d": [5, 18, 19, 21, 36, 39, 34, 35], "vsync": 25, "href": 23, "pclk": 22,
        "xclk_hz": 20000000}


class camera:
    """Stand-in for the `camera` module."""

    fail_init = None
    instances = []

    class FrameSize:
        R96X96 = 0
        QQVGA = 1
        QVGA = 6
        VGA = 10
        SVGA = 11
        XGA = 12
        UXGA = 15

    class PixelFormat:
        RGB565 = 0
        GRAYSCALE = 3
        JPEG = 4

    class GrabMode:
        WHEN_EMPTY = 0
        LATEST = 1

    class Camera:
        # sensor ranges of the OV2640 as esp32-camera checks them
        RANGES = {"brightness": (-2, 2), "contrast": (-2, 2), "saturation": (-2, 2),
                  "quality": (0, 100), "special_effect": (0, 6), "wb_mode": (0, 4)}
        BOOLS = ("hmirror", "vflip", "whitebal", "exposure_ctrl", "gain_ctrl")

        def __init__(self, *, data_pins=None, pclk_pin=None, vsync_pin=None, href_pin=None,
                     sda_pin=-1, scl_pin=-1, xclk_pin=None, xclk_freq=20000000,
                     powerdown_pin=-1, reset_pin=-1, i2c=None, pixel_format=0, frame_size=1,
                     jpeg_quality=85, fb_count=1, grab_mode=0, init=True):
            if camera.fail_init:
                raise camera.fail_init
            if not isinstance(data_pins, list) or len(data_pins) != 8:
                raise ValueError("data_pins must have 8 elements")
            if not 0 <= jpeg_quality <= 100:
                raise ValueError("jpeg quality must be in range 0-100")
            if grab_mode not in (0, 1):
                raise ValueError("Invalid grab_mode")
            self.kwargs = dict(data_pins=data_pins, pclk_pin=pclk_pin, vsync_pin=vsync_pin,
                               href_pin=href_pin, sda_pin=sda_pin, scl_pin=scl_pin,
                               xclk_pin=xclk_pin, xclk_freq=xclk_freq,
                               powerdown_pin=powerdown_pin, reset_pin=reset_pin,
                               pixel_format=pixel_format, frame_size=frame_size,
                               jpeg_quality=jpeg_quality, fb_count=fb_count, grab_mode=grab_mode)
            self.props = {"frame_size": frame_size, "quality": jpeg_quality}
            self.calls = []
            self.frames = []  # scripted capture() results; default: a JPEG
            self.jpeg = memoryview(array.array("b", b"\xff\xd8" + bytes(range(100)) + b"\xff\xd9"))
            camera.instances.append(self)

        def capture(self):
            self.calls.append(("capture",))
            if self.frames:
                return self.frames.pop(0)
            return self.jpeg

        def reconfigure(self, **kwargs):
            self.calls.append(("reconfigure", kwargs))

        @property
        def sensor_name(self):
            return "OV2640"

        def __setattr__(self, name, value):
            if name in ("kwargs", "props", "calls", "frames", "jpeg"):
                object.__setattr__(self, name, value)
                return
            if name == "frame_size":
                if not 0 <= value <= 23:
                    raise ValueError("Invalid setting for frame_size")
            elif name in self.RANGES:
                low, high = self.RANGES[name]
                if not low <= value <= high:
                    raise ValueError("Invalid setting for " + name)
            elif name not in self.BOOLS:
                raise AttributeError(name)
            self.props[name] = value
            self.calls.append(("set", name, value))

        def deinit(self):
            self.calls.append(("deinit",))


class jpeg:
    """Stand-in for mp_jpeg's `jpeg` module."""

    out = None
    FORMATS = ("RGB565_BE", "RGB565_LE", "CbYCrY", "RGB888", "GRAY", "RGBA", "YCbYCr",
               "YCbY2YCrY2")

    class Decoder:
        def __init__(self, *, rotation=0, pixel_format=None, block=False, scale_width=0,
                     scale_height=0, clipper_width=0, clipper_height=0, return_bytes=False):
            if pixel_format not in jpeg.FORMATS:
                raise ValueError("Format %s not supported" % pixel_format)
            if pixel_format in ("GRAY", "RGBA", "YCbYCr", "YCbY2YCrY2"):
                # esp_new_jpeg decodes to RGB565, RGB888 and CbYCrY only
                raise ValueError("Failed to initialize JPEG decoder object: Format not supported")
            if scale_width % 8 or scale_height % 8:
                raise ValueError("Failed to initialize JPEG decoder object: Invalid argument")
            self.scale = (scale_width, scale_height)
            # the real decoder's buffer is outside the MicroPython heap:
            # the stand-ins share one, so they do not fill the VM's
            if jpeg.out is None:
                jpeg.out = bytearray(2 * 160 * 120)
            self.out = jpeg.out
            self.decoded = 0
            self.fail = None

        def decode(self, data):
            if self.fail:
                raise self.fail
            if bytes(data[:2]) != b"\xff\xd8":
                raise ValueError("JPEG header parsing failed: Data error")
            # "decode": Y of pixel i is (i + first byte after SOI) & 0xFF,
            # chroma 128; enough to follow the bytes through the wrapper
            seed = data[2] & 0xFF
            out = self.out
            for i in range(160 * 120):
                out[2 * i] = 128
                out[2 * i + 1] = (i + seed) & 0xFF
            self.decoded += 1
            return memoryview(out)

    class Encoder:
        def __init__(self, height, width, pixel_format, *, quality=90, rotation=0):
            if pixel_format not in jpeg.FORMATS:
                raise ValueError("Format %s not supported" % pixel_format)
            self.size = (width, height)
            self.format = pixel_format
            self.quality = quality
            self.encoded = []

        def encode(self, img):
            n = 2 * self.size[0] * self.size[1] if self.format == "CbYCrY" else None
            if n is not None and len(img) < n:
                raise RuntimeError("JPEG encoding failed")
            self.encoded.append(bytes(img[:8]))
            return b"\xff\xd8thumb\xff\xd9"  # a new bytes object, as mp_jpeg returns


def _module():
    sys.modules["camera"] = camera
    sys.modules["jpeg"] = jpeg
    camera.fail_init = None
    camera.instances[:] = []
    namespace = {"__name__": "esp32_camera"}
    with open(SOURCE) as f:
        exec(f.read(), namespace)
    return namespace


def test_constructor_starts_the_sensor_in_jpeg_with_the_board_pins():
    mod = _module()
    cam = mod["Camera"](PINS)
    kw = camera.instances[-1].kwargs
    assert kw["data_pins"] == PINS["d"] and kw["pclk_pin"] == 22
    assert (kw["vsync_pin"], kw["href_pin"], kw["sda_pin"], kw["scl_pin"]) == (25, 23, 26, 27)
    assert (kw["xclk_pin"], kw["xclk_freq"], kw["powerdown_pin"], kw["reset_pin"]) == (
        0, 20000000, 32, -1)
    assert kw["pixel_format"] == camera.PixelFormat.JPEG
    assert kw["frame_size"] == camera.FrameSize.QVGA and kw["jpeg_quality"] == 80
    assert kw["fb_count"] == 2 and kw["grab_mode"] == camera.GrabMode.LATEST
    assert (cam.width, cam.height, cam.pixel_format, cam.name) == (160, 120, "JPEG", "OV2640")
    mod["Camera"]({"camera": PINS}, framesize="VGA", quality=60)  # the whole board info too
    kw = camera.instances[-1].kwargs
    assert kw["frame_size"] == camera.FrameSize.VGA and kw["jpeg_quality"] == 60


def test_capture_decodes_scaled_luma_into_one_buffer():
    mod = _module()
    cam = mod["Camera"](PINS)
    drv = camera.instances[-1]
    dec = cam._decoder
    assert dec.scale == (160, 120)
    first = cam.capture()
    assert len(first) == 160 * 120 and dec.decoded == 1
    seed = drv.jpeg[2] & 0xFF
    assert [first[i] & 0xFF for i in (0, 1, 255, 19199)] == [
        (i + seed) & 0xFF for i in (0, 1, 255, 19199)]
    assert cam.capture() is first or bytes(cam.capture()) == bytes(first)
    # the same buffer every frame: nothing frame-sized per frame
    import gc
    cam.capture()
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(5):
        cam.capture()
    assert gc.mem_alloc() - before < 1024, gc.mem_alloc() - before
    assert not [c for c in drv.calls if c[0] == "reconfigure"]


def test_capture_failures_become_oserror():
    mod = _module()
    cam = mod["Camera"](PINS)
    drv = camera.instances[-1]
    for frame, fail in ((None, None), (memoryview(b"garbage"), None),
                        (None, RuntimeError("JPEG decoding failed"))):
        if fail:
            cam._decoder.fail = fail
        else:
            drv.frames = [frame]
        try:
            cam.capture()
        except OSError as exc:
            assert exc.errno == 5
        else:
            raise AssertionError("no OSError for %r/%r" % (frame, fail))
        cam._decoder.fail = None


def test_driver_errors_at_start_become_oserror():
    mod = _module()
    for exc in (ValueError("Specify a valid camera configuration"), RuntimeError("x"),
                OSError(5, "Failed to capture initial frame")):
        camera.fail_init = exc
        try:
            mod["Camera"](PINS)
        except OSError:
            pass
        else:
            raise AssertionError("no OSError for %r" % exc)
    camera.fail_init = None


def test_jpeg_into_copies_the_sensor_jpeg_without_reconfiguring():
    mod = _module()
    cam = mod["Camera"](PINS)
    drv = camera.instances[-1]
    buf = bytearray(64)
    n = cam.jpeg_into(buf)
    assert n == len(drv.jpeg) and n > 64  # did not fit: asks for more
    buf = bytearray(n)
    assert cam.jpeg_into(buf) == n and bytes(buf) == bytes(drv.jpeg)
    drv.calls = []
    cam.jpeg_into(buf, fresh=True)
    assert drv.calls == [("capture",), ("capture",)]  # the waiting frame skipped
    assert not [c for c in drv.calls if c[0] == "reconfigure"]


def test_thumbnail_is_the_detection_frame_in_colour():
    mod = _module()
    cam = mod["Camera"](PINS)
    buf = bytearray(100)
    n = cam.thumbnail_into(buf)
    assert bytes(buf[:n]) == b"\xff\xd8thumb\xff\xd9"
    enc = cam._thumbs
    assert enc.size == (160, 120) and enc.format == "CbYCrY"
    assert enc.encoded[-1][:2] == bytes((128, cam._luma[0] & 0xFF))


def test_every_control_reaches_the_sensor_and_bad_ones_are_refused():
    mod = _module()
    cam = mod["Camera"](PINS)
    drv = camera.instances[-1]
    for key, (kind, low, high, default) in mod["CONTROLS"].items():
        values = low if kind == "choice" else (False, True) if kind == "bool" else (low, high)
        for value in values:
            cam.set(key, value)
    props = drv.props
    assert props["frame_size"] == camera.FrameSize.UXGA
    assert props["quality"] == 95 and props["brightness"] == 2 and props["saturation"] == 2
    assert props["wb_mode"] == 4 and props["special_effect"] == 6
    assert props["whitebal"] is True and props["exposure_ctrl"] is True
    for key, value in (("brightness", 5), ("framesize", "HD"), ("wb_mode", "disco"),
                       ("nonsense", 1)):
        try:
            cam.set(key, value)
        except ValueError:
            pass
        else:
            raise AssertionError("%s=%r accepted" % (key, value))
    # QQVGA needs no scaling: the decoder follows the frame size
    cam.set("framesize", "QQVGA")
    assert cam._decoder.scale == (0, 0)
    cam.set("framesize", "VGA")
    assert cam._decoder.scale == (160, 120)
    assert not [c for c in drv.calls if c[0] == "reconfigure"]


def test_close_deinits_and_tolerates_twice():
    mod = _module()
    cam = mod["Camera"](PINS)
    cam.close()
    cam.close()
    assert camera.instances[-1].calls[-2:] == [("deinit",), ("deinit",)]
