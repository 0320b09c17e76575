# The Server-Sent Events wire format: one function, run once per event.
#
# Same API and field semantics as microdot.sse.SSE.send(), returning the
# bytes instead of queueing them, with one difference: a payload holding
# line breaks becomes one field line per line, so no payload can end an
# event early or smuggle in fields of its own.

import json

# Reused for every event: the pieces of one frame (retry, event, id, data,
# blank line), joined into one bytes object. Formatting is synchronous, so
# one shared list is safe; after each join the slots are emptied again so
# the list keeps no payload alive.
_parts = [b""] * 9 + [b"\n\n"]


def _encode(value):
    # str or bytes, as given for an event name or id
    return value if isinstance(value, bytes) else value.encode()


def _one_line(field, value):
    # An event name or id cannot span lines: the field would end there and
    # the rest would be read as a new field.
    if b"\n" in value or b"\r" in value:
        raise ValueError(field + " must not contain a line break")
    return value


def _fold(data, prefix):
    # LF, CR and CRLF all end a line in SSE; every line gets its own field
    # prefix. A receiver joins data lines with LF, so the payload comes back
    # with its line breaks as LF.
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\n" + prefix)


def format_event(data, event=None, event_id=None, retry=None, comment=False):
    """Return the SSE wire bytes of one event.

    :param data: the payload. ``str`` is sent UTF-8 encoded and ``bytes`` as
        is; ``dict`` and ``list`` are sent as JSON; anything else as
        ``str(data)``. A payload with line breaks (LF, CR or CRLF) becomes one
        ``data:`` line per line; the receiver gets it back with LF breaks.
    :param event: the event name (``event:`` field), a str or bytes; empty or
        ``None`` means the default ``message`` event.
    :param event_id: the event id (``id:`` field), a str or bytes; empty or
        ``None`` sends no id.
    :param retry: the reconnection delay the client should use, in seconds
        (``retry:`` field, sent in milliseconds); 0 or ``None`` sends none.
    :param comment: send ``data`` as a comment (lines starting with ``:``),
        which clients ignore; ``event``, ``event_id`` and ``retry`` are then
        ignored. Useful as a heartbeat.

    Fields are written in the order ``retry``, ``event``, ``id``, ``data``,
    as microdot.sse does. Raises ``ValueError`` if ``event`` or ``event_id``
    contains a line break (CR or LF).
    """
    if isinstance(data, (dict, list)):
        data = json.dumps(data)
    if isinstance(data, str):
        data = data.encode()
    elif not isinstance(data, bytes):
        data = str(data).encode()
    folded = b"\n" in data or b"\r" in data
    p = _parts
    if comment:
        p[7] = b": "
        p[8] = _fold(data, b": ") if folded else data
        return _join()
    # check everything before filling the shared list
    if event:
        event = _one_line("event", _encode(event))
    if event_id:
        event_id = _one_line("event_id", _encode(event_id))
    if retry:
        p[0] = b"retry: " + str(int(retry * 1000)).encode() + b"\n"
    if event:
        p[1] = b"event: "
        p[2] = event
        p[3] = b"\n"
    if event_id:
        p[4] = b"id: "
        p[5] = event_id
        p[6] = b"\n"
    p[7] = b"data: "
    p[8] = _fold(data, b"data: ") if folded else data
    return _join()


def _join():
    p = _parts
    out = b"".join(p)
    for i in range(9):
        p[i] = b""
    return out
