"""Static files from flash through one preallocated buffer.

A phone opening the dashboard asks for every asset at once (browsers open up
to 6 connections per host). Microdot's ``send_file`` reads each chunk into a
new bytes object, per connection; on a board whose heap is mostly taken that
is enough to run out. Here every response reads its chunks into the same
buffer. That is safe because Microdot writes a chunk with ``awrite()``, and
the asyncio stream's ``write()`` sends it, or copies what the socket did not
take, before the first await: no other response can touch the buffer while a
chunk is still needed. No lock is held across awaits, so a client that
vanishes mid-file blocks nobody.
"""

from micropython import const

_CHUNK = const(1024)


class Files:
    """Serves files through a single ``chunk``-byte buffer."""

    def __init__(self, chunk=_CHUNK):
        self._buf = bytearray(chunk)
        self._view = memoryview(self._buf)

    def body(self, path):
        """A Microdot response body streaming ``path`` (opened when sent)."""
        return _Body(self, path)


class _Body:
    # Microdot iterates a body with __aiter__/__anext__ and calls aclose()
    # at the end; MicroPython has no async generators, hence the class. The
    # file is closed at its end, or by the collector if the client vanished.

    def __init__(self, files, path):
        self._files = files
        self._path = path
        self._f = None

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self._f is None:
            try:
                self._f = open(self._path, "rb")
            except OSError:
                raise StopAsyncIteration
        files = self._files
        n = self._f.readinto(files._buf)
        if not n:
            await self.aclose()
            raise StopAsyncIteration
        return files._view[:n]

    async def aclose(self):
        if self._f is not None:
            self._f.close()
            self._f = None
