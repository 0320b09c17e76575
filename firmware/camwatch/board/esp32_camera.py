"""The real camera: cnadler86's micropython-camera-API behind camwatch's interface.

Same interface as the virtual board's ``SceneCamera``: ``width``, ``height``,
``pixel_format``, ``capture()``, ``snapshot()``, ``close()``. Needs a
firmware with the ``camera`` module (the cnadler86 release images); only the
ESP32 board layer imports this file.

Detection runs on GRAYSCALE frames (QQVGA by default: grayscale above QVGA
is not advised on the plain ESP32). ``capture()`` hands back the driver's own
memoryview of signed bytes over its frame buffer, without copying; it is
valid only until the next capture.

Snapshots: the driver's JPEG comes from the sensor, so ``snapshot()``
reconfigures the camera to JPEG at ``snapshot_size``, takes one frame,
copies it (a few KB at QVGA) and reconfigures back to grayscale. That costs
a few hundred milliseconds and the next frames may differ in exposure (the
detector's lighting compensation absorbs that). The software encoder some
builds bundle is not used: it is not in every release image.
"""

from camera import Camera as _Driver
from camera import FrameSize, PixelFormat

# Frame sizes by FrameSize name: (width, height).
SIZES = {
    "R96X96": (96, 96),
    "QQVGA": (160, 120),
    "QCIF": (176, 144),
    "HQVGA": (240, 176),
    "R240X240": (240, 240),
    "QVGA": (320, 240),
    "CIF": (400, 296),
    "HVGA": (480, 320),
    "VGA": (640, 480),
    "SVGA": (800, 600),
}

_ENODEV = 19
_EIO = 5


class Camera:
    """The board's camera, grayscale for detection.

    ``pins``: the board's ``camera`` entry of boards.json (pwdn, reset,
    xclk, siod, sioc, d: D0..D7, vsync, href, pclk, xclk_hz), or the whole
    board info holding it. ``size``: detection frame size, a FrameSize name
    from SIZES. ``snapshot_size``: FrameSize name for snapshot() JPEGs.
    ``jpeg_quality``: passed to the driver when given (its own default
    otherwise; its scale differs between driver versions).

    Raises OSError (ENODEV) when the sensor does not answer, so callers can
    retry like any other camera failure.
    """

    pixel_format = "GRAYSCALE"

    def __init__(self, pins, size="QQVGA", snapshot_size="QVGA", jpeg_quality=None):
        if "camera" in pins:
            pins = pins["camera"]
        if size not in SIZES or snapshot_size not in SIZES:
            raise ValueError("camera: unknown frame size %r / %r" % (size, snapshot_size))
        self.width, self.height = SIZES[size]
        self._size = getattr(FrameSize, size)
        self._snapshot_size = getattr(FrameSize, snapshot_size)
        kwargs = {
            "data_pins": list(pins["d"]),
            "pclk_pin": pins["pclk"],
            "vsync_pin": pins["vsync"],
            "href_pin": pins["href"],
            "sda_pin": pins["siod"],
            "scl_pin": pins["sioc"],
            "xclk_pin": pins["xclk"],
            "xclk_freq": pins.get("xclk_hz", 20000000),
            "powerdown_pin": pins.get("pwdn", -1),
            "reset_pin": pins.get("reset", -1),
            "pixel_format": PixelFormat.GRAYSCALE,
            "frame_size": self._size,
        }
        if jpeg_quality is not None:
            kwargs["jpeg_quality"] = jpeg_quality
        try:
            self._cam = _Driver(**kwargs)
        except (ValueError, TypeError, RuntimeError) as exc:  # bad pins, no sensor
            raise OSError(_ENODEV, "camera: %s" % exc)
        self.name = self._sensor_name()

    def _sensor_name(self):
        try:
            return self._cam.get_sensor_name()
        except Exception:
            return "camera"

    def capture(self):
        """The next grayscale frame: the driver's memoryview of signed bytes.

        Valid until the next capture() or snapshot(). Raises OSError when the
        driver gives no frame.
        """
        frame = self._cam.capture()
        if not frame:
            raise OSError(_EIO, "camera: no frame")
        return frame

    def snapshot(self):
        """A JPEG of what the camera sees now: ``("image/jpeg", bytes)``.

        Raises OSError if the JPEG frame cannot be taken; the camera is back
        in grayscale either way when this returns.
        """
        cam = self._cam
        try:
            cam.reconfigure(pixel_format=PixelFormat.JPEG, frame_size=self._snapshot_size)
            frame = cam.capture() or cam.capture()  # one retry: the first may be empty
            if not frame:
                raise OSError(_EIO, "camera: no JPEG frame")
            data = bytes(frame)  # the buffer is the driver's: copy before it moves on
        except (ValueError, TypeError, RuntimeError) as exc:
            raise OSError(_EIO, "camera: snapshot: %s" % exc)
        finally:
            self._grayscale()
        return "image/jpeg", data

    def _grayscale(self):
        try:
            self._cam.reconfigure(pixel_format=PixelFormat.GRAYSCALE, frame_size=self._size)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise OSError(_EIO, "camera: back to grayscale: %s" % exc)

    def close(self):
        """Release the sensor and its frame buffers (safe to call twice)."""
        try:
            self._cam.deinit()
        except Exception:
            pass
