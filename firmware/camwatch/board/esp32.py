"""The ESP32 board layer: camera, WLAN, watchdog, LEDs on real hardware."""

import machine
import network


class Board:
    platform = "esp32"

    def __init__(self, info):
        self.info = info
        self.wlan = network.WLAN(network.STA_IF)

    def http_bind(self, port):
        return ("0.0.0.0", port)

    def address(self):
        for iface in (self.wlan, network.WLAN(network.AP_IF)):
            if iface.active() and iface.isconnected() or iface is not self.wlan and iface.active():
                return iface.ifconfig()[0]
        return "0.0.0.0"

    def reset_cause(self):
        causes = {
            machine.PWRON_RESET: "power-on",
            machine.HARD_RESET: "hard",
            machine.WDT_RESET: "watchdog",
            machine.DEEPSLEEP_RESET: "deepsleep",
            machine.SOFT_RESET: "soft",
        }
        return causes.get(machine.reset_cause(), "unknown")
