"""Setting a board up from a phone: its first admin password, its Wi-Fi,
and the captive portal that opens the setup page by itself.

Claiming: a board with no admin password takes one, once, through
``POST /api/claim``, from a client on the board's own access point at any
time, or from anyone within ``board.claim_window_s`` (10 minutes) of boot.
After that, every change needs the password, as before.

Setup: ``GET /api/wifi/scan`` lists the networks in reach and
``POST /api/setup`` saves a network, its password and (on an unclaimed
board) the admin password in one atomic save, then joins. ``GET /api/wifi``
says how the join went; the access point stays up for ``LINGER_S`` after a
join works, so the phone that did the setup reads where the board went.

Captive portal: while the access point is up, a DNS responder
(``camwatch.dns``, imported only then) gives every name the board's address,
and the phones' connectivity checks are redirected to ``/setup.html``.
"""

import asyncio
import time

from microdot import Response

from camwatch.settings import SettingsError, check, password_hash

LINGER_S = 120
SCAN_CACHE_MS = 10000
ADMIN_MIN = 8  # characters of an admin password
ADMIN_MAX = 64

# Connectivity checks of phones and laptops: a redirect instead of their
# expected answer makes them open the setup page by themselves.
PROBES = (
    "/generate_204", "/gen_204",  # Android, Chrome
    "/hotspot-detect.html", "/library/test/success.html",  # Apple
    "/connecttest.txt", "/ncsi.txt", "/redirect",  # Windows
    "/canonical.html", "/success.txt",  # Firefox
    "/check_network_status.txt",  # Kindle
)


def _same_subnet(a, b):
    # the access point's clients share its /24 (192.168.4.x on an ESP32)
    return a.rsplit(".", 1)[0] == b.rsplit(".", 1)[0]


