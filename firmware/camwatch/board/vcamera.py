"""The virtual board's camera: the scripted scene as a sensor with controls.

Same interface as the ESP32's ``esp32_camera.Camera``:

- ``width``, ``height``, ``name``: the detection frame;
- ``capture()``: the next grayscale frame, a memoryview of signed bytes
  valid until the next capture (what detection reads);
- ``jpeg_into(buf, fresh=False)``: a JPEG of what the camera sees, written
  into ``buf``; returns its length (more than ``len(buf)``: it did not fit,
  grow ``buf`` and ask again);
- ``thumbnail_into(buf)``: a small JPEG of the last detection frame, same
  rule;
- ``set(control, value)``: apply one of ``CONTROLS`` now (ValueError when
  the camera has no such control or value);
- ``close()``.

What it can imitate of a sensor's controls it does to the pixels, so
detection and every picture see it: brightness and contrast (steps of -2..2
as on the OV2640), horizontal mirror, vertical flip, a negative effect, and
the board's flash LED (it lights the scene). JPEG quality goes to the
encoder (``jpegenc``, loaded on the first picture). The frame size is the
scene's, 160x120: there is no ``framesize`` control here.
"""

import micropython

CONTROLS = {
    "jpeg_quality": ("int", 10, 95, 80),
    "brightness": ("int", -2, 2, 0),
    "contrast": ("int", -2, 2, 0),
    "hmirror": ("bool", 0, 0, False),
    "vflip": ("bool", 0, 0, False),
    "special_effect": ("choice", ("none", "negative"), None, "none"),
}

BRIGHTNESS_STEP = 24  # grey levels per brightness step
FLASH_LIGHT = 40  # grey levels the flash LED adds


@micropython.viper
def _adjust(buf: ptr8, w: int, h: int, lut: ptr8, use_lut: int, mirror: int, flip: int):
    """In place: every pixel through ``lut``, then mirror and/or flip."""
    n = w * h
    if use_lut:
        i = 0
        while i < n:
            buf[i] = lut[buf[i]]
            i += 1
    if mirror:
        row = 0
        while row < n:
            a = row
            b = row + w - 1
            while a < b:
                t = buf[a]
                buf[a] = buf[b]
                buf[b] = t
                a += 1
                b -= 1
            row += w
    if flip:
        top = 0
        bottom = n - w
        while top < bottom:
            x = 0
            while x < w:
                t = buf[top + x]
                buf[top + x] = buf[bottom + x]
                buf[bottom + x] = t
                x += 1
            top += w
            bottom -= w


class Camera:
    """Wraps a ``scenes.SceneCamera``.

    ``scene``: the SceneCamera. ``flash``: a function returning whether the
    board's flash LED is on now.
    """

    pixel_format = "GRAYSCALE"

    def __init__(self, scene, flash=None):
        self.scene = scene
        self.width = scene.width
        self.height = scene.height
        self.name = scene.name
        self._flash = flash or (lambda: False)
        self._values = {key: spec[3] for key, spec in CONTROLS.items()}
        self._lut = bytearray(256)
        self._lut_flash = None  # the LUT was built with the flash on/off
        self._encoder = None
        self._use_lut = False
        self._frame = None  # the last frame captured
        self._captured = False  # a frame was captured since the last picture

    # -- controls --

    def set(self, control, value):
        """Apply control ``control`` (a key of CONTROLS) = ``value`` now."""
        spec = CONTROLS.get(control)
        if spec is None:
            raise ValueError("this camera has no control %s" % control)
        kind, low, high, _ = spec
        if kind == "int" and not (isinstance(value, int) and low <= value <= high) \
                or kind == "bool" and not isinstance(value, bool) \
                or kind == "choice" and value not in low:
            raise ValueError("invalid setting for %s: %r" % (control, value))
        self._values[control] = value
        self._lut_flash = None  # rebuild at the next capture
        if control == "jpeg_quality" and self._encoder is not None:
            self._encoder.configure(value)

    def _build_lut(self, flash):
        v = self._values
        offset = v["brightness"] * BRIGHTNESS_STEP + (FLASH_LIGHT if flash else 0)
        gain = 4 + v["contrast"]  # quarters: 0.5 .. 1.5
        negative = v["special_effect"] == "negative"
        lut = self._lut
        for i in range(256):
            x = ((i - 128) * gain >> 2) + 128 + offset
            x = 0 if x < 0 else 255 if x > 255 else x
            lut[i] = 255 - x if negative else x
        self._lut_flash = flash
        self._use_lut = offset != 0 or gain != 4 or negative

    # -- pictures --

    def capture(self):
        """The next frame with the controls applied (see the module doc)."""
        frame = self.scene.capture()
        flash = bool(self._flash())
        if self._lut_flash is not flash:
            self._build_lut(flash)
        v = self._values
        if self._use_lut or v["hmirror"] or v["vflip"]:
            _adjust(frame, self.width, self.height, self._lut, self._use_lut, v["hmirror"],
                    v["vflip"])
        self._frame = frame
        self._captured = True
        return frame

    def jpeg_into(self, buf, fresh=False):
        """The JPEG of the newest frame (a new one is captured if none was
        since the last picture, or if ``fresh``) into ``buf``; its length,
        or more than ``len(buf)`` when it did not fit."""
        if fresh or not self._captured:
            self.capture()
        self._captured = False
        return self._encode(buf)

    def thumbnail_into(self, buf):
        """A JPEG of the last frame detection read (the whole frame here)."""
        if self._frame is None:
            self.capture()
        return self._encode(buf)

    def _encode(self, buf):
        enc = self._encoder
        if enc is None:
            from camwatch.board.jpegenc import Encoder

            enc = self._encoder = Encoder(self.width, self.height, self._values["jpeg_quality"])
        n = enc.encode(self._frame, buf)
        return n if n >= 0 else 2 * len(buf) + 1024

    def close(self):
        self.scene.close()
