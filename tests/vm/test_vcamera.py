# On the MicroPython VM: the virtual board's camera (camwatch/board/vcamera.py):
# its controls change the pixels detection and the pictures see, exactly.
from camwatch.board import jpegenc  # noqa: F401  (vcamera loads it lazily; test-hw copies it)
from camwatch.board.scenes import SceneCamera
from camwatch.board.vcamera import BRIGHTNESS_STEP, CONTROLS, FLASH_LIGHT, Camera


def _pair(**controls):
    """Frame 5 of the idle scene, plain and through a Camera with ``controls``."""
    plain = SceneCamera("idle")
    for _ in range(5):
        want = bytes(plain.capture())
    plain.close()
    light = {"on": False}
    cam = Camera(SceneCamera("idle"), lambda: light["on"])
    for key, value in controls.items():
        cam.set(key, value)
    for _ in range(5):
        got = bytes(cam.capture())
    return cam, want, got


def _clamp(v):
    return 0 if v < 0 else 255 if v > 255 else v


def test_defaults_leave_the_frame_as_rendered():
    cam, want, got = _pair()
    assert got == want
    cam.close()


def test_mirror_and_flip_move_pixels_exactly():
    cam, want, got = _pair(hmirror=True, vflip=True)
    w, h = cam.width, cam.height
    for y in (0, 37, h - 1):
        for x in (0, 1, 80, w - 1):
            assert got[y * w + x] == want[(h - 1 - y) * w + (w - 1 - x)], (x, y)
    cam.close()


def test_brightness_contrast_and_negative_map_every_grey():
    cam, want, got = _pair(brightness=1, contrast=2)
    for i in range(0, len(want), 97):
        v = want[i]
        assert got[i] == _clamp(((v - 128) * 6 >> 2) + 128 + BRIGHTNESS_STEP), (v, got[i])
    cam.close()
    cam, want, got = _pair(special_effect="negative")
    assert all(got[i] == 255 - want[i] for i in range(0, len(want), 89))
    cam.close()


def test_the_flash_lights_the_scene_while_on():
    light = {"on": True}
    cam = Camera(SceneCamera("idle"), lambda: light["on"])
    lit = sum(cam.capture()[i] & 0xFF for i in range(0, 19200, 50))
    light["on"] = False
    dark = sum(cam.capture()[i] & 0xFF for i in range(0, 19200, 50))
    assert lit - dark > (FLASH_LIGHT // 2) * (19200 // 50), (lit, dark)
    cam.close()


def test_bad_values_are_refused_and_jpeg_follows_quality():
    cam = Camera(SceneCamera("idle"))
    for key, value in (("brightness", 3), ("hmirror", 1), ("special_effect", "sepia"),
                       ("framesize", "VGA")):
        try:
            cam.set(key, value)
        except ValueError:
            pass
        else:
            raise AssertionError("%s=%r accepted" % (key, value))
    buf = bytearray(20000)
    n80 = cam.jpeg_into(buf)
    assert bytes(buf[:2]) == b"\xff\xd8" and bytes(buf[n80 - 2:n80]) == b"\xff\xd9"
    cam.set("jpeg_quality", CONTROLS["jpeg_quality"][2])
    n95 = cam.jpeg_into(buf)
    assert n95 > n80
    # too small a buffer: the answer says so, and nothing overflows
    small = bytearray(100)
    assert cam.jpeg_into(small) > len(small)
    cam.close()
