# `make bench` on the MicroPython VM: heap allocated by one published event
# when 1 and when 8 clients are connected over real loopback sockets and
# live, so the cost of one more client per event shows. Prints
# "figure: value" lines; measures, asserts nothing.
import asyncio
import gc
import os
import socket
import time

from ssehub import Hub, Server

PAYLOAD = {"heap_free": 51234, "rssi": -61, "fps": 9.9, "clients": 8}
LIVE = 2  # a slot's state once its client has caught up


def addr(port):
    return socket.getaddrinfo("127.0.0.1", port)[0][-1]


async def until(cond, what):
    deadline = time.ticks_add(time.ticks_ms(), 5000)
    while not cond():
        if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
            raise RuntimeError("timed out waiting for " + what)
        await asyncio.sleep_ms(2)


async def allocated(n, samples=9):
    hub = Hub(max_clients=8, heartbeat=0)
    app = Server()
    hub.route(app)
    port = 20000 + int.from_bytes(os.urandom(2), "big") % 30000
    task = asyncio.create_task(app.start_server(host="127.0.0.1", port=port))
    await until(lambda: getattr(app, "server", None) is not None, "the server")
    socks = []
    for i in range(n):  # one at a time: a blocking connect waits on the listen backlog
        s = socket.socket()
        s.connect(addr(port))
        s.send(b"GET /events HTTP/1.1\r\nHost: bench\r\n\r\n")
        socks.append(s)
        await until(lambda: hub.clients == i + 1, "the clients")
    hub.publish(PAYLOAD, event="telemetry")
    await until(lambda: all(s.state == LIVE for s in hub._slots[:n]), "live clients")
    out = []
    for _ in range(samples):
        gc.collect()
        before = gc.mem_alloc()
        hub.publish(PAYLOAD, event="telemetry")  # written to every socket at once
        out.append(gc.mem_alloc() - before)
        await asyncio.sleep_ms(5)
    for s in socks:
        s.close()
    hub.close()
    await until(lambda: hub.clients == 0, "the streams to end")
    app.shutdown()
    task.cancel()
    await asyncio.sleep_ms(10)
    out.sort()
    return out[len(out) // 2], out[0], out[-1]


async def main():
    one = await allocated(1)
    eight = await allocated(8)
    print("ssehub publish, 1 live client on a socket: %d bytes per event (%d..%d)" % one)
    print("ssehub publish, 8 live clients on sockets: %d bytes per event (%d..%d)" % eight)
    print("ssehub: one more client costs %.1f bytes per event (goal <= 8)"
          % ((eight[0] - one[0]) / 7))


asyncio.run(main())
