"""A small SSE client over a raw socket, for tests: it keeps the exact bytes.

Parsing follows the WHATWG event-stream rules (fields ``event``, ``data``,
``id``, ``retry``; comments start with ``:``; an event ends at a blank line).
"""

import socket
import time
from urllib.parse import urlsplit


class Event:
    def __init__(self, event, data, id, retry):
        self.event, self.data, self.id, self.retry = event, data, id, retry

    def __repr__(self):
        return "Event(%r, id=%r, data=%r)" % (self.event, self.id, self.data[:80])


class Stream:
    """``GET path`` on the board; ``next()`` returns parsed events in order.

    :param last_event_id: sent as ``Last-Event-ID`` (what EventSource does on
                          a reconnect).
    """

    def __init__(self, url, path="events", last_event_id=None, timeout=10):
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        head = "GET /%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n" % (path, parts.netloc)
        if last_event_id:
            head += "Last-Event-ID: %s\r\n" % last_event_id
        self.sock.sendall((head + "\r\n").encode())
        self.raw = b""  # every byte of the body received so far
        self._buf = b""
        self.comments = []
        self.retry = None
        self._last_id = None
        status, self.headers = self._read_head(timeout)
        self.status = status

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data before the deadline")
        self.sock.settimeout(left)
        data = self.sock.recv(4096)
        if not data:
            raise ConnectionError("the board closed the stream")
        return data

    def _read_head(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._buf:
            self._buf += self._recv(deadline)
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        self.raw = self._buf
        lines = head.decode().split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return int(lines[0].split()[1]), headers

    def next(self, timeout=10, event=None):
        """The next event (of type ``event`` if given) within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            ev = self._parse_one()
            if ev is not None:
                if event is None or ev.event == event:
                    return ev
                continue
            data = self._recv(deadline)
            self.raw += data
            self._buf += data

    def _parse_one(self):
        buf = self._buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n\n" not in buf:
            return None
        block, rest = buf.split(b"\n\n", 1)
        self._buf = rest
        name, data, retry, has_field = "message", [], None, False
        for line in block.decode().split("\n"):
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
                has_field = True
            elif field == "id":
                self._last_id = value
            elif field == "retry":
                retry = self.retry = int(value)
        if not has_field:  # not dispatched (an id or retry alone)
            return self._parse_one()
        return Event(name, "\n".join(data), self._last_id, retry)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def id_number(event_id):
    """The counter part of an id like ``'3fa9c1-17'``."""
    return int(event_id.rsplit("-", 1)[1])


def boot_tag(event_id):
    return event_id.rsplit("-", 1)[0]


def connect(url, timeout=30, **kw):
    """A stream as a browser's EventSource gets one: told ``busy``, it waits
    the ``retry`` the board sent and connects again, for up to ``timeout`` s.

    Returns ``(stream, first event, times told busy)``.
    """
    deadline = time.monotonic() + timeout
    told_busy = 0
    while True:
        s = Stream(url, **kw)
        ev = s.next(timeout=max(0.1, deadline - time.monotonic()))
        if ev.event != "busy":
            return s, ev, told_busy
        s.close()
        told_busy += 1
        wait = (s.retry or 3000) / 1000
        if time.monotonic() + wait > deadline:
            raise TimeoutError("still busy after %d tries in %s s" % (told_busy, timeout))
        time.sleep(wait)  # the board's own retry interval, as EventSource waits
