# On the MicroPython VM: camwatch/board/esp32_camera.py, the real camera's
# wrapper, driven through a stand-in for cnadler86's `camera` module (the real
# one exists only in the ESP32 camera firmware). The wrapper is loaded from
# source: the virtual board's build does not ship it.
import array
import sys

import vmtest

SOURCE = vmtest.source("firmware/camwatch/board/esp32_camera.py")

PINS = {"pwdn": 32, "reset": -1, "xclk": 0, "siod": 26, "sioc": 27,
        "d": [5, 18, 19, 21, 36, 39, 34, 35], "vsync": 25, "href": 23, "pclk": 22,
        "xclk_hz": 20000000}


class FakeDriver:
    """Records what the wrapper asks of the driver; scripted failures."""

    fail_init = None
    instances = []

    class FrameSize:
        QQVGA = 1
        QVGA = 6
        VGA = 10

    class PixelFormat:
        GRAYSCALE = 3
        JPEG = 4

    class Camera:
        def __init__(self, **kwargs):
            if FakeDriver.fail_init:
                raise FakeDriver.fail_init
            self.kwargs = kwargs
            self.format = kwargs["pixel_format"]
            self.size = kwargs["frame_size"]
            self.calls = []
            self.frames = []  # scripted results of capture(); default a frame
            self.gray = memoryview(array.array("b", b"\xff\x00\x01\x80" * 4800))
            FakeDriver.instances.append(self)

        def capture(self):
            self.calls.append(("capture", self.format, self.size))
            if self.frames:
                return self.frames.pop(0)
            if self.format == FakeDriver.PixelFormat.JPEG:
                return memoryview(array.array("b", b"\xff\xd8jpeg\xff\xd9"))
            return self.gray

        def reconfigure(self, pixel_format=None, frame_size=None):
            self.calls.append(("reconfigure", pixel_format, frame_size))
            self.format = pixel_format
            self.size = frame_size

        def get_sensor_name(self):
            return "OV2640"

        def deinit(self):
            self.calls.append(("deinit",))


def _module():
    sys.modules["camera"] = FakeDriver
    FakeDriver.fail_init = None
    FakeDriver.instances = []  # each test looks at its own; earlier frames need not stay in the heap
    namespace = {"__name__": "esp32_camera"}
    with open(SOURCE) as f:
        exec(f.read(), namespace)
    return namespace


def test_constructor_passes_the_board_pins():
    mod = _module()
    cam = mod["Camera"](PINS)
    kw = FakeDriver.instances[-1].kwargs
    assert kw["data_pins"] == PINS["d"] and kw["pclk_pin"] == 22
    assert (kw["vsync_pin"], kw["href_pin"], kw["sda_pin"], kw["scl_pin"]) == (25, 23, 26, 27)
    assert (kw["xclk_pin"], kw["xclk_freq"], kw["powerdown_pin"], kw["reset_pin"]) == (
        0, 20000000, 32, -1)
    assert kw["pixel_format"] == FakeDriver.PixelFormat.GRAYSCALE
    assert kw["frame_size"] == FakeDriver.FrameSize.QQVGA
    assert "jpeg_quality" not in kw
    assert (cam.width, cam.height, cam.pixel_format, cam.name) == (160, 120, "GRAYSCALE", "OV2640")
    # the whole board info works too
    mod["Camera"]({"camera": PINS}, jpeg_quality=70)
    assert FakeDriver.instances[-1].kwargs["jpeg_quality"] == 70


def test_capture_hands_back_the_drivers_view():
    mod = _module()
    cam = mod["Camera"](PINS)
    drv = FakeDriver.instances[-1]
    assert cam.capture() is drv.gray
    drv.frames = [None]
    try:
        cam.capture()
    except OSError as exc:
        assert exc.errno == 5
    else:
        raise AssertionError("no OSError for a missing frame")


def test_driver_errors_at_start_become_oserror():
    mod = _module()
    for exc in (ValueError("Specify a valid camera configuration"), RuntimeError("x"),
                OSError(5, "Failed to capture initial frame")):
        FakeDriver.fail_init = exc
        try:
            mod["Camera"](PINS)
        except OSError:
            pass
        else:
            raise AssertionError("no OSError for %r" % exc)
    FakeDriver.fail_init = None


def test_snapshot_reconfigures_to_jpeg_and_back():
    mod = _module()
    cam = mod["Camera"](PINS, snapshot_size="VGA")
    drv = FakeDriver.instances[-1]
    kind, data = cam.snapshot()
    assert kind == "image/jpeg" and data == b"\xff\xd8jpeg\xff\xd9" and type(data) is bytes
    j, g = FakeDriver.PixelFormat.JPEG, FakeDriver.PixelFormat.GRAYSCALE
    assert drv.calls == [("reconfigure", j, FakeDriver.FrameSize.VGA), ("capture", j, 10),
                         ("reconfigure", g, FakeDriver.FrameSize.QQVGA)], drv.calls
    # no JPEG frame: OSError, and still back in grayscale
    drv.calls = []
    drv.frames = [None, None]
    try:
        cam.snapshot()
    except OSError:
        pass
    else:
        raise AssertionError("no OSError")
    assert drv.calls[-1] == ("reconfigure", g, FakeDriver.FrameSize.QQVGA), drv.calls
    assert cam.capture() is drv.gray


def test_close_deinits_and_tolerates_twice():
    mod = _module()
    cam = mod["Camera"](PINS)
    cam.close()
    cam.close()
    assert FakeDriver.instances[-1].calls == [("deinit",), ("deinit",)]
