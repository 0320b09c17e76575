"""Static files from flash through one preallocated buffer.

A phone opening the dashboard asks for every asset at once (browsers open up
to 6 connections per host). Microdot's ``send_file`` reads each chunk into a
new bytes object, per connection; on a board whose heap is mostly taken that
is enough to run out. Here one buffer serves every file, and files go out one
at a time: a second request waits for the first to finish, so the memory of
static serving does not grow with the number of connections.
"""

import asyncio

from micropython import const

_CHUNK = const(1024)


class Files:
    """Serves files one at a time through a single ``chunk``-byte buffer."""

    def __init__(self, chunk=_CHUNK):
        self._buf = bytearray(chunk)
        self._view = memoryview(self._buf)
        self._lock = asyncio.Lock()

    def body(self, path):
        """A Microdot response body streaming ``path`` (opened when sent)."""
        return _Body(self, path)


class _Body:
    # Microdot iterates a body with __aiter__/__anext__ and calls aclose()
    # at the end or when the client went away; MicroPython has no async
    # generators, hence the class.

    def __init__(self, files, path):
        self._files = files
        self._path = path
        self._f = None

    def __aiter__(self):
        return self

    async def __anext__(self):
        files = self._files
        if self._f is None:
            await files._lock.acquire()
            try:
                self._f = open(self._path, "rb")
            except OSError:
                files._lock.release()
                raise StopAsyncIteration
        n = self._f.readinto(files._buf)
        if not n:
            await self.aclose()
            raise StopAsyncIteration
        return files._view[:n]

    async def aclose(self):
        if self._f is not None:
            self._f.close()
            self._f = None
            self._files._lock.release()