class Portal:
    """Adds the claim, Wi-Fi setup and captive-portal routes to ``app``."""

    def __init__(self, app):
        self.app = app
        self.booted = time.ticks_ms()
        self.dns = None
        self._scan = None
        self._scanned = 0
        add_routes(self, app.web)

    # -- who may set the board up -------------------------------------------

    def on_ap(self, ip):
        """True when a client at ``ip`` reaches the board over its own AP."""
        ap_ip = self.app.board.wifi.ap_ip()
        return ap_ip is not None and _same_subnet(ip, ap_ip)

    def refusal(self, ip):
        """Why ``ip`` may not claim the board now, or None when it may."""
        if self.app.settings["admin_hash"]:
            return "this board has an admin password already"
        window = self.app.board.claim_window_s
        if self.on_ap(ip) or time.ticks_diff(time.ticks_ms(), self.booted) < window * 1000:
            return None
        return ("a first admin password is taken only in the %d minutes after the board "
                "starts, or from its own access point: restart the board (power it off and "
                "on) and set it then" % (window // 60))

    def claim_values(self, password):
        """Settings values that make ``password`` the admin password."""
        import binascii
        import os

        if not isinstance(password, str) or not ADMIN_MIN <= len(password) <= ADMIN_MAX:
            raise SettingsError("admin_password", "must be %d to %d characters"
                                % (ADMIN_MIN, ADMIN_MAX))
        salt = binascii.hexlify(os.urandom(8)).decode()
        return {"admin_salt": salt, "admin_hash": password_hash(salt, password)}

    def scan(self):
        now = time.ticks_ms()
        if self._scan is None or time.ticks_diff(now, self._scanned) > SCAN_CACHE_MS:
            self._scan = self.app.wifi.scan()
            self._scanned = time.ticks_ms()
        return self._scan

    def setup_url(self):
        board = self.app.board
        port = board.http_bind(self.app.settings["http_port"])[1]
        ip = board.wifi.ap_ip() or self.app.wifi.ip or "192.168.4.1"
        return "http://%s%s/setup.html" % (ip, "" if port == 80 else ":%d" % port)

    # -- the captive portal's DNS ---------------------------------------------

    async def run(self):
        if not self.app.settings["admin_hash"]:
            print("camwatch: no admin password is set: open the dashboard, Settings, and set "
                  "one (taken in the %d minutes after boot, or from the board's own access "
                  "point)" % (self.app.board.claim_window_s // 60))
        radio = self.app.board.wifi
        while True:
            ip = radio.ap_ip() if radio.ap_active() else None
            if ip and self.dns is None:
                from camwatch.dns import Responder

                host, port = self.app.board.dns_bind()
                self.dns = Responder(ip, host, port)
                asyncio.create_task(self._serve_dns(self.dns))
                print("camwatch: captive portal: every DNS name is %s (udp port %d); setup "
                      "page %s" % (ip, port, self.setup_url()))
            elif ip is None and self.dns is not None:
                self.dns.stop()
                self.dns = None
            await asyncio.sleep(1)

    async def _serve_dns(self, dns):
        try:
            await dns.run()
        except OSError as exc:  # the port is taken, or the radio went away
            self.app.status.report("warning", "captive portal DNS stopped: %r" % exc)
            if self.dns is dns:
                self.dns = None


def add_routes(portal, web):
    app = portal.app

    def body_of(request):
        try:
            body = request.json
        except ValueError:
            body = None
        return body if isinstance(body, dict) else None

    @web.post("/api/claim")
    async def claim(request):
        body = body_of(request)
        if body is None:
            return {"error": "send JSON: {\"password\": \"<new admin password>\"}",
                    "field": "body", "reason": "must be a JSON object"}, 400
        why = portal.refusal(request.client_addr[0])
        if why:
            return {"error": why}, 403
        try:
            values = portal.claim_values(body.get("password"))
        except SettingsError as exc:
            return {"error": str(exc), "field": "password", "reason": exc.reason}, 400
        app.settings.provision(values)
        app.status.report("settings", "admin password set from the page", {"changed": []})
        return {"admin_password_set": True}

    @web.get("/api/wifi")
    async def wifi(request):
        w = app.wifi
        radio = app.board.wifi
        return {"state": w.state, "ip": w.ip, "ssid": w.ssid, "reason": w.reason,
                "joining": w.joining, "network": app.settings["wifi_ssid"],
                "hostname": app.settings["hostname"],
                "ap": w.ap_name() if radio.ap_active() else None,
                "admin_password_set": bool(app.settings["admin_hash"])}

    @web.get("/api/wifi/scan")
    async def scan(request):
        if app.settings["admin_hash"] and not radio_ap(app):
            return {"error": "scanning is for setting the board up, from its own access "
                             "point; change the network in Settings"}, 403
        try:
            return {"networks": portal.scan()}
        except OSError as exc:
            return {"error": "scan failed: %r; try again" % exc}, 503

    @web.post("/api/setup")
    async def setup(request):
        body = body_of(request)
        if body is None:
            return {"error": "send JSON: {\"ssid\", \"wifi_password\", \"admin_password\"}",
                    "field": "body", "reason": "must be a JSON object"}, 400
        ip = request.client_addr[0]
        values = {}
        try:
            values["wifi_ssid"] = check("wifi_ssid", body.get("ssid"))
            if not values["wifi_ssid"]:
                raise SettingsError("ssid", "choose a network")
            values["wifi_password"] = check("wifi_password", body.get("wifi_password", ""))
        except SettingsError as exc:
            field = "ssid" if exc.field == "wifi_ssid" else exc.field
            return {"error": str(exc), "field": field, "reason": exc.reason}, 400
        if app.settings["admin_hash"]:
            wait = app.guard.check(ip)
            if wait:
                return app.guard.refusal(wait)
            if not app.settings.check_password(body.get("password")):
                app.guard.failed(ip)
                return {"error": "wrong admin password", "field": "password"}, 401
            app.guard.passed(ip)
        else:
            why = portal.refusal(ip)
            if why:
                return {"error": why}, 403
            try:
                values.update(portal.claim_values(body.get("admin_password")))
            except SettingsError as exc:
                return {"error": str(exc), "field": "admin_password", "reason": exc.reason}, 400
        app.settings.provision(values)
        app.status.report("settings", "Wi-Fi set up: joining " + values["wifi_ssid"],
                          {"changed": ["wifi_ssid"]})
        app.wifi.rejoin(linger_s=LINGER_S)
        host = app.settings["hostname"]
        return {"saved": True, "ssid": values["wifi_ssid"], "hostname": host,
                "next": "http://%s.local/" % host}

    def probe(request):
        if not radio_ap(app):
            return {"error": "not found"}, 404
        return Response("", 302, {"Location": portal.setup_url(), "Cache-Control": "no-store"},
                        reason="Found")

    for path in PROBES:
        web.get(path)(probe)


def radio_ap(app):
    return app.board.wifi.ap_active()
