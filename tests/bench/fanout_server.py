# make bench, section "fanout": an SSE server on the VM that publishes one
# telemetry-sized event to every client, then waits PACE_MS milliseconds
# (0, the bench's choice: as fast as the event loop lets it publish).
#
#   fanout_server.py hub PORT [PACE_MS]    camwatch's ssehub: format once
#       into the ring
#   fanout_server.py naive PORT [PACE_MS]  the naive Microdot broadcast:
#       a shared asyncio.Event (a fresh one per message), each handler
#       calling microdot.sse's sse.send() for every event
#
# The host connects the clients and counts what arrives (tools/bench.py).
import asyncio
import sys

PAYLOAD = {"heap_free": 51234, "heap_min_free": 40211, "rssi": -61, "fps": 10.0,
           "uptime_s": 1234, "clients": 4, "temperature": 41.5}
mode, port = sys.argv[1], int(sys.argv[2])
PACE_MS = int(sys.argv[3]) if len(sys.argv) > 3 else 1  # 0: as fast as the loop runs

if mode == "hub":
    from ssehub import Hub, Server

    app = Server()
    hub = Hub(size=32, max_clients=8, heartbeat=15)
    hub.route(app)

    async def publisher():
        while True:
            hub.publish(PAYLOAD, event="telemetry")
            await asyncio.sleep_ms(PACE_MS)
else:
    from microdot import Microdot
    from microdot.sse import with_sse

    app = Microdot()
    tick = [asyncio.Event()]  # a new Event per message: set once, never cleared

    @app.route("/events")
    @with_sse
    async def events(request, sse):
        while True:
            await tick[0].wait()
            await sse.send(PAYLOAD, event="telemetry")

    async def publisher():
        while True:
            fired, tick[0] = tick[0], asyncio.Event()
            fired.set()
            await asyncio.sleep_ms(PACE_MS)


async def main():
    asyncio.create_task(publisher())
    print("ready")
    await app.start_server(host="127.0.0.1", port=port)


asyncio.run(main())
