# camwatch.guard on the MicroPython VM: password guessing slowed per address,
# in fixed memory. A fake clock stands in for ticks_ms.
import gc
import time

from camwatch.guard import Guard


class Clock:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t

    def advance(self, ms):
        self.t = time.ticks_add(self.t, ms)


def _guard(**kw):
    g = Guard(**kw)
    g.clock = Clock()
    return g, g.clock


def test_free_tries_then_a_wait_that_doubles_up_to_the_longest():
    g, clock = _guard(free=3, longest_s=10)
    waits = [g.failed("10.0.0.9") for _ in range(8)]
    assert waits == [0, 0, 0, 1, 2, 4, 8, 10], waits
    assert g.check("10.0.0.9") == 10
    clock.advance(9001)
    assert g.check("10.0.0.9") == 1
    clock.advance(999)
    assert g.check("10.0.0.9") == 0  # may try again; the count stays
    assert g.failed("10.0.0.9") == 10
    assert g.failures == 9 and g.refusals == 2


def test_other_addresses_are_not_slowed():
    g, clock = _guard(free=1)
    for _ in range(5):
        g.failed("10.0.0.9")
    assert g.check("10.0.0.9") > 0
    assert g.check("10.0.0.2") == 0
    assert g.failed("10.0.0.2") == 0  # its own free try


def test_a_right_password_clears_the_address():
    g, clock = _guard(free=1)
    g.failed("10.0.0.9")
    assert g.failed("10.0.0.9") == 1
    clock.advance(1000)
    assert g.check("10.0.0.9") == 0
    g.passed("10.0.0.9")
    assert g.failed("10.0.0.9") == 0  # a fresh start


def test_an_address_is_forgotten_after_a_quiet_while():
    g, clock = _guard(free=1, forget_s=60)
    g.failed("10.0.0.9")
    assert g.failed("10.0.0.9") == 1
    clock.advance(59000)
    assert g.failed("10.0.0.9") == 2  # still counted
    clock.advance(61000)
    assert g.failed("10.0.0.9") == 0  # forgotten: free again


def test_many_addresses_share_one_slot_when_the_table_is_full():
    # rotating addresses does not buy more guesses: past the table they are
    # slowed together
    g, clock = _guard(slots=4, free=2)
    for i in range(4):
        g.failed("10.0.1.%d" % i)
    waits = [g.failed("10.0.2.%d" % i) for i in range(6)]
    assert waits == [0, 0, 1, 2, 4, 8], waits
    assert g.check("10.0.3.1") == 8  # a new address, table still full
    assert g.check("10.0.1.0") == 0  # a tracked one with tries left


def test_memory_stays_bounded_under_many_addresses():
    g, clock = _guard()
    for i in range(50):
        g.failed("10.0.%d.%d" % (i // 250, i % 250))
    gc.collect()
    before = gc.mem_alloc()
    for i in range(50, 2050):
        g.failed("10.0.%d.%d" % (i // 250, i % 250))
        clock.advance(10)
    gc.collect()
    assert gc.mem_alloc() - before < 512, gc.mem_alloc() - before


def test_refusal_is_a_429_with_retry_after():
    g, _ = _guard()
    body, status, headers = g.refusal(7)
    assert status == 429 and headers == {"Retry-After": "7"}
    assert body["retry_after"] == 7 and "7 s" in body["error"]
