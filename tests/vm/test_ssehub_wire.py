# On the MicroPython VM: ssehub.wire.format_event (byte-exact) and
# ssehub.ring.Ring (ids, overflow, placing a reconnecting reader, batching).
from ssehub import format_event
from ssehub.ring import Ring


def _raises(exc, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except exc:
        return
    raise AssertionError("%s not raised" % exc.__name__)


# -- format_event: upstream microdot.sse behaviour, byte for byte ------------

def test_str_and_bytes_as_is():
    assert format_event("hello") == b"data: hello\n\n"
    assert format_event(b"hello") == b"data: hello\n\n"
    assert format_event("") == b"data: \n\n"
    assert format_event("h\xe9") == b"data: h\xc3\xa9\n\n"


def test_dict_and_list_as_json():
    assert format_event({"foo": "bar"}) == b'data: {"foo": "bar"}\n\n'
    assert format_event([1, "a", None]) == b'data: [1, "a", null]\n\n'
    assert format_event({}) == b"data: {}\n\n"
    # a newline inside a JSON string is escaped by JSON: still one line
    assert format_event({"t": "a\nb"}) == b'data: {"t": "a\\nb"}\n\n'


def test_anything_else_as_str():
    assert format_event(42) == b"data: 42\n\n"
    assert format_event(1.5) == b"data: 1.5\n\n"
    assert format_event(None) == b"data: None\n\n"
    assert format_event(True) == b"data: True\n\n"
    assert format_event((1, 2)) == b"data: (1, 2)\n\n"


def test_event_name():
    assert format_event("hi", event="greeting") == b"event: greeting\ndata: hi\n\n"
    assert format_event("hi", event=b"greeting") == b"event: greeting\ndata: hi\n\n"
    assert format_event("hi", event="") == b"data: hi\n\n"


def test_event_id():
    assert format_event("hi", event_id="7") == b"id: 7\ndata: hi\n\n"
    assert format_event("hi", event_id="") == b"data: hi\n\n"


def test_retry_seconds_on_the_api_milliseconds_on_the_wire():
    assert format_event("hi", retry=2) == b"retry: 2000\ndata: hi\n\n"
    assert format_event("hi", retry=0.25) == b"retry: 250\ndata: hi\n\n"
    assert format_event("hi", retry=1.0005) == b"retry: 1000\ndata: hi\n\n"
    assert format_event("hi", retry=0) == b"data: hi\n\n"


def test_field_order_retry_event_id_data():
    assert format_event({"a": 1}, event="e", event_id="x-1", retry=1.5) == \
        b'retry: 1500\nevent: e\nid: x-1\ndata: {"a": 1}\n\n'


def test_comment_ignores_other_fields():
    assert format_event("ping", comment=True) == b": ping\n\n"
    assert format_event("", comment=True) == b": \n\n"
    assert format_event("ping", event="e", event_id="1", retry=3, comment=True) == b": ping\n\n"
    assert format_event({"a": 1}, comment=True) == b': {"a": 1}\n\n'


def test_matches_upstream_microdot_sse():
    # the oracle: microdot.sse from the build, for every single-line case
    import asyncio
    from microdot.sse import SSE

    cases = [
        (("hello",), {}), ((b"hello",), {}), (("",), {}), (({"foo": "bar"},), {}),
        (([1, 2],), {}), ((42,), {}), ((None,), {}), (("hi",), {"event": "greeting"}),
        (("hi",), {"event_id": "7"}), (("hi",), {"retry": 2}), (("hi",), {"retry": 0.25}),
        (("hi",), {"retry": 0}), (("x",), {"event": "e", "event_id": "1", "retry": 1.5}),
        (("ping",), {"comment": True}), (("ping",), {"comment": True, "event": "e"}),
        (("hi",), {"event": "", "event_id": ""}),
    ]

    async def upstream(args, kwargs):
        sse = SSE()
        await sse.send(*args, **kwargs)
        return sse.queue[0]

    for args, kwargs in cases:
        want = asyncio.run(upstream(args, kwargs))
        got = format_event(*args, **kwargs)
        assert got == want, (args, kwargs, got, want)


# -- format_event: line breaks never break the framing -----------------------

def test_multiline_data_one_data_line_per_line():
    assert format_event("a\nb") == b"data: a\ndata: b\n\n"
    assert format_event("a\r\nb") == b"data: a\ndata: b\n\n"
    assert format_event("a\rb") == b"data: a\ndata: b\n\n"
    assert format_event("a\r\nb\rc\nd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert format_event(b"a\n\nb") == b"data: a\ndata: \ndata: b\n\n"
    # \n\r is two breaks (LF, then a lone CR)
    assert format_event("a\n\rb") == b"data: a\ndata: \ndata: b\n\n"


def test_multiline_edges():
    # a trailing break survives: the receiver joins lines with LF
    assert format_event("a\n") == b"data: a\ndata: \n\n"
    assert format_event("\n") == b"data: \ndata: \n\n"
    assert format_event("\r\n") == b"data: \ndata: \n\n"
    assert format_event("\na") == b"data: \ndata: a\n\n"


def test_multiline_with_other_fields():
    assert format_event("x\ny", event="e", event_id="b-2", retry=1) == \
        b"retry: 1000\nevent: e\nid: b-2\ndata: x\ndata: y\n\n"
    assert format_event(7.5, event="e") == b"event: e\ndata: 7.5\n\n"
    assert format_event(["a\nb"]) == b'data: ["a\\nb"]\n\n'


class _Lines:
    def __str__(self):
        return "one\ntwo"


def test_multiline_str_of_other_types():
    assert format_event(_Lines()) == b"data: one\ndata: two\n\n"


def test_multiline_comment():
    assert format_event("a\nb", comment=True) == b": a\n: b\n\n"
    assert format_event("a\r\nb\r", comment=True) == b": a\n: b\n: \n\n"


def test_line_break_in_event_or_id_raises():
    for bad in ("a\nb", "a\rb", "a\r\n", "\n", b"x\ny"):
        _raises(ValueError, format_event, "d", event=bad)
        _raises(ValueError, format_event, "d", event_id=bad)
    # and leaves no trace in the next event
    assert format_event("d", event="ok") == b"event: ok\ndata: d\n\n"
    assert format_event("d") == b"data: d\n\n"


def test_no_state_leaks_between_calls():
    format_event("x", event="e", event_id="1", retry=1)
    assert format_event("y") == b"data: y\n\n"
    format_event("z", comment=True)
    assert format_event("y", event_id="2") == b"id: 2\ndata: y\n\n"


# -- Ring ----------------------------------------------------------------------

def test_ids_count_up_from_one_with_the_boot_tag():
    r = Ring(4, "ab12cd")
    assert r.seq == 0
    assert r.next_id() == "ab12cd-1"
    assert r.add(b"f1") == 1
    assert r.add(b"f2") == 2
    assert r.next_id() == "ab12cd-3"
    assert r.id_of(2) == "ab12cd-2"


def test_ring_keeps_the_last_size_frames():
    r = Ring(3, "t")
    assert r.first() == 1 and r.lost(0) == 0
    for i in range(1, 8):
        r.add(b"f%d" % i)
    assert r.seq == 7
    assert r.first() == 5
    assert [r.frame(n) for n in range(5, 8)] == [b"f5", b"f6", b"f7"]
    # a reader at 1 lost 2, 3, 4; one at 4 lost nothing
    assert r.lost(1) == 3
    assert r.lost(4) == 0
    assert r.lost(7) == 0
    assert len(r._frames) == 3  # fixed: no growth per add


def test_locate_new_reader_starts_live():
    r = Ring(4, "t")
    assert r.locate(None) == (0, 0)
    for i in range(6):
        r.add(b"x")
    assert r.locate(None) == (6, 0)
    assert r.locate("") == (6, 0)


def test_locate_kept_id_replays_after_it():
    r = Ring(4, "t")
    for i in range(6):
        r.add(b"x")  # keeps 3..6
    assert r.locate("t-6") == (6, 0)
    assert r.locate("t-3") == (3, 0)
    assert r.locate("t-2") == (2, 0)  # everything after 2 is kept


def test_locate_too_old_id_counts_the_loss():
    r = Ring(4, "t")
    for i in range(10):
        r.add(b"x")  # keeps 7..10
    assert r.locate("t-5") == (6, 1)
    assert r.locate("t-1") == (6, 5)
    assert r.locate("t-0") == (6, 6)


def test_locate_foreign_future_or_bad_id_is_unknown():
    r = Ring(4, "t")
    for i in range(10):
        r.add(b"x")
    for bad in ("u-5", "t-11", "t-99", "5", "t-", "t-x", "t-05", "t--1", "t-+5", "-5", "tt-5"):
        assert r.locate(bad) == (6, None), bad
    empty = Ring(4, "t")
    assert empty.locate("u-3") == (0, None)
    assert empty.locate("t-0") == (0, 0)


def test_gather_joins_frames_up_to_the_buffer_size():
    r = Ring(8, "t")
    for i in range(1, 6):
        r.add(b"<%d>" % i)  # 3 bytes each
    buf = bytearray(7)
    assert r.gather(0, buf) == (6, 2)
    assert bytes(buf[:6]) == b"<1><2>"
    assert r.gather(2, buf) == (6, 4)
    assert bytes(buf[:6]) == b"<3><4>"
    assert r.gather(4, buf) == (3, 5)
    assert r.gather(5, buf) == (0, 5)  # nothing pending
    assert r.gather(0, bytearray(2)) == (0, 0)  # next frame larger than the buffer


def test_gather_across_the_wrap():
    r = Ring(3, "t")
    for i in range(1, 6):
        r.add(b"%d" % i)  # keeps 3, 4, 5 at indexes 0, 1, 2
    buf = bytearray(10)
    assert r.gather(2, buf) == (3, 5)
    assert bytes(buf[:3]) == b"345"


def test_size_must_be_positive():
    _raises(ValueError, Ring, 0, "t")
