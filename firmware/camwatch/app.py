"""Wiring: the board, settings, hub, loops and web server, run on one loop.

The detection loop and the telemetry loop publish into the hub; every
/events stream reads from it. Routes only connect requests to the hub, the
settings and the board.
"""

import asyncio
import gc
import json
import time

import camwatch
from camwatch import board as board_layer
from camwatch.clock import Clock  # declares its settings: before Settings()
from camwatch.guard import Guard
from camwatch.mqtt import Mqtt  # declares its settings: before Settings()
from camwatch.live import Live
from camwatch.settings import DETECTION, RESTART, Settings, SettingsError
from camwatch.static import Files
from camwatch.status import Status
from camwatch.telemetry import Telemetry
from camwatch.wifi import WiFi
from microdot import Response
from ssehub import Hub, Server

CAMERA_BACKOFF_MAX_S = 30
WATCHDOG_MS = 30000
REQUEST_TIMEOUT_S = 5  # a connection that sends no request in this long is closed
# POST /api/settings when the full answer does not fit in the heap (the page
# then keeps the values it sent)
SAVED = b'{"settings": null, "changed": null, "saved": true}'
JSON_TYPE = {"Content-Type": "application/json; charset=UTF-8"}


class App:
    """The whole application; ``run()`` starts it.

    It composes; capabilities do. A capability (live view, MQTT, the portal,
    ...) is a module of its own that declares its settings keys at import
    (``settings.declare``), takes what it needs from the App (``hub``,
    ``settings``, ``status``, ``board``, ``web``) and is added with
    ``app.add(part)``: its optional ``run()`` coroutine becomes a task at
    start, its optional ``settings_changed(changed)`` hears every saved
    change, and its optional ``camera_started(cam)`` every camera the app
    starts. Its routes go on ``app.web`` before the dashboard's catch-all.
    """

    def __init__(self):
        gc.collect()
        self.board = board = board_layer.load()
        overrides = {"streams_max": board.info["streams_max"],
                     "viewers_max": board.info.get("viewers_max", 1)}
        overrides.update(board.settings_overrides)
        self.settings = Settings(overrides=overrides)
        self._load_warnings = self.settings.load()
        s = self.settings
        self.hub = Hub(size=s["ring_size"], max_clients=s["streams_max"],
                       heartbeat=s["heartbeat_s"], sndbuf=board.stream_sndbuf)
        self.status = Status(self.hub)
        self.fps = 0.0
        self.camera_state = "starting"
        self.camera = None
        self.detector = None
        self.telemetry = Telemetry(board, self.hub, s, self.status, lambda: self.fps)
        self.wifi = WiFi(board, s, self.status, self._network_changed, self._ap_changed)
        self.booted = time.ticks_ms()
        self.portal = None  # camwatch.portal, loaded by setup() when first needed
        self.web = Server(request_timeout=REQUEST_TIMEOUT_S)
        # an upload is read by camwatch.update, 64 KB at most (its MAX_FILE)
        self.web.stream_body("PUT", "/api/update/files/", 65536)
        self.guard = Guard()  # every password check goes through it
        self._net_up = asyncio.Event()
        self._net_down = asyncio.Event()
        self.parts = []
        self._heap_short = False  # new streams refused for want of heap
        add_routes(self)
        # capabilities: each owns its routes, task and settings keys
        self.clock = self.add(Clock(self))
        self.add(Mqtt(self))
        self.live = self.add(Live(self))
        self.episodes = None  # camwatch.episodes: loaded by thumbnails() at a motion start
        self._no_thumbs = False  # said that the heap could not spare it
        add_static(self)  # last: its route matches every path

    def add(self, part):
        """Add a capability: ``part.run()`` (if any) starts with the app,
        ``part.settings_changed(changed)`` (if any) hears every change."""
        self.parts.append(part)
        return part

    # -- network and server ---------------------------------------------------

    def setup(self):
        """Claim, Wi-Fi setup and the captive portal (camwatch.portal), loaded
        on first use: a board that is set up and on its network never holds
        it in its heap."""
        if self.portal is None:
            from camwatch.portal import Portal

            self.portal = Portal(self)
        return self.portal

    def _ap_changed(self, up):
        if up or self.portal is not None:
            self.setup().ap_changed(up)

    def _network_changed(self, up):
        if up:
            self._net_down.clear()
            self._net_up.set()
        else:
            self._net_up.clear()
            self._net_down.set()

    def url(self):
        host, port = self.board.http_bind(self.settings["http_port"])
        ip = self.wifi.ip or host
        return "http://%s%s/" % (ip, "" if port == 80 else ":%d" % port)

    async def serve(self):
        """Serve while the board has an address; stop and drop streams when not."""
        while True:
            await self._net_up.wait()
            host, port = self.board.http_bind(self.settings["http_port"])
            task = asyncio.create_task(self.web.start_server(host=host, port=port))
            await asyncio.sleep_ms(0)
            print("camwatch: dashboard at " + self.url())
            await self._net_down.wait()
            self.web.shutdown()
            self.hub.close()
            try:
                await task
            except Exception as exc:  # the server failed; start again on the next up
                self.status.report("warning", "web server stopped: %r" % exc)

    # -- detection ------------------------------------------------------------

    def _camera(self, state, message):
        if state != self.camera_state:
            self.camera_state = state
            self.status.report("camera", message, {"state": state})

    async def detect(self):
        """Read frames, run the detector, publish motion; retry a failing
        camera with backoff while the rest of the board keeps working."""
        from camwatch.motion import Detector

        backoff = 1
        while True:
            cam = None
            try:
                cam = self.camera = self.board.camera()
                for part in self.parts:
                    if hasattr(part, "camera_started"):
                        part.camera_started(cam)
                if self.detector is None:
                    self.detector = Detector(cam.width, cam.height, self.detection_settings())
                else:
                    self.detector.reset()
                self._camera("ok", "camera running, %dx%d" % (cam.width, cam.height))
                backoff = 1
                await self._frames(cam, self.detector)
            except OSError as exc:
                self.fps = 0.0
                self._camera("error", "camera error %r; retrying in %d s" % (exc, backoff))
                if cam is not None:
                    cam.close()
                self.camera = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, CAMERA_BACKOFF_MAX_S)

    async def _frames(self, cam, detector):
        settings = self.settings
        frames = 0
        since = time.ticks_ms()
        frame_size = [cam.width, cam.height]
        while True:
            start = time.ticks_ms()
            event = detector.process(cam.capture(), start)
            if event is not None:
                kind, data = event
                data["frame"] = frame_size
                if kind == "light" or kind == "mask":
                    self._detection_status(kind, data)
                else:
                    data["phase"] = kind
                    data["t"] = time.ticks_diff(start, self.telemetry.started)  # uptime, ms
                    self.clock.stamp(data)
                    episodes = self.episodes or kind == "start" and self.thumbnails()
                    if episodes:
                        episodes.motion(kind, data, cam)  # thumbnails; adds "episode"
                    self.hub.publish(data, event="motion")
                    self.board.led("status", kind != "end")
            frames += 1
            spent = time.ticks_diff(time.ticks_ms(), since)
            if spent >= 2000:
                self.fps = frames * 1000 / spent
                frames = 0
                since = time.ticks_ms()
            wait = 1000 // settings["fps_max"] - time.ticks_diff(time.ticks_ms(), start)
            await asyncio.sleep_ms(wait if wait > 0 else 0)

    def _detection_status(self, kind, data):
        """A lighting change or a new automatic mask, as a status event."""
        if kind == "light":
            message = "lights changed: background rebuilt, detection paused %d ms" % data["pause_ms"]
        elif data["blocks"]:
            message = "auto mask: %d blocks of repetitive motion ignored" % data["blocks"]
        else:
            message = "auto mask: cleared"
        self.status.report(kind, message, data)

    def thumbnails(self):
        """camwatch.episodes, loaded when first needed and only while the
        heap can spare its ring (``thumbs_bytes``) with twice
        ``heap_warn_bytes`` besides: a board short of heap (MQTT and four
        phones on the virtual board) does without thumbnails rather than
        turn phones away. None until then; asked again at each motion."""
        s = self.settings
        if not s["episodes_max"]:
            return None
        gc.collect()
        free = gc.mem_free()
        if free < s["thumbs_bytes"] + 2 * s["heap_warn_bytes"]:
            if not self._no_thumbs:
                self._no_thumbs = True
                self.status.report("warning", "thumbnails: not kept for now, %d bytes of heap "
                                   "free (thumbs_bytes and twice heap_warn_bytes are needed)"
                                   % free)
            return None
        from camwatch.episodes import Episodes

        self.episodes = episodes = self.add(Episodes(self))
        asyncio.create_task(episodes.run())  # the microSD card's writer, where there is one
        return episodes

    def detection_settings(self):
        return {k: self.settings[k] for k in DETECTION}

    # -- settings -------------------------------------------------------------

    def apply_settings(self, changed):
        """Apply changed settings live where possible."""
        if self.detector is not None and any(k in DETECTION for k in changed):
            self.detector.configure(self.detection_settings())
        for part in self.parts:
            if hasattr(part, "settings_changed"):
                part.settings_changed(changed)
        later = [k for k in changed if k in RESTART]
        self.status.report("settings", "changed: " + ", ".join(changed)
                           + ("; applies after a restart: " + ", ".join(later) if later else ""),
                           {"changed": changed, "restart_needed": later})

    # -- the rest -------------------------------------------------------------

    def heap_too_low(self):
        """True when the heap cannot afford a new stream: under three
        quarters of ``heap_warn_bytes`` free after a collection (telemetry
        already warns at the whole of it), so what is left keeps the open streams, the API,
        MQTT and detection going. New streams are then told busy (the browser
        retries by itself), with one warning until the heap recovers. The
        motion thumbnails' ring gives its memory back first (``Episodes.shed``).

        Three quarters, because a busy board runs with less than
        ``heap_warn_bytes`` free for a moment (four streams, MQTT discovery and a motion picture
        at once: about 15 KB free on the virtual board) and must not turn a
        phone away for that."""
        need = self.settings["heap_warn_bytes"] * 3 >> 2
        if gc.mem_free() >= need:  # garbage counts as used: surely enough
            self._heap_short = False
            return False
        gc.collect()
        free = gc.mem_free()
        if free < need and self.episodes and self.episodes.shed():  # thumbnails give way
            gc.collect()
            free = gc.mem_free()
        if free >= need:
            self._heap_short = False
            return False
        if not self._heap_short:
            self._heap_short = True
            self.status.report("warning", "low heap: %d bytes free; new streams refused "
                               "until it recovers" % free, {"heap_free": free})
        return True

    def _after_deploy(self):
        # boot.py rolled the last deploy back, or it waits for this app to be
        # kept: camwatch.deployed reports the one and keeps the app after
        # confirm_s of serving (loaded only then)
        import os

        for name in (".previous", ".rolledback"):
            try:
                os.stat(name)
            except OSError:
                continue
            from camwatch import deployed

            asyncio.create_task(deployed.run(self))
            return

    async def watchdog(self):
        self.board.start_watchdog(WATCHDOG_MS)
        while True:
            self.board.feed_watchdog()
            await asyncio.sleep(WATCHDOG_MS // 3000)

    def status_json(self):
        stats = self.hub.stats()
        return {
            "version": camwatch.__version__,
            "board": self.board.info.get("id"),
            "uptime_s": self.telemetry.uptime_s(),
            "heap_free": self.telemetry.heap(),
            "heap_min_free": self.telemetry.heap_min_free,
            "clients": stats["clients"],
            "clients_max": stats["clients_max"],
            "fps": round(self.fps, 1),
            "camera": self.camera_state,
            "wifi": {"state": self.wifi.state, "ip": self.wifi.ip, "ssid": self.wifi.ssid},
            "last_event_id": stats["last_id"],
            "published": stats["published"],
            "dropped": stats["dropped"],
            "resyncs": stats["resyncs"],
            "warnings": self.status.warnings,
            "http_refused": self.web.refused,
            "password_failures": self.guard.failures,
            "auto_mask": self.auto_mask(),
            "micropython": self.micropython(),
        }

    def micropython(self):
        """What the board runs, for the deploy tool's ABI check (tools.abi):
        ``platform``, ``version``, ``_mpy`` (None on a port without .mpy
        support) and the chip in ``machine``."""
        import os
        import sys

        impl = sys.implementation
        try:
            machine = os.uname().machine
        except AttributeError:  # the unix port has no os.uname
            machine = ""
        return {"platform": sys.platform, "version": list(impl.version[:3]),
                "_mpy": getattr(impl, "_mpy", None), "machine": machine}

    def auto_mask(self):
        """The detector's automatic mask: ``{"rects": [[x, y, w, h], ...],
        "frame": [w, h]}`` (no rects when auto_mask is off or nothing moves
        all the time)."""
        det = self.detector
        if det is None:
            return {"rects": [], "frame": None}
        return {"rects": det.auto_mask_rects(), "frame": [det.width, det.height]}

    async def main(self):
        info = self.board.info
        self.status.report("boot", "camwatch %s on %s (%s reset)"
                           % (camwatch.__version__, info.get("name"), self.board.reset_cause()),
                           {"reason": self.board.reset_cause(), "version": camwatch.__version__,
                            "board": info.get("id")})
        for warning in self._load_warnings:
            self.status.report("warning", warning)
        self._after_deploy()
        if not self.settings["admin_hash"]:
            print("camwatch: no admin password is set: open the dashboard, Settings, and set "
                  "one (taken in the %d minutes after boot, or from the board's own access "
                  "point)" % (self.board.claim_window_s // 60))
        asyncio.create_task(self.watchdog())
        asyncio.create_task(self.wifi.run())
        asyncio.create_task(self.telemetry.run())
        asyncio.create_task(self.detect())
        for part in self.parts:
            if hasattr(part, "run"):
                asyncio.create_task(part.run())
        await self.serve()


def add_static(app):
    """The dashboard's files: ``/`` and every other path not routed before.

    Their list (web/assets.json: etag, size and type of each) is read per
    request rather than held: a page load is rare, the heap is always short.
    """
    files = Files()
    # web/ on the flash, else the ROMFS image's (a board with a romfs
    # partition): what is on the flash wins, as for imports
    web = None
    for folder in ("web/", "/rom/web/"):
        try:
            with open(folder + "assets.json") as f:
                json.load(f)
            web = folder
            break
        except (OSError, ValueError):
            pass
    if web is None:
        app._load_warnings.append("web/assets.json missing: the dashboard is not installed")

    def lookup(name):
        if web is None:
            return None
        try:
            with open(web + "assets.json") as f:
                return json.load(f).get(name)
        except (OSError, ValueError):
            return None

    def asset(request, name):
        meta = lookup(name)
        if meta is None:
            # a phone's connectivity check while the access point is up
            hit = app.board.wifi.ap_active() and app.setup().redirect(name)
            return hit or ({"error": "not found"}, 404)
        etag = '"' + meta["etag"] + '"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("If-None-Match") == etag:
            return "", 304, headers
        headers["Content-Type"] = meta["type"]
        headers["Content-Encoding"] = "gzip"
        headers["Content-Length"] = str(meta["size"])
        return files.body(web + name + ".gz"), 200, headers

    @app.web.get("/")
    async def index(request):
        return asset(request, "index.html")

    update = []  # camwatch.update, loaded by the first update request

    # every other path, and the update routes: they have no route of their
    # own, since each route costs the heap some hundred bytes
    @app.web.route("/<path:name>", methods=["GET", "PUT", "POST"])
    async def static(request, name):
        if name[:11] == "api/update/":
            if not update:
                from camwatch.update import Update

                update.append(Update(app))
            return await update[0].route(request, name[11:])
        if request.method != "GET":
            return {"error": "not found"}, 404
        return asset(request, name)


def add_routes(app):
    web = app.web

    @web.get("/events")
    async def events(request):
        return await app.hub.serve(request, busy=app.heap_too_low())

    # motion thumbnails: camwatch.episodes, once loaded (App.thumbnails)
    @web.get("/api/episodes")
    async def episodes(request):
        if app.episodes is None:
            return {"episodes": [], "episodes_max": app.settings["episodes_max"],
                    "loaded": False}
        return await app.episodes.list(request)

    @web.get("/episodes/<name>")
    async def picture(request, name):
        if app.episodes is None:
            return {"error": "no such picture (thumbnails not kept yet)"}, 404
        return await app.episodes.picture(request, name)

    @web.get("/api/status")
    async def status(request):
        return app.status_json()

    @web.get("/api/settings")
    async def get_settings(request):
        return app.settings.public()

    @web.post("/api/settings")
    async def post_settings(request):
        try:
            body = request.json
        except ValueError:  # not JSON, or not UTF-8
            return {"error": "the body is not valid JSON", "field": "body",
                    "reason": "not valid JSON"}, 400
        if not isinstance(body, dict):
            return {"error": "send JSON: {\"password\": ..., \"settings\": {...}}",
                    "field": "body", "reason": "must be a JSON object"}, 400
        for key in body:
            if key not in ("password", "settings"):
                return {"error": "unknown field " + key, "field": key,
                        "reason": "unknown field"}, 400
        ip = request.client_addr[0]
        wait = app.guard.check(ip)
        if wait:
            return app.guard.refusal(wait)
        if not app.settings.check_password(body.get("password")):
            if not app.settings["admin_hash"]:
                return {"error": "no admin password is set on this board: set one first "
                                 "(Settings, 'Set an admin password', or `make deploy`)"}, 403
            wait = app.guard.failed(ip)
            print("camwatch: wrong admin password from %s%s"
                  % (ip, "; next try in %d s" % wait if wait else ""))
            return {"error": "wrong admin password"}, 401
        app.guard.passed(ip)
        # A 503 for want of heap (ssehub.Server) must mean "nothing changed":
        # up to the save it does (a failed save changes nothing); after it,
        # the answer is made smaller instead.
        try:
            changed = app.settings.update(body.get("settings"))
        except SettingsError as exc:
            return {"error": str(exc), "field": exc.field, "reason": exc.reason}, 400
        except OSError as exc:  # the flash is full or failing
            return {"error": "the settings could not be saved (%r): nothing changed" % exc}, (
                507 if exc.errno == 28 else 500)  # ENOSPC
        if changed:
            try:
                app.apply_settings(changed)
            except MemoryError:  # saved: tell the parts once the garbage is gone
                gc.collect()
                app.apply_settings(changed)
        try:
            return Response({"settings": app.settings.public(), "changed": changed})
        except MemoryError:  # saved and applied: a short answer that says so
            gc.collect()
            return Response(SAVED, headers=JSON_TYPE)

    # setting the board up from a phone: camwatch.portal does the work
    @web.post("/api/claim")
    async def claim(request):
        return app.setup().claim(request)

    @web.post("/api/setup")
    async def setup(request):
        return app.setup().setup(request)

    @web.get("/api/wifi/scan")
    async def scan(request):
        return app.setup().scan(request)

    @web.get("/api/wifi")
    async def wifi(request):
        w = app.wifi
        return {"state": w.state, "ip": w.ip, "ssid": w.ssid, "reason": w.reason,
                "joining": w.joining, "network": app.settings["wifi_ssid"],
                "hostname": app.settings["hostname"],
                "ap": w.ap_name() if app.board.wifi.ap_active() else None,
                "admin_password_set": bool(app.settings["admin_hash"])}


def run():
    # Collect after every 8 KB allocated instead of only when the heap is
    # full: less garbage between collections, less fragmentation.
    gc.threshold(8192)
    app = App()
    asyncio.run(app.main())
