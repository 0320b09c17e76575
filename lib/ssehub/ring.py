# A fixed ring of the last published frames, numbered 1, 2, 3... since boot.
#
# A reader is a cursor: the number of the last frame it has. Nothing here
# knows about readers; they ask what follows their cursor.


class Ring:
    """The last ``size`` frames (wire bytes), each with an id ``<boot>-<n>``.

    :param size: how many frames are kept. The list is allocated once; adding
        frame ``n`` overwrites frame ``n - size``. A reader whose cursor is
        older than that has lost frames and is told how many (see ``lost``).
    :param boot: a tag that differs from one boot to the next, so an id from
        before a reboot is not mistaken for one of this boot's.
    """

    def __init__(self, size, boot):
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self.boot = boot
        self.seq = 0  # number of the newest frame; 0 before the first
        self._frames = [None] * size
        self._prefix = boot + "-"

    def id_of(self, n):
        """The id of frame ``n``: ``'<boot>-<n>'``."""
        return self._prefix + str(n)

    def next_id(self):
        """The id the next added frame will get."""
        return self._prefix + str(self.seq + 1)

    def add(self, frame):
        """Keep ``frame`` as the next frame, dropping the oldest if full; return its number."""
        n = self.seq + 1
        self._frames[n % self.size] = frame
        self.seq = n
        return n

    def first(self):
        """The number of the oldest frame kept (``seq + 1`` when empty)."""
        return self.seq - self.size + 1 if self.seq > self.size else 1

    def frame(self, n):
        """Frame ``n``, which must be kept (``first() <= n <= seq``)."""
        return self._frames[n % self.size]

    def lost(self, cursor):
        """How many frames after ``cursor`` are no longer kept (0 if none)."""
        gap = self.first() - 1 - cursor
        return gap if gap > 0 else 0

    def locate(self, last_id):
        """Place a reader that last saw ``last_id``; return ``(cursor, lost)``.

        - no id (``None`` or empty): a new reader, ``(seq, 0)``: it gets only
          frames added from now on.
        - an id of this boot still kept, or the newest: ``(n, 0)``: it gets
          every frame after it.
        - an id of this boot older than the ring: ``(first() - 1, lost)``
          with ``lost`` the number of frames it missed that are gone.
        - anything else (another boot, a number this boot has not reached,
          not an id of ours): ``(first() - 1, None)``: how much it missed is
          unknown, and it gets every frame kept.
        """
        if not last_id:
            return self.seq, 0
        n = self._number(last_id)
        start = self.first() - 1
        if n is None or n > self.seq:
            return start, None
        if n < start:
            return start, start - n
        return n, 0

    def _number(self, last_id):
        # the n of '<boot>-<n>' if last_id is one of ours in canonical form
        cut = last_id.rfind("-")
        if cut < 0 or last_id[:cut] != self.boot:
            return None
        digits = last_id[cut + 1:]
        if not digits or not digits.isdigit() or (len(digits) > 1 and digits[0] == "0"):
            return None
        return int(digits)

    def gather(self, cursor, buf):
        """Copy the frames after ``cursor`` into ``buf`` while they fit.

        Returns ``(nbytes, cursor)``: how many bytes of ``buf`` were filled
        and the number of the last frame copied. Copies nothing (returns
        ``(0, cursor)``) if the next frame alone is larger than ``buf``.
        The frames after ``cursor`` must be kept (``lost(cursor) == 0``).
        """
        room = len(buf)
        used = 0
        n = cursor
        seq = self.seq
        while n < seq:
            f = self._frames[(n + 1) % self.size]
            end = used + len(f)
            if end > room:
                break
            buf[used:end] = f
            used = end
            n += 1
        return used, n
