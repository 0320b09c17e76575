"""The real camera: cnadler86's micropython-camera-API and mp_jpeg.

Same interface as the virtual board's ``vcamera.Camera``: ``width``,
``height``, ``name``, ``capture()``, ``jpeg_into(buf, fresh=False)``,
``thumbnail_into(buf)``, ``set(control, value)``, ``close()``. Needs a
firmware with the ``camera`` and ``jpeg`` modules (the cnadler86 release
images); only the ESP32 board layer imports this file.

The pipeline (ARCHITECTURE.md, "Pictures"): the sensor runs in JPEG, in
colour, at ``framesize``, and is never reconfigured to take a picture.

- ``jpeg_into()`` copies the sensor's JPEG as it is: snapshots and the live
  view cost a copy, no encoding.
- ``capture()`` decodes the newest JPEG with mp_jpeg, scaled down to the
  160x120 detection frame, into the decoder's own buffer (CbYCrY, made once
  by the decoder, outside the MicroPython heap), and takes its luma into one
  preallocated frame: nothing frame-sized is allocated per frame.
- ``thumbnail_into()`` encodes that 160x120 colour frame with mp_jpeg: a
  small JPEG for the episode list.
"""

import array

import micropython
from camera import Camera as _Driver
from camera import FrameSize, GrabMode, PixelFormat

import jpeg

DETECT_W = 160
DETECT_H = 120

# framesize choices, 4:3 so the detection frame is an exact scale of them,
# smallest first: name -> (width, height)
FRAMESIZES = ("QQVGA", "QVGA", "VGA", "SVGA", "XGA", "UXGA")
SIZES = {
    "QQVGA": (160, 120),
    "QVGA": (320, 240),
    "VGA": (640, 480),
    "SVGA": (800, 600),
    "XGA": (1024, 768),
    "UXGA": (1600, 1200),
}
WB_MODES = ("auto", "sunny", "cloudy", "office", "home")
EFFECTS = ("none", "negative", "grayscale", "red", "green", "blue", "sepia")

# The OV2640's controls as settings specs (camwatch.settings.declare); the
# flash LED is added by the board layer where the board has one.
CONTROLS = {
    "framesize": ("choice", FRAMESIZES, None, "QVGA"),
    "jpeg_quality": ("int", 10, 95, 80),
    "brightness": ("int", -2, 2, 0),
    "contrast": ("int", -2, 2, 0),
    "saturation": ("int", -2, 2, 0),
    "hmirror": ("bool", 0, 0, False),
    "vflip": ("bool", 0, 0, False),
    "awb": ("bool", 0, 0, True),
    "wb_mode": ("choice", WB_MODES, None, "auto"),
    "special_effect": ("choice", EFFECTS, None, "none"),
    "aec": ("bool", 0, 0, True),
    "agc": ("bool", 0, 0, True),
}
# control -> the driver's property (values as they are)
_PROPERTIES = {
    "jpeg_quality": "quality",  # 0..100 in the driver's API, higher is better
    "brightness": "brightness",
    "contrast": "contrast",
    "saturation": "saturation",
    "hmirror": "hmirror",
    "vflip": "vflip",
    "awb": "whitebal",
    "aec": "exposure_ctrl",
    "agc": "gain_ctrl",
}
# control -> (property, the choices in the driver's numbering)
_NUMBERED = {"wb_mode": ("wb_mode", WB_MODES), "special_effect": ("special_effect", EFFECTS)}

_ENODEV = 19
_EIO = 5


@micropython.viper
def _luma(src: ptr8, dst: ptr8, n: int):
    """The Y of ``n`` CbYCrY pixels (every second byte, from the second)."""
    i = 0
    j = 1
    while i < n:
        dst[i] = src[j]
        i += 1
        j += 2


