"""camwatch: camera telemetry over Server-Sent Events for the ESP32-CAM."""

__version__ = "0.1.0"
