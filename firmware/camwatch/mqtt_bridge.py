"""The MQTT session behind camwatch.mqtt: loaded only when a broker is set.

``Bridge`` runs the client (PyPI ``chumicro-mqtt``, non-blocking: it never
waits on the network) in one task and reads the hub as a cursor, like an
``/events`` stream, so MQTT costs what one slow stream costs: events wait
in the hub's ring, and at most ``OUTBOX`` of them in a bounded outbox while
the broker is away or slow (oldest telemetry dropped first, counted).
Topics: see camwatch.mqtt.
"""

import asyncio
import errno
import gc
import json
import select
import socket
import sys
import time

from micropython import const

from camwatch import settings as settings_module
from camwatch.mqtt import COMMANDS, SESSION_KEYS

POLL_MS = const(100)  # how often the task runs the client and reads the hub
HANDLES_PER_POLL = const(16)  # client steps per poll while it has data to send
OUTBOX = const(16)  # events held while the broker is away or slow
WINDOW = const(8)  # QoS 1 messages sent and not yet acknowledged
KEEPALIVE_S = const(30)
REFUSED_RETRY_S = const(60)  # after the broker refused our credentials
RESTART_GUARD_MS = const(3000)  # a retained set/restart is not obeyed at connect
IMAGE_TIMEOUT_MS = const(10000)
_IO_WRITE = const(2)  # the client's io_interest() bit: it has data to send


class Connection:
    """The MQTT socket: the transport chumicro-mqtt's ``transport_factory``
    asks for (its connector contract: ``state``, ``tick()``, ``socket``,
    ``last_error``, ``cancel()``), and the non-blocking socket it then uses
    (``send``, ``recv_into``, ``close``, ``setblocking``), in one small
    object instead of the chumicro-sockets package (8.6 KB of heap on the
    64-bit VM where this takes about 1.5 KB).

    :param host: the broker's name or address. A name is resolved with
        ``getaddrinfo``, which blocks while it asks DNS (an address does not).
    :param port: the broker's TCP port.
    """

    def __init__(self, host, port):
        self.host = host
        self.port = port
        self.state = "awaiting_dns"
        self.socket = None  # self, once connected
        self.last_error = None
        self._sock = None
        self._poll = None

    # -- the connector ------------------------------------------------------

    @property
    def io_socket(self):
        return self._sock

    def io_interest(self, now_ms):
        return _IO_WRITE if self.state == "awaiting_tcp" else 0

    def next_deadline(self, now_ms):
        return None  # the client bounds the whole attempt itself

    def tick(self, now_ms):
        """One step: resolve and start connecting, then see if it is done."""
        try:
            if self.state == "awaiting_dns":
                address = socket.getaddrinfo(self.host, self.port)[0][-1]
                sock = self._sock = socket.socket()
                sock.setblocking(False)
                try:
                    sock.connect(address)
                except OSError as exc:
                    if exc.errno != errno.EINPROGRESS:
                        raise
                self._poll = select.poll()
                self._poll.register(sock, select.POLLOUT)
                self.state = "awaiting_tcp"
            elif self.state == "awaiting_tcp":
                ready = self._poll.poll(0)
                if ready:
                    self._poll = None
                    if ready[0][1] & (select.POLLERR | select.POLLHUP):
                        raise OSError(errno.ECONNREFUSED)
                    self.socket = self
                    self.state = "ready"
        except OSError as exc:
            self.last_error = exc
            self.cancel()

    def cancel(self):
        self.close()
        if self.state != "ready":
            self.state = "failed"

    # -- the socket -----------------------------------------------------------

    def send(self, data):
        n = self._sock.write(data)
        return 0 if n is None else n  # None: the socket is full for now

    def recv_into(self, buf, nbytes=0):
        n = self._sock.readinto(buf, nbytes or len(buf))
        if n is None:  # nothing to read now
            raise OSError(errno.EAGAIN)
        return n

    def setblocking(self, flag):
        self._sock.setblocking(flag)

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
            self._poll = None


