"""Finding the serial port a board is on, and saying how to pick one."""

import os

from tools import ROOT, ToolError

VBOARD_TTY = os.path.join(ROOT, "build", "vboard", "tty")

_CHECKLIST = (
    "Check that:\n"
    "  - the board is plugged in with a USB cable that carries data (some only charge);\n"
    "    an ESP32-CAM needs its USB adapter board (ESP32-CAM-MB) or a USB-serial adapter;\n"
    "  - the USB-serial driver is loaded (CP210x or CH340): `dmesg | tail` right after\n"
    "    plugging in should name a ttyUSB or ttyACM device;\n"
    "  - you may open it: join the dialout group (`sudo usermod -aG dialout $USER`, then\n"
    "    log in again).\n")


def serial_ports():
    """The serial ports pyserial finds on this machine."""
    from serial.tools import list_ports

    return list(list_ports.comports())


def _describe(ports):
    lines = []
    for p in sorted(ports, key=lambda p: (getattr(p, "vid", None) is None, p.device)):
        desc = p.description if p.description and p.description != "n/a" else ""
        hwid = p.hwid if p.hwid and p.hwid != "n/a" else ""
        lines.append(("  %-16s %s %s" % (p.device, desc, "(%s)" % hwid if hwid else "")).rstrip())
    return lines


def no_port_error(command, ports, vboard=False):
    """The ToolError for ``make <command>`` run without PORT.

    :param command: what to run again, e.g. ``"flash BOARD=esp32cam"``.
    :param ports: pyserial ``ListPortInfo`` objects (or anything with
                  ``device``, ``description``, ``hwid`` and ``vid``).
    :param vboard: offer the virtual board's pty too (not for flashing).
    """
    usb = sorted((p for p in ports if getattr(p, "vid", None) is not None), key=lambda p: p.device)
    running = vboard and os.path.exists(VBOARD_TTY)
    vb_line = "  %-16s the virtual board (make run)" % os.path.relpath(VBOARD_TTY)
    if not usb and not running:
        found = ("no serial port given, and no USB serial port found (only: %s)."
                 % ", ".join(sorted(p.device for p in ports))) if ports else \
            "no serial port given, and none found on this machine."
        also = " (or start the virtual board with `make run`)" if vboard else ""
        return ToolError("%s %sThen run: make %s PORT=/dev/ttyUSB0%s"
                         % (found, _CHECKLIST, command, also))
    example = usb[0].device if usb else os.path.relpath(VBOARD_TTY)
    lines = _describe(ports) + ([vb_line] if running else [])
    return ToolError(
        "no serial port given. Serial ports found:\n%s\n"
        "Pick the board's one (unplug the board and run again to see which one goes) and run:\n"
        "  make %s PORT=%s" % ("\n".join(lines), command, example))


def require(port, command, ports=None):
    """Return ``port``, or raise the ToolError that lists what to pick from.

    :param command: the make target the user ran, used in the hint.
    :param ports: the ports to offer (default: ``serial_ports()``).
    """
    if port:
        return port
    raise no_port_error(command, serial_ports() if ports is None else ports, vboard=True)
