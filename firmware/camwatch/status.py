"""Status reports: one line on the serial console and one `status` event.

``make repl`` therefore shows what the board is doing, and so does every
open dashboard.
"""


class Status:
    """Publishes ``status`` events.

    :param hub: the broadcast hub (``publish(data, event=...)``).
    """

    def __init__(self, hub):
        self.hub = hub
        self.warnings = []  # the last few warnings, for /api/status
        self.stamp = None  # adds the wall-clock time to an event (camwatch.clock)

    def report(self, kind, message, fields=None):
        """Publish a status event of ``kind`` (boot, wifi, camera, settings,
        warning) with a human ``message`` and extra ``fields``."""
        data = {"kind": kind, "message": message}
        if fields:
            data.update(fields)
        if self.stamp is not None:
            self.stamp(data)
        if kind == "warning":
            self.warnings.append(message)
            if len(self.warnings) > 5:
                self.warnings.pop(0)
        print("camwatch:", kind + ":", message)
        self.hub.publish(data, event="status")
        return data
