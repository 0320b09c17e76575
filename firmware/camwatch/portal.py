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
(``camwatch.dns``) gives every name the board's address, and the phones'
connectivity checks are redirected to ``/setup.html`` (``redirect()``, asked
by the dashboard's catch-all route).

The App loads this module on first use (``App.setup()``): its routes in
camwatch.app are thin, so a board that is set up and on its network never
holds any of this in its heap.
"""

import asyncio
import time

from microdot import Response

from camwatch.settings import SettingsError, check, password_hash

LINGER_S = 120
SCAN_CACHE_MS = 10000  # a phone's page may ask again and again: the ESP32 stalls ~2 s per scan
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
    """Claim, Wi-Fi setup and captive portal for ``app`` (see the module)."""

    def __init__(self, app):
        self.app = app
        self.dns = None
        self._scan = None
        self._scanned = 0

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
        if self.on_ap(ip) or time.ticks_diff(time.ticks_ms(), self.app.booted) < window * 1000:
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

    def setup_url(self):
        board = self.app.board
        port = board.http_bind(self.app.settings["http_port"])[1]
        ip = board.wifi.ap_ip() or self.app.wifi.ip or "192.168.4.1"
        return "http://%s%s/setup.html" % (ip, "" if port == 80 else ":%d" % port)

    def redirect(self, path):
        """The redirect to the setup page if ``path`` (a path no route
        serves) is a connectivity check and the access point is up, else
        None. (One lookup instead of a route per check: routes cost heap.)"""
        if "/" + path not in PROBES or not self.app.board.wifi.ap_active():
            return None
        return Response("", 302, {"Location": self.setup_url(), "Cache-Control": "no-store"},
                        reason="Found")

    # -- the routes (camwatch.app hands requests here) -------------------------

    def claim(self, request):
        body = _body(request)
        if body is None:
            return {"error": "send JSON: {\"password\": \"<new admin password>\"}",
                    "field": "body", "reason": "must be a JSON object"}, 400
        why = self.refusal(request.client_addr[0])
        if why:
            return {"error": why}, 403
        try:
            values = self.claim_values(body.get("password"))
        except SettingsError as exc:
            return {"error": str(exc), "field": "password", "reason": exc.reason}, 400
        self.app.settings.provision(values)
        self.app.status.report("settings", "admin password set from the page", {"changed": []})
        return {"admin_password_set": True}

    def scan(self, request):
        app = self.app
        if app.settings["admin_hash"] and not app.board.wifi.ap_active():
            return {"error": "scanning is for setting the board up, from its own access "
                             "point; change the network in Settings"}, 403
        try:
            now = time.ticks_ms()
            if self._scan is None or time.ticks_diff(now, self._scanned) > SCAN_CACHE_MS:
                self._scan = app.wifi.scan()
                self._scanned = time.ticks_ms()
        except OSError as exc:
            return {"error": "scan failed: %r; try again" % exc}, 503
        return {"networks": self._scan}

    def setup(self, request):
        app = self.app
        body = _body(request)
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
            why = self.refusal(ip)
            if why:
                return {"error": why}, 403
            try:
                values.update(self.claim_values(body.get("admin_password")))
            except SettingsError as exc:
                return {"error": str(exc), "field": "admin_password", "reason": exc.reason}, 400
        app.settings.provision(values)
        app.status.report("settings", "Wi-Fi set up: joining " + values["wifi_ssid"],
                          {"changed": ["wifi_ssid"]})
        app.wifi.rejoin(linger_s=LINGER_S)
        host = app.settings["hostname"]
        return {"saved": True, "ssid": values["wifi_ssid"], "hostname": host,
                "next": "http://%s.local/" % host}

    # -- the captive portal's DNS ---------------------------------------------

    def ap_changed(self, up):
        """The access point went up (start answering DNS) or down (stop)."""
        ip = self.app.board.wifi.ap_ip() if up else None
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

    async def _serve_dns(self, dns):
        try:
            await dns.run()
        except OSError as exc:  # the port is taken, or the radio went away
            self.app.status.report("warning", "captive portal DNS stopped: %r" % exc)
            if self.dns is dns:
                self.dns = None


def _body(request):
    try:
        body = request.json
    except ValueError:
        body = None
    return body if isinstance(body, dict) else None
