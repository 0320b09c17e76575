# On a real ESP32 board (`make test-hw PORT=...`): the ESP32 board layer
# (camwatch/board/esp32.py) against the hardware it drives, with the board's
# own /board.json (its boards.json entry, put there by the deploy).
# Elsewhere (the virtual board, the host's VM) each test skips with a reason.
import vmtest


def _board():
    vmtest.only_on("esp32")
    from camwatch.board import load

    return load()


def _chip():
    import os

    return os.uname().machine.rsplit(" with ", 1)[-1].lower()  # "... with ESP32S3"


def test_board_json_is_for_this_chip():
    vmtest.only_on("esp32")
    from camwatch.board import read_info

    info = read_info()
    assert info["chip"] == _chip(), "board.json is for %s, this is an %s: deploy BOARD=..." % (
        info["chip"], _chip())


def test_camera_capture_gives_a_frame_of_the_configured_size():
    board = _board()
    cam = board.camera()
    try:
        assert (cam.width, cam.height) == (160, 120), (cam.width, cam.height)  # QQVGA default
        for _ in range(5):
            frame = cam.capture()
            # one byte per pixel: grayscale at the configured frame size
            assert len(frame) == cam.width * cam.height, (len(frame), cam.width, cam.height)
    finally:
        cam.close()


def test_camera_pictures_are_sensor_jpegs_and_what_a_frame_costs():
    # the figures ARCHITECTURE.md ("Pictures") asks a board to confirm
    import time

    board = _board()
    cam = board.camera()
    try:
        buf = bytearray(64 * 1024)
        for size in ("QVGA", "VGA"):
            cam.set("framesize", size)
            cam.capture()
            t0 = time.ticks_ms()
            for _ in range(10):
                cam.capture()
            decode_ms = time.ticks_diff(time.ticks_ms(), t0) / 10
            n = cam.jpeg_into(buf)
            assert n <= len(buf) and bytes(buf[:2]) == b"\xff\xd8", (size, n)
            print("  (%s: capture + decode to 160x120 %.0f ms a frame; sensor JPEG %d bytes)"
                  % (size, decode_ms, n))
        n = cam.thumbnail_into(buf)
        assert bytes(buf[:2]) == b"\xff\xd8" and n < 16384, n
    finally:
        cam.close()


def test_wlan_scan_lists_well_formed_networks():
    board = _board()
    sta = board.wifi.sta
    sta.active(True)
    nets = sta.scan()
    assert isinstance(nets, list)
    for net in nets:
        ssid, bssid, channel, rssi = net[0], net[1], net[2], net[3]
        assert isinstance(ssid, bytes) and len(ssid) <= 32, net
        assert len(bssid) == 6, net
        assert 1 <= channel <= 14, net
        assert -120 < rssi < 0, net
    print("  (%d networks in range)" % len(nets))


def test_temperature_is_plausible():
    board = _board()
    t = board.temperature()
    assert t is not None, "no temperature sensor reading"
    if _chip() == "esp32s3":
        assert -40 <= t <= 125, t  # degrees C from esp32.mcu_temperature()
    else:
        assert 0 < t < 255, t  # the plain ESP32's raw sensor value (degrees F, uncalibrated)


def test_leds_drive_the_pins_boards_json_names():
    board = _board()
    import machine

    leds = board.info.get("leds") or {}
    if not leds:
        vmtest.skip("boards.json lists no LEDs for %s" % board.info.get("name"))
    for name, led in leds.items():
        pin = machine.Pin(led["pin"])  # already an output: read back what is driven
        on, off = (1, 0) if led["active_high"] else (0, 1)
        try:
            board.led(name, True)
            assert pin.value() == on, (name, led, pin.value())
            board.led(name, False)
            assert pin.value() == off, (name, led, pin.value())
        finally:
            board.led(name, False)


def test_microsd_card_mounts_takes_a_file_and_unmounts():
    board = _board()
    if not board.has_sd():
        vmtest.skip("this board has no microSD slot in boards.json")
    try:
        where = board.sd_mount()
    except OSError as exc:
        vmtest.skip("no card in the slot (%r): put one in to test it" % (exc,))
    import os

    try:
        path = where + "/camwatch-test-hw.bin"
        data = bytes(range(256)) * 16
        with open(path, "wb") as f:
            f.write(data)
        with open(path, "rb") as f:
            assert f.read() == data
        os.remove(path)
    finally:
        board.sd_unmount()
    assert "sd" not in os.listdir("/")  # unmounted