class Camera:
    """The board's camera.

    ``pins``: the board's ``camera`` entry of boards.json (pwdn, reset,
    xclk, siod, sioc, d: D0..D7, vsync, href, pclk, xclk_hz), or the whole
    board info holding it. ``framesize``: a key of SIZES. ``quality``:
    JPEG quality 10..95 (higher is better).

    Raises OSError (ENODEV) when the sensor does not answer, so callers can
    retry like any other camera failure.
    """

    pixel_format = "JPEG"

    def __init__(self, pins, framesize="QVGA", quality=80):
        if "camera" in pins:
            pins = pins["camera"]
        if framesize not in SIZES:
            raise ValueError("camera: unknown frame size %r" % framesize)
        self.width = DETECT_W
        self.height = DETECT_H
        try:
            self._cam = _Driver(
                data_pins=list(pins["d"]), pclk_pin=pins["pclk"], vsync_pin=pins["vsync"],
                href_pin=pins["href"], sda_pin=pins["siod"], scl_pin=pins["sioc"],
                xclk_pin=pins["xclk"], xclk_freq=pins.get("xclk_hz", 20000000),
                powerdown_pin=pins.get("pwdn", -1), reset_pin=pins.get("reset", -1),
                pixel_format=PixelFormat.JPEG, frame_size=getattr(FrameSize, framesize),
                jpeg_quality=quality, fb_count=2, grab_mode=GrabMode.LATEST)
        except (ValueError, TypeError, RuntimeError) as exc:  # bad pins, no sensor
            raise OSError(_ENODEV, "camera: %s" % exc)
        self.name = self._sensor_name()
        self.framesize = framesize
        self._luma = array.array("b", bytes(DETECT_W * DETECT_H))
        self._view = memoryview(self._luma)
        self._ycc = None  # the decoder's last output: the detection frame in colour
        self._decoder = None
        self._thumbs = None
        self._make_decoder()

    def _sensor_name(self):
        try:
            return self._cam.sensor_name
        except Exception:
            return "camera"

    def _make_decoder(self):
        # scaled straight to the detection frame (a framesize of that size
        # needs no scaling)
        if SIZES[self.framesize] == (DETECT_W, DETECT_H):
            self._decoder = jpeg.Decoder(pixel_format="CbYCrY")
        else:
            self._decoder = jpeg.Decoder(pixel_format="CbYCrY", scale_width=DETECT_W,
                                         scale_height=DETECT_H)

    def _frame(self):
        frame = self._cam.capture()
        if not frame:
            raise OSError(_EIO, "camera: no frame")
        return frame

    # -- pictures --

    def capture(self):
        """The next frame's luma, 160x120: a memoryview of signed bytes, the
        same buffer every time (valid until the next capture). Raises
        OSError when the driver gives no frame or it does not decode."""
        frame = self._frame()
        try:
            ycc = self._decoder.decode(frame)
        except (ValueError, RuntimeError) as exc:
            raise OSError(_EIO, "camera: JPEG did not decode: %s" % exc)
        if len(ycc) < 2 * DETECT_W * DETECT_H:
            raise OSError(_EIO, "camera: decoded frame too small (%d bytes)" % len(ycc))
        _luma(ycc, self._luma, DETECT_W * DETECT_H)
        self._ycc = ycc
        return self._view

    def jpeg_into(self, buf, fresh=False):
        """Copy the sensor's newest JPEG into ``buf``; return its length. A
        length above ``len(buf)``: nothing was copied, grow ``buf`` and ask
        again. ``fresh``: skip the frame that may be waiting (taken before
        the flash went on)."""
        if fresh:
            self._frame()
        frame = self._frame()
        n = len(frame)
        if n <= len(buf):
            buf[:n] = frame
        return n

    def thumbnail_into(self, buf):
        """A small colour JPEG (160x120) of the last frame detection read."""
        if self._ycc is None:
            self.capture()
        if self._thumbs is None:
            self._thumbs = jpeg.Encoder(height=DETECT_H, width=DETECT_W, pixel_format="CbYCrY",
                                        quality=60)
        try:
            data = self._thumbs.encode(self._ycc)
        except (ValueError, RuntimeError) as exc:
            raise OSError(_EIO, "camera: thumbnail: %s" % exc)
        n = len(data)
        if n <= len(buf):
            buf[:n] = data
        return n

    # -- controls --

    def set(self, control, value):
        """Apply one of CONTROLS now. ValueError when the sensor refuses it."""
        cam = self._cam
        if control == "framesize":
            if value not in SIZES:
                raise ValueError("camera: unknown frame size %r" % value)
            cam.frame_size = getattr(FrameSize, value)  # the sensor's setting: no re-init
            old = SIZES[self.framesize] == (DETECT_W, DETECT_H)
            self.framesize = value
            if old != (SIZES[value] == (DETECT_W, DETECT_H)):
                self._make_decoder()
        elif control in _PROPERTIES:
            setattr(cam, _PROPERTIES[control], value)
        elif control in _NUMBERED:
            prop, names = _NUMBERED[control]
            if value not in names:
                raise ValueError("camera: %s has no %r" % (control, value))
            setattr(cam, prop, names.index(value))
        else:
            raise ValueError("camera: no control %s" % control)

    def close(self):
        """Release the sensor and its frame buffers (safe to call twice)."""
        try:
            self._cam.deinit()
        except Exception:
            pass
