"""Live view, snapshots and the camera's controls.

- ``GET /snapshot``: one JPEG of what the camera sees (colour where the
  sensor gives colour), taken in one piece: never a torn frame.
- ``GET /stream``: MJPEG (``multipart/x-mixed-replace``), what an ``<img>``
  tag, VLC and Home Assistant's MJPEG camera play, at most ``stream_fps``
  frames a second, to at most ``viewers_max`` viewers at once; the next one
  gets ``503`` with ``Retry-After``. A viewer whose socket takes nothing for
  ``STALL_S`` seconds is dropped (its connection reset), as a stalled
  ``/events`` client is.
- ``GET /api/live``: viewers now and the cap, and the camera's controls
  (kind, range or choices) for the page.
- The camera's controls (``camwatch.board.controls()``: framesize, JPEG
  quality, brightness, ... and the flash LED where the board has one) are
  settings: checked like any other, applied to the running camera when
  saved and to every camera the app starts.

Sockets: each viewer holds one (``viewers_max``, 1 on the ESP32 boards, is
counted in the socket budget of ARCHITECTURE.md); a snapshot holds one for
the length of one request, like any page request.
"""

import asyncio
import time

from microdot import Response

from camwatch import board as board_layer
from camwatch.settings import declare

CONTROLS = board_layer.controls()
declare(CONTROLS)
declare({"stream_fps": ("int", 1, 25, 10), "viewers_max": ("int", 0, 4, 1)})

STALL_S = 5  # a viewer whose socket takes nothing this long is dropped
RETRY_S = 10  # Retry-After for a viewer over the cap
FLASH_MS = 150  # the flash LED is lit this long before a snapshot is taken
CHUNK = 2048  # bytes per socket write: what the stream may have to copy
FIRST_BUFFER = 2048  # first size of a picture buffer; grown when a picture needs more (a
# 160x120 JPEG of ours is about 1.2 KB; the ESP32 sensor's grow it once)
SNDBUF = 16384  # a viewer's socket buffers at most this (where the stack lets us set it), so
# a viewer that stops reading is noticed within seconds, not megabytes

_STREAM_HEAD = (b"HTTP/1.0 200 OK\r\n"
                b"Content-Type: multipart/x-mixed-replace; boundary=frame\r\n"
                b"Cache-Control: no-store\r\n"
                b"X-Content-Type-Options: nosniff\r\n\r\n")
# A part's head; the length is written into its last 7 places, right-aligned
# (spaces before a header value are allowed): nothing allocated per frame.
_PART = b"\r\n--frame\r\nContent-Type: image/jpeg\r\nContent-Length:        \r\n\r\n"
_DIGITS = 7


def _put_length(head, n):
    end = len(head) - 4
    i = end - 1
    for _ in range(_DIGITS):
        head[i] = 48 + n % 10 if n or i == end - 1 else 32
        n //= 10
        i -= 1


def _abort(writer):
    # reset the connection: a stalled peer's buffers are freed now
    try:
        import socket

        writer.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    except Exception:
        pass
    try:
        writer.s.close()
    except Exception:
        pass


class _Viewer:
    def __init__(self, writer):
        self.writer = writer
        self.task = asyncio.current_task()
        self.blocked_at = None  # ticks_ms when the pending write started
        self.stalled = False