def split_frame(frame):
    """``(event, id, data)`` of one SSE frame as ssehub formats it (bytes;
    ``b""`` for a field that is absent). Data lines are joined with LF."""
    event = eid = b""
    data = None
    start = 0
    end = len(frame)
    while start < end:
        stop = frame.find(b"\n", start)
        if stop < 0:
            stop = end
        if stop > start:
            if frame.startswith(b"data: ", start):
                line = frame[start + 6:stop]
                data = line if data is None else data + b"\n" + line
            elif frame.startswith(b"event: ", start):
                event = frame[start + 7:stop]
            elif frame.startswith(b"id: ", start):
                eid = frame[start + 4:stop]
        start = stop + 1
    return event, eid, data or b""


def with_id(data, eid):
    """The event's JSON object with ``"id": <eid>`` first, so order and gaps
    can be checked on the broker; data that is not an object as it is."""
    if len(data) < 2 or data[0] != 0x7B:  # "{"
        return data
    if data == b"{}":
        return b'{"id": "' + eid + b'"}'
    return b'{"id": "' + eid + b'", ' + data[1:]


class Outbox:
    """Events (SSE frames) waiting for the broker: at most ``size``.

    The first ``inflight`` frames were published and wait for the broker's
    acknowledgement (QoS 1); ``ack()`` removes the oldest, ``resend()``
    after a lost connection makes them due again (the client forgets what
    it had in flight with the connection), so an event is lost only when
    it is dropped here. When full, the oldest telemetry not in flight goes
    first, then the oldest event of any kind not in flight; ``dropped``
    counts them. Slots are allocated once.
    """

    def __init__(self, size=OUTBOX):
        self.frames = [None] * size
        self.telemetry = bytearray(size)  # 1 where the frame is telemetry
        self.count = 0
        self.inflight = 0
        self.dropped = 0

    def push(self, frame, telemetry):
        frames = self.frames
        if self.count == len(frames):
            drop = self.inflight if self.inflight < self.count else 0
            for i in range(drop, self.count):
                if self.telemetry[i]:
                    drop = i
                    break
            if drop < self.inflight:
                self.inflight -= 1
            self._remove(drop)
            self.dropped += 1
        frames[self.count] = frame
        self.telemetry[self.count] = 1 if telemetry else 0
        self.count += 1

    def unsent(self):
        """The oldest frame not yet published, or None."""
        return self.frames[self.inflight] if self.inflight < self.count else None

    def sent(self):
        """The frame ``unsent()`` returned was published."""
        self.inflight += 1

    def ack(self):
        """The broker has the oldest frame in flight."""
        if self.inflight:
            self.inflight -= 1
            self._remove(0)

    def resend(self):
        self.inflight = 0

    def peek(self):
        return self.frames[0] if self.count else None

    def pop(self):
        frame = self.frames[0]
        self._remove(0)
        if self.inflight:
            self.inflight -= 1
        return frame

    def _remove(self, i):
        frames, tele = self.frames, self.telemetry
        n = self.count - 1
        while i < n:
            frames[i] = frames[i + 1]
            tele[i] = tele[i + 1]
            i += 1
        frames[n] = None
        self.count = n

    def clear(self):
        for i in range(self.count):
            self.frames[i] = None
        self.count = 0
        self.inflight = 0


