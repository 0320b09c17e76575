# On the MicroPython VM: the captive portal's DNS answers (camwatch/dns.py),
# and the ESP32 board layer's Wi-Fi scan and join results against a stand-in
# for the esp32 port's `network` module with its real names (WLAN, STA_IF,
# AP_IF, STAT_* codes, scan() tuples of (ssid, bssid, channel, rssi,
# authmode, hidden)). esp32.py is loaded from source with stand-ins for the
# modules only the ESP32 has.
import sys

import vmtest

from camwatch.dns import answer

ESP32_SOURCE = vmtest.source("firmware/camwatch/board/esp32.py")
IP = bytes((192, 168, 4, 1))


def _query(name, qtype=1, ident=0x0102, flags=0x0100):
    q = bytearray((ident >> 8, ident & 255, flags >> 8, flags & 255, 0, 1, 0, 0, 0, 0, 0, 0))
    for part in name.split("."):
        q.append(len(part))
        q.extend(part.encode())
    q.extend(bytes((0, qtype >> 8, qtype & 255, 0, 1)))
    return bytes(q)


def test_every_a_query_is_answered_with_the_board():
    q = _query("connectivitycheck.gstatic.com")
    r = answer(q, IP)
    assert r[:2] == q[:2]  # the id
    assert r[2] & 0x80 and r[2] & 0x01  # a response; recursion desired copied
    assert r[3] & 0x0F == 0  # no error
    assert r[4:8] == b"\x00\x01\x00\x01"  # one question, one answer
    assert r[12:len(q)] == q[12:]  # the question repeated
    assert r[-4:] == IP and r[-6:-4] == b"\x00\x04"
    assert r[len(q):len(q) + 2] == b"\xc0\x0c"  # the name, by pointer to the question


def test_other_types_get_an_empty_answer_so_phones_fall_back_to_ipv4():
    for qtype in (28, 16, 65):  # AAAA, TXT, HTTPS
        r = answer(_query("captive.apple.com", qtype), IP)
        assert r[6:8] == b"\x00\x00" and r[3] & 0x0F == 0 and IP not in r


def test_what_is_not_a_plain_query_is_ignored():
    good = _query("a.b")
    assert answer(good, IP) is not None
    assert answer(b"", IP) is None
    assert answer(good[:12], IP) is None  # no question
    assert answer(good[:-2], IP) is None  # cut short
    assert answer(_query("a.b", flags=0x8180), IP) is None  # a response
    assert answer(_query("a.b", flags=0x2800), IP) is None  # an UPDATE
    two = bytearray(good)
    two[5] = 2
    assert answer(bytes(two), IP) is None
    looped = bytearray(good)
    looped[12] = 0xC0  # a pointer inside the question
    assert answer(bytes(looped), IP) is None
    endless = good[:12] + b"\x3f" + b"x" * 10  # a label longer than the message
    assert answer(endless, IP) is None


class _WLAN:
    """network.WLAN as the esp32 port has it (ports/esp32/network_wlan.c):
    the same names, arguments and refusals."""

    scan_result = []
    status_code = 1001
    _config_keys = ("mac", "ssid", "essid", "hidden", "key", "password", "authmode",
                    "channel", "hostname", "dhcp_hostname", "max_clients", "reconnects",
                    "txpower", "protocol", "pm")

    def __init__(self, interface=0):
        if interface not in (0, 1):
            raise ValueError("invalid WLAN interface identifier")
        self.interface = interface
        self._active = False
        self.configured = {}
        self.joined = None

    def active(self, *on):
        if len(on) > 1:
            raise TypeError("function takes at most 2 positional arguments")
        if on:
            self._active = bool(on[0])
        return self._active

    def connect(self, ssid=None, key=None, *, bssid=None):
        if not self._active:
            raise OSError("Wifi Not Started")  # ESP_ERR_WIFI_NOT_STARTED
        if not isinstance(ssid, str) or not isinstance(key, str):
            raise TypeError("can't convert to str implicitly")
        self.joined = (ssid, key)

    def disconnect(self):
        if not self._active:
            raise OSError("Wifi Not Started")
        self.joined = None

    def isconnected(self):
        return self.status_code == 1010

    def config(self, *args, **kwargs):
        if args and kwargs:
            raise TypeError("either pos or kw args are allowed")
        for key in list(args) + list(kwargs):
            if key not in self._config_keys:
                raise ValueError("unknown config param")
        if args:
            if args[0] == "mac":
                return b"\x24\x6f\x28\xab\xcd\xef"
            return self.configured.get(args[0])
        password = kwargs.get("password", kwargs.get("key"))
        if kwargs.get("authmode", 0) != 0 and (password is None or len(password) < 8):
            raise OSError("Wifi Invalid Password")  # ESP_ERR_WIFI_PASSWORD
        self.configured.update(kwargs)

    def scan(self):
        if not self._active:
            raise OSError("STA must be active")  # as the esp32 port says
        return self.scan_result

    def status(self, param=None):
        if param is None:
            return self.status_code if self.interface == 0 else None
        if param != "rssi":
            raise ValueError("unknown status param")
        return -55

    def ifconfig(self):
        return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "0.0.0.0")