class Live:
    """The live view capability; ``app``: the App (web, settings, board,
    status, camera)."""

    def __init__(self, app):
        self.app = app
        self.viewers = []
        self.frames = 0  # frames sent to viewers since boot
        self.dropped = 0  # viewers dropped as stalled
        self._picture = None  # the snapshot buffer, made at the first snapshot
        self._lock = asyncio.Lock()  # one snapshot at a time uses it
        self._ticker = None
        self._watched = []  # viewers and snapshots being sent: the ticker checks them
        web = app.web
        web.get("/snapshot")(self.snapshot)
        web.get("/stream")(self.stream)
        web.get("/api/live")(self.info)
        flash = app.settings.values.get("flash")
        if flash == "on":
            app.board.led("flash", True)

    # -- settings -------------------------------------------------------------

    def camera_started(self, cam):
        """Apply every control to a camera the app just started."""
        self._apply(cam, [k for k in CONTROLS if k != "flash"])

    def settings_changed(self, changed):
        if "flash" in changed:
            self.app.board.led("flash", self.app.settings["flash"] == "on")
        cam = self.app.camera
        if cam is not None:
            self._apply(cam, [k for k in changed if k in CONTROLS and k != "flash"])

    def _apply(self, cam, keys):
        settings = self.app.settings
        for key in keys:
            try:
                cam.set(key, settings[key])
            except (ValueError, OSError) as exc:
                self.app.status.report("warning", "camera: %s=%r not applied (%s)"
                                       % (key, settings[key], exc))

    # -- pictures -------------------------------------------------------------

    def _take(self, cam, buf, fresh=False):
        """A JPEG into ``buf`` (grown when it does not fit); (buf, length)."""
        n = cam.jpeg_into(buf, fresh)
        if n > len(buf):
            buf = bytearray(n + n // 4)
            n = cam.jpeg_into(buf, fresh)
            if n > len(buf):
                raise OSError(5, "camera: picture larger than announced")
        return buf, n

    async def with_picture(self, use):
        """Take a JPEG into the shared picture buffer and ``await
        use(memoryview)`` while holding it (one user at a time: the
        snapshot route, the MQTT picture). Raises OSError without a camera
        or a picture."""
        cam = self.app.camera
        if cam is None:
            raise OSError(19, "camera not running")  # ENODEV
        async with self._lock:
            self._picture, n = self._take(cam, self._picture or bytearray(FIRST_BUFFER))
            await use(memoryview(self._picture)[:n])

    async def snapshot(self, request):
        cam = self.app.camera
        if cam is None:
            return {"error": "camera not running", "camera": self.app.camera_state}, 503
        async with self._lock:
            flash = self.app.settings.values.get("flash") == "snapshot"
            try:
                if flash:
                    self.app.board.led("flash", True)
                    await asyncio.sleep_ms(FLASH_MS)
                cam = self.app.camera
                if cam is None:
                    return {"error": "camera not running", "camera": self.app.camera_state}, 503
                self._picture, n = self._take(cam, self._picture or bytearray(FIRST_BUFFER),
                                              flash)
            except OSError as exc:
                return {"error": "snapshot failed: %r" % exc}, 503
            finally:
                if flash:
                    self.app.board.led("flash", False)
            viewer = _Viewer(request.sock[1])  # watched by the ticker like a stream

            async def send():
                await self._send(viewer, ("HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n"
                                          "Cache-Control: no-store\r\nContent-Length: %d\r\n\r\n"
                                          % n).encode())
                await self._send(viewer, memoryview(self._picture)[:n])

            await self._writing(viewer, send())
        return Response.already_handled

    async def stream(self, request):
        app = self.app
        cap = app.settings["viewers_max"]
        if len(self.viewers) >= cap:
            return ({"error": "someone else is watching" if cap else "live view is off",
                     "viewers": len(self.viewers), "viewers_max": cap},
                    503, {"Retry-After": str(RETRY_S)})
        if app.camera is None:
            return ({"error": "camera not running", "camera": app.camera_state}, 503,
                    {"Retry-After": str(RETRY_S)})
        if app.heap_too_low():  # a viewer needs a picture buffer: not now
            return ({"error": "low on memory; try again shortly"}, 503,
                    {"Retry-After": str(RETRY_S)})
        writer = request.sock[1]
        try:
            import socket

            writer.s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        except Exception:  # lwIP builds without SO_SNDBUF: its buffers are small anyway
            pass
        viewer = _Viewer(writer)

        async def play():
            head = bytearray(_PART)
            buf = bytearray(FIRST_BUFFER)
            await self._send(viewer, _STREAM_HEAD)
            while True:
                start = time.ticks_ms()
                cam = app.camera
                if cam is not None:
                    buf, n = self._take(cam, buf)
                    _put_length(head, n)
                    await self._send(viewer, head)
                    await self._send(viewer, memoryview(buf)[:n])
                    self.frames += 1
                wait = 1000 // app.settings["stream_fps"] - time.ticks_diff(time.ticks_ms(), start)
                await asyncio.sleep_ms(wait if wait > 0 else 0)

        self.viewers.append(viewer)
        try:
            await self._writing(viewer, play())
        finally:
            self.viewers.remove(viewer)
        return Response.already_handled

    async def info(self, request):
        specs = {}
        for key, (kind, low, high, _) in CONTROLS.items():
            specs[key] = {"kind": kind, "choices": low} if kind == "choice" else \
                {"kind": kind, "min": low, "max": high} if kind == "int" else {"kind": kind}
        return {"viewers": len(self.viewers), "viewers_max": self.app.settings["viewers_max"],
                "stream_fps": self.app.settings["stream_fps"], "frames": self.frames,
                "dropped": self.dropped, "controls": specs}

    # -- writing, and dropping a peer that takes nothing ------------------------

    async def send_whole(self, request, head, body):
        """Answer ``request`` with ``head`` and ``body`` (bytes-like) written
        at once: what the socket does not take is copied by the stream, so
        a buffer reused meanwhile cannot tear the answer. Then wait for it
        to go out, dropping a peer that takes nothing for ``STALL_S``."""
        viewer = _Viewer(request.sock[1])

        async def send():
            viewer.writer.write(head)
            viewer.writer.write(body)
            viewer.blocked_at = time.ticks_ms()
            await viewer.writer.drain()

        await self._writing(viewer, send())
        return Response.already_handled

    async def _writing(self, viewer, work):
        """Await ``work``, which writes to ``viewer``, watched for stalls: a
        socket error or a stall drop resets the connection; any other
        cancellation goes on up."""
        self._watch(viewer)
        try:
            await work
        except OSError:
            _abort(viewer.writer)
        except asyncio.CancelledError:
            _abort(viewer.writer)
            if not viewer.stalled:
                raise
        finally:
            self._unwatch(viewer)

    async def _send(self, viewer, data):
        # in pieces: a piece the socket does not take at once is copied by
        # the stream, so a piece is the most one write can allocate
        writer = viewer.writer
        mv = memoryview(data)
        for i in range(0, len(mv), CHUNK):
            writer.write(mv[i:i + CHUNK])
            viewer.blocked_at = time.ticks_ms()
            await writer.drain()
            viewer.blocked_at = None

    def _watch(self, viewer):
        self._watched.append(viewer)
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())

    def _unwatch(self, viewer):
        self._watched.remove(viewer)
        if not self._watched and self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    async def _tick(self):
        while True:
            await asyncio.sleep_ms(500)
            now = time.ticks_ms()
            for viewer in self._watched:
                since = viewer.blocked_at
                if since is not None and not viewer.stalled and \
                        time.ticks_diff(now, since) >= STALL_S * 1000:
                    viewer.stalled = True
                    self.dropped += 1
                    viewer.task.cancel()