class Bridge:
    """Events from the hub to the broker, commands from the broker.

    :param app: the App; uses its hub, settings, status, board and camera,
        and ``apply_settings`` for changes made over MQTT.
    :param node: the board's id on the broker (client id, Home Assistant
        node id and unique_id prefix).
    """

    def __init__(self, app, node):
        self.app = app
        self.hub = app.hub
        self.settings = app.settings
        self.status = app.status
        self.board = app.board
        self.node = node
        self.state = "starting"
        self.outbox = Outbox()
        self.cursor = 0  # the hub's events up to here were read
        self.lost = 0  # events gone from the ring before they were read
        self.sent = 0  # events the broker acknowledged
        self.images = 0  # pictures published
        self.images_skipped = 0
        self.flash = False
        self.image_type = "image/jpeg"
        self._client = None
        self._renew = False  # settings changed: start a new session
        self._announce = None  # generator of retained messages still to send
        self._discovered = False  # discovery configs are on the broker
        self._unacked = 0
        self._image_due = False
        self._commands = []
        self._connected_at = 0
        self._refused = None

    def prefix(self):
        s = self.settings
        return s["mqtt_prefix"] or "camwatch/" + s["hostname"]

    def dropped(self):
        """Events that never reached the broker: dropped from the outbox or
        gone from the ring before they were read."""
        return self.outbox.dropped + self.lost

    def settings_changed(self, changed):
        if any(k in SESSION_KEYS for k in changed):
            self._renew = True
        elif self._client is not None:
            if "ha_discovery" in changed:
                self._announce = self._announcements(discovery_changed=True)
            elif "sensitivity" in changed or "mqtt_image" in changed:
                if self._announce is None:
                    self._announce = self._state_only()

    def fault(self, exc):
        """The session died of an unexpected error: say so; the capability
        starts a new one after a pause."""
        self._client = None
        self._set_state("error", "MQTT stopped: %r; starting again in 10 s" % (exc,), warn=True)

    def _set_state(self, state, message=None, warn=False):
        if state == self.state:
            return
        self.state = state
        if message:
            self.status.report("warning" if warn else "mqtt", message, {"mqtt": state})

    # -- the session ----------------------------------------------------------

    async def session(self):
        """One connection's life: returns when a setting asks for a new one."""
        # Imported here: a board without a broker never loads the client.
        from chumicro_mqtt import MQTTClient

        s = self.settings
        self._renew = False
        self._refused = None
        prefix = self.prefix()
        host, port = s["mqtt_host"], s["mqtt_port"]
        client = MQTTClient(
            transport_factory=lambda: Connection(host, port),
            client_id=self.node, keep_alive_seconds=KEEPALIVE_S,
            username=s["mqtt_user"] or None, password=s["mqtt_password"] or None,
            will_topic=prefix + "/availability", will_message=b"offline", will_qos=1,
            will_retain=True, when_disconnected="raise", max_tx_queue_size=24,
            ticks=time)  # MicroPython's own ticks: no chumicro_timing to load
        client.on_message = self._command
        client.on_publish = self._acked
        client.subscribe(prefix + "/set/+", qos=1)
        self._client = client
        self._set_state("connecting", "MQTT: connecting to %s:%d as %s" % (host, port, self.node))
        connected = False
        self.outbox.resend()  # what a previous session had in flight
        client.connect()
        try:
            while not self._renew:
                now = time.ticks_ms()
                self._read_hub()
                up = client.state == "connected"
                if up and not connected:
                    connected = True
                    self._up(client, prefix, now)
                elif connected and not up:
                    connected = False
                    self._unacked = 0
                    self.outbox.resend()  # unacknowledged events go again
                    self._set_state("down", "MQTT: lost the broker (%s); reconnecting"
                                    % (client.last_error,))
                elif self.state == "connecting" and client.state == "failed" \
                        and client.check(now):
                    self._set_state("down", "MQTT: cannot reach %s:%d (%s); retrying with "
                                    "backoff" % (host, port, client.last_error))
                if up:
                    self._run_commands(client, prefix)
                    await self._feed(client, prefix, now)
                self._step(client, now)
                if client.state == "failed" and not client.check(now):
                    await self._refused_wait(client, host)
                await asyncio.sleep_ms(POLL_MS)
        finally:
            self._client = None
            self._announce = None
            if client.state == "connected":
                # a clean goodbye: the broker drops the will, so say it
                self._publish(client, prefix + "/availability", b"offline", True)
                self._step(client, time.ticks_ms())
            client.disconnect()
            del client
            gc.collect()

    def _step(self, client, now):
        # One client step reads at most one packet and sends at most one:
        # keep stepping while it has data to send, within a bound.
        for _ in range(HANDLES_PER_POLL):
            if not client.check(now):
                return
            client.handle(now)
            if not client.io_interest(now) & _IO_WRITE:
                return

    async def _refused_wait(self, client, host):
        # Wrong credentials (or not authorized): the client stops retrying by
        # itself. Say so once, then try again slowly, never in a tight loop.
        err = client.last_error
        code = getattr(err, "return_code", None)
        if self._refused is None:
            why = {4: "bad user name or password", 5: "not authorized"}.get(code, str(err))
            self._refused = why
            self._set_state("refused", "MQTT: %s refused the connection (%s); retrying every "
                            "%d s. Check mqtt_user and mqtt_password." % (host, why,
                                                                           REFUSED_RETRY_S),
                            warn=True)
        deadline = time.ticks_add(time.ticks_ms(), REFUSED_RETRY_S * 1000)
        while not self._renew and time.ticks_diff(deadline, time.ticks_ms()) > 0:
            self._read_hub()
            await asyncio.sleep_ms(500)
        if not self._renew:
            client.connect()

    def _up(self, client, prefix, now):
        self._unacked = 0
        self._connected_at = now
        self._refused = None
        self._set_state("connected", "MQTT: connected to %s:%d, topics under %s/"
                        % (self.settings["mqtt_host"], self.settings["mqtt_port"], prefix))
        self._publish(client, prefix + "/availability", b"online", True)
        self._announce = self._announcements()

    # -- from the hub to the broker -----------------------------------------

    def _read_hub(self):
        hub = self.hub
        while True:
            n, frame, lost = hub.read(self.cursor)
            self.lost += lost
            self.cursor = n
            if frame is None:
                return
            self.outbox.push(frame, frame.startswith(b"event: telemetry\n"))

    async def _feed(self, client, prefix, now):
        # Retained state and discovery first, then the events, while the
        # client has room: nothing waits on the network here.
        while self._unacked <= WINDOW - 3 and not client.io_interest(now) & _IO_WRITE:
            if self._announce is not None:
                try:
                    topic, payload = next(self._announce)
                except StopIteration:
                    self._announce = None
                    continue
                self._publish(client, topic, payload, True)
            elif self._image_due:
                self._image_due = False
                await self._send_image(client, prefix)
            elif self.outbox.unsent() is not None:
                self._send_event(client, prefix, self.outbox.unsent())
                self.outbox.sent()
            else:
                return
            self._step(client, now)

    def _send_event(self, client, prefix, frame):
        event, eid, data = split_frame(frame)
        payload = with_id(data, eid)
        name = event.decode() if event else "message"
        client.publish(prefix + "/event/" + name, payload, qos=1, on_publish=self._event_acked)
        self._unacked += 1
        if name == "telemetry":
            self._publish(client, prefix + "/telemetry", payload, True)
        elif name == "motion":
            if b'"phase": "start"' in data:
                self._publish(client, prefix + "/motion", b"ON", True)
                self._image_due = self.settings["mqtt_image"]
            elif b'"phase": "end"' in data:
                self._publish(client, prefix + "/motion", b"OFF", True)

    def _publish(self, client, topic, payload, retain):
        client.publish(topic, payload, qos=1, retain=retain)
        self._unacked += 1

    def _acked(self, topic, payload):
        if self._unacked:
            self._unacked -= 1

    def _event_acked(self, topic, payload):
        self.outbox.ack()
        self.sent += 1

    async def _send_image(self, client, prefix):
        """The camera's picture (a JPEG, from the live view's shared picture
        buffer: camwatch.live), written straight into the client's socket as
        one QoS 0 PUBLISH (retained), chunk by chunk: no picture-sized copy
        (the client's publish() would make several). Runs only when the
        client has nothing of its own to send, and the client is not stepped
        until it is done."""
        live = getattr(self.app, "live", None)
        if live is None or self.app.camera is None:
            return
        topic = (prefix + "/image").encode()

        async def send(data):
            remaining = 2 + len(topic) + len(data)
            header = bytearray(b"\x31")  # PUBLISH, QoS 0, retain
            while True:
                byte = remaining & 0x7F
                remaining >>= 7
                header.append(byte | 0x80 if remaining else byte)
                if not remaining:
                    break
            header.append(len(topic) >> 8)
            header.append(len(topic) & 0xFF)
            sock = client.io_socket
            deadline = time.ticks_add(time.ticks_ms(), IMAGE_TIMEOUT_MS)
            try:
                await _write_all(sock, header, deadline)
                await _write_all(sock, topic, deadline)
                await _write_all(sock, data, deadline)
                self.images += 1
            except OSError as exc:
                # half a packet went out: this connection is unusable
                self.images_skipped += 1
                self.status.report("warning", "MQTT: sending the picture failed (%r); "
                                   "reconnecting" % (exc,))
                client.disconnect()
                client.connect()

        try:
            await live.with_picture(send)
        except OSError:  # no camera, or no picture from it
            self.images_skipped += 1

    # -- retained state and Home Assistant discovery -------------------------

    def _state(self):
        s = self.settings
        return json.dumps({"sensitivity": s["sensitivity"], "flash": "ON" if self.flash else "OFF",
                           "image": "ON" if s["mqtt_image"] else "OFF"})

    def _state_only(self):
        yield self.prefix() + "/state", self._state()

    def _announcements(self, discovery_changed=False):
        """Retained messages sent on every connection: state, then the Home
        Assistant discovery configs (or their removal when turned off)."""
        yield self.prefix() + "/state", self._state()
        if self.settings["ha_discovery"]:
            from camwatch.ha import configs

            for topic, payload in configs(self):
                yield topic, payload
            self._discovered = True
            _unload("ha")
        elif self._discovered or discovery_changed:
            from camwatch.ha import configs

            for topic, _ in configs(self):
                yield topic, b""  # an empty retained config removes the entity
            self._discovered = False
            _unload("ha")

    # -- commands -----------------------------------------------------------

    def _command(self, topic, payload):
        # Called by the client while it reads; acted on in the task's loop.
        if len(self._commands) < 4:
            self._commands.append((topic, payload))

    def _run_commands(self, client, prefix):
        while self._commands:
            topic, payload = self._commands.pop(0)
            name = topic[topic.rfind("/") + 1:]
            value = payload.decode().strip() if payload else ""
            try:
                self._obey(name, value)
            except (ValueError, settings_module.SettingsError) as exc:
                self.status.report("warning", "MQTT: %s/set/%s %r refused: %s"
                                   % (prefix, name, value, exc))

    def _obey(self, name, value):
        app = self.app
        if name == "sensitivity":
            changed = self.settings.update({"sensitivity": int(float(value))})
            if changed:
                app.apply_settings(changed)
        elif name == "image":
            changed = self.settings.update({"mqtt_image": _on_off(value)})
            if changed:
                app.apply_settings(changed)
        elif name == "flash":
            self.flash = _on_off(value)
            self.board.led("flash", self.flash)
            if self._announce is None:
                self._announce = self._state_only()
        elif name == "restart":
            if time.ticks_diff(time.ticks_ms(), self._connected_at) < RESTART_GUARD_MS:
                # a retained restart command would restart the board on
                # every connection: ignore what comes with the subscription
                raise ValueError("ignored right after connecting (retained?)")
            self.status.report("mqtt", "restart requested over MQTT")
            client = self._client
            if client is not None:
                self._publish(client, self.prefix() + "/availability", b"offline", True)
                self._step(client, time.ticks_ms())
                client.disconnect()
            self.board.restart()
        else:
            raise ValueError("unknown; these can be set: " + ", ".join(COMMANDS))


def _unload(name):
    # camwatch.<name> is needed only now and then (the discovery configs):
    # forget it, so the collector takes it back until the next time.
    import camwatch

    sys.modules.pop("camwatch." + name, None)
    try:
        delattr(camwatch, name)
    except AttributeError:
        pass


def _on_off(value):
    v = value.upper()
    if v in ("ON", "1", "TRUE"):
        return True
    if v in ("OFF", "0", "FALSE"):
        return False
    raise ValueError("send ON or OFF")


async def _write_all(sock, data, deadline):
    """Write ``data`` to a non-blocking socket, waiting while it is full."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        try:
            n = sock.send(view[done:])
        except OSError as exc:
            if exc.errno != 11:  # EAGAIN: the socket is full for now
                raise
            n = 0
        if n:
            done += n
        elif time.ticks_diff(deadline, time.ticks_ms()) <= 0:
            raise OSError(110)  # ETIMEDOUT
        else:
            await asyncio.sleep_ms(10)