class _Network:
    STA_IF, AP_IF = 0, 1
    STAT_IDLE, STAT_CONNECTING, STAT_GOT_IP = 1000, 1001, 1010
    STAT_BEACON_TIMEOUT, STAT_NO_AP_FOUND, STAT_WRONG_PASSWORD = 200, 201, 202
    STAT_ASSOC_FAIL, STAT_HANDSHAKE_TIMEOUT = 203, 204
    AUTH_OPEN, AUTH_WPA2_PSK = 0, 3
    WLAN = _WLAN
    name = None

    @staticmethod
    def hostname(*name):
        if name:
            if len(name[0]) >= 32:  # MICROPY_PY_NETWORK_HOSTNAME_MAX_LEN
                raise ValueError("hostname too long")
            _Network.name = name[0]
        return _Network.name


class _Machine:
    class Pin:
        OUT = 1

        def __init__(self, *args):
            pass


def _esp32_wifi():
    if sys.platform == "esp32":
        vmtest.skip("the stand-in would shadow the board's own network module")
    stand_ins = {"esp32": object(), "network": _Network, "machine": _Machine}
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    try:
        namespace = {"__name__": "esp32_board"}
        with open(ESP32_SOURCE) as f:
            exec(f.read(), namespace)
        return namespace["WiFi"]()
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module


def test_esp32_scan_switches_the_station_on_and_leaves_hidden_and_odd_names_out():
    wifi = _esp32_wifi()
    _WLAN.scan_result = [
        (b"Home", b"\x01" * 6, 6, -48, 3, False),
        (b"", b"\x02" * 6, 1, -60, 3, True),  # hidden
        (b"Cafe", b"\x03" * 6, 11, -80, 0, False),  # open
        (b"\xff\xfe", b"\x04" * 6, 1, -70, 3, False),  # not UTF-8
    ]
    assert wifi.scan() == [("Home", -48, True), ("Cafe", -80, False)]
    assert wifi.sta.active()


def test_esp32_join_failures_are_named_for_a_person():
    wifi = _esp32_wifi()
    for code, reason in ((202, "wrong password"), (201, "network not found"),
                         (204, "wrong password"), (200, "the network stopped answering"),
                         (210, "network not found (none with a security mode the board supports)"),
                         (212, "the network's signal is too weak here"),
                         (1001, None), (1010, None)):
        _WLAN.status_code = code
        assert wifi.failure() == reason, code
    assert wifi.ap_ip() is None  # the access point is off
    wifi.ap.active(True)
    assert wifi.ap_ip() == "192.168.4.1"


def test_esp32_access_point_is_open_or_wpa2_with_the_name_given():
    wifi = _esp32_wifi()
    assert wifi.mac_suffix() == "cdef"
    assert wifi.start_ap("camwatch-cdef", "") == "192.168.4.1"
    assert wifi.ap_active() and wifi.ap_ip() == "192.168.4.1"
    assert wifi.ap.configured == {"essid": "camwatch-cdef", "authmode": _Network.AUTH_OPEN}
    wifi.stop_ap()
    assert wifi.ap_ip() is None
    wifi.start_ap("camwatch-cdef", "long enough")
    assert wifi.ap.configured["authmode"] == _Network.AUTH_WPA2_PSK
    assert wifi.ap.configured["password"] == "long enough"


def test_esp32_join_names_the_board_and_starts_the_station():
    wifi = _esp32_wifi()
    _WLAN.status_code = 1001
    wifi.connect("Home", "pw", "garage-cam")
    assert _Network.name == "garage-cam"  # the mDNS name: garage-cam.local
    assert wifi.sta.active() and wifi.sta.joined == ("Home", "pw")
    assert not wifi.isconnected() and wifi.rssi() is None
    _WLAN.status_code = 1010
    assert wifi.isconnected() and wifi.rssi() == -55
    wifi.disconnect()
    assert wifi.sta.joined is None
    wifi.connect("Home", "pw", "x" * 32)  # a name the port refuses still joins
    assert wifi.sta.joined == ("Home", "pw")
