"""Finding the serial port a board is on, and saying how to pick one."""

import os

from tools import ROOT, ToolError

VBOARD_TTY = os.path.join(ROOT, "build", "vboard", "tty")


def found():
    """``[(device, description)]`` for every serial port on this host, plus
    the virtual board's pty when `make run` is up."""
    from serial.tools import list_ports

    ports = [(p.device, p.description or "") for p in sorted(list_ports.comports())]
    if os.path.exists(VBOARD_TTY):
        ports.append((os.path.relpath(VBOARD_TTY), "camwatch virtual board (make run)"))
    return ports


def require(port, command, ports=None):
    """Return ``port``, or raise ToolError listing the ports to choose from.

    :param command: the make target the user ran, used in the hint.
    :param ports: the ports to offer (default: ``found()``).
    """
    if port:
        return port
    ports = found() if ports is None else ports
    if not ports:
        raise ToolError(
            "no serial port given and none found. Plug the board in with a data-capable USB "
            "cable, check the USB-serial driver (CP210x/CH340) and that you may open it "
            "(Linux: be in the 'dialout' group), or start the virtual board with `make run`; "
            "then run `make %s PORT=<port>`" % command)
    lines = ["  %-28s %s" % p for p in ports]
    raise ToolError("no serial port given. Found:\n%s\npick one: make %s PORT=%s"
                    % ("\n".join(lines), command, ports[0][0]))
