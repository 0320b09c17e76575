"""ssehub: a Server-Sent Events broadcast hub for Microdot on MicroPython.

- ``format_event(data, event=None, event_id=None, retry=None, comment=False)``
  the SSE wire bytes of one event (``ssehub.wire``).
- ``Hub(size, max_clients, heartbeat, stall_timeout, retry, batch)``: publish
  once, serve every ``/events`` stream from a fixed ring (``ssehub.hub``).
- ``Server(request_timeout, max_head, max_body)``: a Microdot app that reads
  requests itself under a deadline and within sizes, and refuses malformed
  ones with a 4xx and one console line (``ssehub.server``).
"""

from ssehub.wire import format_event
from ssehub.hub import Hub
from ssehub.server import Server

__version__ = "0.1.0"
