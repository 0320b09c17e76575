# `make bench` on the MicroPython VM: the cost of one published event.
# ssehub formats an event once and stores it in the ring, whatever the number
# of clients; upstream microdot.sse formats and queues it once per client.
# Prints "figure: value" lines; measures, asserts nothing.
import gc
import time

from microdot.sse import SSE
from ssehub import Hub, format_event

N = 400
DATA = {"uptime_s": 1234, "heap_free": 51234, "heap_min_free": 40960, "rssi": -61,
        "temperature": 41.5, "fps": 9.9, "clients": 4, "clients_max": 4, "published": 812,
        "dropped": 0, "resyncs": 0}


def measure(fn):
    """(us per event over N events, bytes allocated per event over 4 events
    with the collector off, so no collection hides what was allocated)."""
    gc.collect()
    t0 = time.ticks_us()
    for i in range(N):
        fn(i)
    us = time.ticks_diff(time.ticks_us(), t0) / N
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    for i in range(4):
        fn(N + i)
    allocated = (gc.mem_alloc() - a0) / 4
    gc.enable()
    return us, allocated


def main():
    us, b = measure(lambda i: format_event(DATA, "telemetry", "3fa9c1-%d" % i))
    print("format_event (telemetry dict): %.1f us, %d bytes per event" % (us, b))

    hub = Hub(size=32, max_clients=8)
    us_hub, b_hub = measure(lambda i: hub.publish(DATA, event="telemetry"))
    print("ssehub publish (format once + ring): %.1f us, %d bytes per event" % (us_hub, b_hub))

    for clients in (1, 8):
        queues = [SSE() for _ in range(clients)]

        async def send_all(i):
            for q in queues:
                await q.send(DATA, event="telemetry", event_id="3fa9c1-%d" % i)
                q.queue.clear()  # as if written at once; upstream keeps it until then

        def run(i):
            coro = send_all(i)
            try:
                coro.send(None)
            except StopIteration:
                pass

        us_up, b_up = measure(run)
        print("upstream microdot.sse, %d client(s): %.1f us, %d bytes per event" % (clients, us_up, b_up))
        print("ratio upstream/ssehub with %d client(s): time %.1fx, allocation %.1fx"
              % (clients, us_up / us_hub, b_up / max(1, b_hub)))


main()
