"""Slowing password guessing: wrong tries per client address, in fixed memory.

Every route that checks a password asks the App's one ``Guard`` first::

    wait = app.guard.check(ip)
    if wait:
        return app.guard.refusal(wait)          # 429 with Retry-After
    if not password_ok:
        app.guard.failed(ip)
        return {"error": "wrong password"}, 401
    app.guard.passed(ip)

The first ``free`` wrong tries from an address cost nothing; after that each
one makes the address wait before its next try, twice as long each time
(1 s, 2 s, 4 s ... up to ``longest_s``). An address that stops failing is
forgotten ``forget_s`` after its last wrong try; a right password clears it.

Memory is fixed: ``slots`` addresses are tracked. When they are all taken,
every further address shares one more slot, so guessing from many addresses
is slowed as one (a person who gets the password right from a new address
in that time waits too: the price of a bound on memory and on guesses).
Nothing here sleeps or holds a socket: a refusal is answered at once, and
event streams and other clients are not touched.
"""

import time

from micropython import const

_ADDR = const(0)
_FAILS = const(1)
_UNTIL = const(2)  # ticks_ms before which the address may not try again
_LAST = const(3)  # ticks_ms of its last wrong try
_SHARED = "*"  # the address of the slot shared when the others are taken


class Guard:
    """Wrong password tries per client address.

    :param slots: addresses tracked one by one (each a small list).
    :param free: wrong tries an address may make before it has to wait.
    :param longest_s: the longest wait, in seconds.
    :param forget_s: seconds after its last wrong try an address is forgotten.
    """

    def __init__(self, slots=8, free=3, longest_s=300, forget_s=900):
        self.free = free
        self.longest_ms = longest_s * 1000
        self.forget_ms = forget_s * 1000
        self._slots = [[None, 0, 0, 0] for _ in range(slots + 1)]  # + the shared one
        #: wrong tries seen, and tries refused with 429, since start
        self.failures = 0
        self.refusals = 0
        self.clock = time.ticks_ms  # what "now" is (tests set their own)

    def _find(self, addr, now, create):
        free = None
        for slot in self._slots[:-1]:
            if slot[_ADDR] is not None and \
                    time.ticks_diff(now, slot[_LAST]) >= self.forget_ms and \
                    time.ticks_diff(now, slot[_UNTIL]) >= 0:
                slot[_ADDR] = None  # forgotten
            if slot[_ADDR] == addr:
                return slot
            if slot[_ADDR] is None and free is None:
                free = slot
        shared = self._slots[-1]
        if shared[_ADDR] is not None and time.ticks_diff(now, shared[_LAST]) >= self.forget_ms \
                and time.ticks_diff(now, shared[_UNTIL]) >= 0:
            shared[_ADDR] = None
            shared[_FAILS] = 0
        if not create:
            return shared if shared[_ADDR] is not None and free is None else None
        if free is not None:
            free[_ADDR] = addr
            free[_FAILS] = 0
            free[_UNTIL] = now
            return free
        if shared[_ADDR] is None:
            shared[_ADDR] = _SHARED
            shared[_UNTIL] = now
        return shared

    def check(self, addr):
        """0 if ``addr`` may try a password now, else the seconds it must
        wait (for ``Retry-After``)."""
        now = self.clock()
        slot = self._find(addr, now, False)
        if slot is None:
            return 0
        left = time.ticks_diff(slot[_UNTIL], now)
        if left <= 0:
            return 0
        self.refusals += 1
        return (left + 999) // 1000

    def failed(self, addr):
        """Count a wrong password from ``addr``; return the seconds it must
        now wait before its next try (0 while it has free tries left)."""
        now = self.clock()
        slot = self._find(addr, now, True)
        slot[_FAILS] += 1
        slot[_LAST] = now
        self.failures += 1
        over = slot[_FAILS] - self.free
        if over <= 0:
            return 0
        wait = 1000 << min(over - 1, 20)
        if wait > self.longest_ms:
            wait = self.longest_ms
        slot[_UNTIL] = time.ticks_add(now, wait)
        return wait // 1000

    def passed(self, addr):
        """A right password from ``addr``: forget its wrong tries."""
        for slot in self._slots[:-1]:
            if slot[_ADDR] == addr:
                slot[_ADDR] = None

    def refusal(self, wait):
        """The 429 answer for a route: a JSON body, status and headers."""
        return ({"error": "too many wrong passwords; try again in %d s" % wait,
                 "retry_after": wait}, 429, {"Retry-After": str(wait)})
