# On the MicroPython VM: wall-clock time. camwatch/clock.py (when to ask NTP,
# what events carry before and after) with a scripted board, and the ESP32
# board layer's set_time() against a stand-in for MicroPython's `ntptime`
# with the real module's names (host, timeout, settime()). esp32.py is
# loaded from source with stand-ins for the modules only the ESP32 has.
import sys
import time

import vmtest

from camwatch import clock as clock_module

ESP32_SOURCE = vmtest.source("firmware/camwatch/board/esp32.py")


class _Status:
    def __init__(self):
        self.reports = []
        self.stamp = None

    def report(self, kind, message, fields=None):
        data = {"kind": kind, "message": message}
        data.update(fields or {})
        if self.stamp:
            self.stamp(data)
        self.reports.append(data)


class _Telemetry:
    def __init__(self):
        self.sources = []


class _WiFi:
    state = "connected"


class _Board:
    def __init__(self):
        self.answers = []  # scripted: None answers, an exception does not
        self.asked = []

    def set_time(self, server):
        self.asked.append(server)
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer


class _App:
    def __init__(self):
        self.board = _Board()
        self.status = _Status()
        self.telemetry = _Telemetry()
        self.wifi = _WiFi()
        self.settings = {"ntp_server": "pool.ntp.org"}


def test_events_carry_no_time_until_ntp_answers_then_unix_seconds():
    app = _App()
    clock = clock_module.Clock(app)
    assert clock.now() is None
    data = {}
    clock.stamp(data)
    assert "time" not in data  # the board does not know the time yet
    app.board.answers = [OSError(110)]
    clock.sync("pool.ntp.org")
    assert not clock.synced
    warning = app.status.reports[-1]
    assert warning["kind"] == "warning" and "pool.ntp.org" in warning["message"]
    assert "time" not in warning
    clock.sync("pool.ntp.org")
    assert clock.synced
    said = app.status.reports[-1]
    assert said["kind"] == "clock" and said["server"] == "pool.ntp.org"
    # stamped by the status hook, like every status event from now on
    assert abs(said["time"] - (time.time() + clock_module.EPOCH)) <= 2
    data = {}
    app.telemetry.sources[0](data)  # telemetry gets it through its source
    assert abs(data["time"] - clock.now()) <= 1
    assert data["time"] > 1700000000  # Unix seconds, not the board's epoch


def test_retries_back_off_and_warn_once_then_resync_hours_later():
    app = _App()
    clock = clock_module.Clock(app)
    app.board.answers = [OSError(110)] * 5
    waits = []
    for _ in range(5):
        clock.sync("ntp.example")
        waits.append(time.ticks_diff(clock._due, time.ticks_ms()) // 1000)
    assert [w >= r - 1 and w <= r for w, r in zip(waits, (10, 30, 60, 300, 300))] == [True] * 5
    assert len([r for r in app.status.reports if r["kind"] == "warning"]) == 1  # not every retry
    clock.sync("ntp.example")
    assert clock.synced and clock.failures == 0
    wait = time.ticks_diff(clock._due, time.ticks_ms()) // 1000
    assert clock_module.RESYNC_S - 2 <= wait <= clock_module.RESYNC_S
    # a new server is asked at once
    clock.settings_changed(["ntp_server"])
    assert time.ticks_diff(clock._due, time.ticks_ms()) <= 0


def test_iso_formats_utc():
    assert clock_module.iso(0) == "1970-01-01 00:00:00"
    assert clock_module.iso(1764039600) == "2025-11-25 03:00:00"


class _Ntptime:
    """MicroPython's ntptime: ``host``, ``timeout``, ``settime()``."""

    host = "pool.ntp.org"
    timeout = 1
    calls = []
    fail = None

    @classmethod
    def settime(cls):
        cls.calls.append((cls.host, cls.timeout))
        if cls.fail:
            raise cls.fail


class _Network:
    STA_IF, AP_IF = 0, 1

    class WLAN:
        def __init__(self, interface):
            self.interface = interface


def _with_esp32_modules(fn):
    stand_ins = {"esp32": object(), "network": _Network, "ntptime": _Ntptime}
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        namespace = {"__name__": "esp32_board"}
        with open(ESP32_SOURCE) as f:
            exec(f.read(), namespace)
        return fn(namespace["Board"]({"id": "esp32cam"}))
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module


def test_esp32_set_time_asks_the_given_server_through_ntptime():
    if sys.platform == "esp32":
        vmtest.skip("the stand-in would shadow the board's own ntptime")
    _Ntptime.calls = []
    _Ntptime.fail = None
    _with_esp32_modules(lambda board: board.set_time("192.168.1.1"))
    assert _Ntptime.calls == [("192.168.1.1", 1)]
    _Ntptime.fail = OSError(110)
    try:
        _with_esp32_modules(lambda board: board.set_time("ntp.example"))
        raise AssertionError("no OSError")
    except OSError as exc:
        assert exc.args[0] == 110  # what camwatch.clock catches and retries
    assert _Ntptime.calls[-1] == ("ntp.example", 1)
