"""Debian's ``mosquitto`` as a child process: ``make fleet``, the MQTT tests
and the MQTT bench start their own broker with a configuration of their own
on a free port of 127.0.0.1 (never the system service), and stop it after.
"""

import getpass
import os
import shutil
import socket
import subprocess
import time

from tools import ToolError


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_command():
    path = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(path):
        raise ToolError("Debian's mosquitto is not installed: `make mosquitto` installs it "
                        "(`make test` and `make fleet` do it for you)")
    return path


class Broker:
    """``mosquitto -c <conf>`` on a free port of 127.0.0.1.

    :param folder: where its configuration, password file and log go.
    :param users: ``{user: password}``; when given, anonymous clients are
        refused and only these may connect.
    :param persistent: keep retained messages and persistent sessions (with
        what is queued for them) across a restart, as a broker installed as
        a service does.
    """

    def __init__(self, folder, users=None, port=None, persistent=False):
        self.folder = str(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.port = port or free_port()
        self.log_path = os.path.join(self.folder, "mosquitto.log")
        self.conf = os.path.join(self.folder, "mosquitto.conf")
        # as root, mosquitto would switch to its own user, who cannot read
        # the test's folder: stay who we are
        lines = ["user %s" % getpass.getuser(), "listener %d 127.0.0.1" % self.port,
                 "persistence %s" % ("true" if persistent else "false"),
                 "persistence_location %s/" % self.folder,
                 "log_dest file %s" % self.log_path, "log_type error", "log_type warning",
                 "log_type notice", "log_type information", "connection_messages true"]
        if users:
            pw = os.path.join(self.folder, "passwd")
            open(pw, "w").close()
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", pw, user, password], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", "password_file %s" % pw]
        else:
            lines.append("allow_anonymous true")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None

    def start(self, timeout=10):
        # a session of its own: Ctrl-C on `make fleet` reaches the boards,
        # which say goodbye to a broker still there; stop() ends it after
        self.proc = subprocess.Popen([mosquitto_command(), "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ToolError("mosquitto exited: %s\n%s"
                                % (self.proc.stderr.read().decode(), self.log()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ToolError("mosquitto did not listen on port %d within %d s:\n%s"
                        % (self.port, timeout, self.log()))

    def stop(self):
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
