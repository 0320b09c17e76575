"""Wall-clock time on the virtual board: once NTP answers, motion, telemetry
and status events carry ``time`` (Unix seconds, UTC) and the page shows the
board's time; while NTP does not answer they carry none, a warning says why,
and the board keeps asking."""

import json
import time

from conftest import board_flash, free_port, romfs_image, write_settings
from sse_client import Stream
from tools.vboard import VirtualBoard


def test_events_carry_wall_clock_time_once_ntp_answers(vboard_fs, tmp_path):
    flash = tmp_path / "flash"
    board_flash(flash)
    write_settings(flash, telemetry_s=1)
    down = flash / ".vboard" / "ntp-down"  # the NTP server does not answer
    down.parent.mkdir(exist_ok=True)
    down.write_text("")
    vb = VirtualBoard(str(flash), str(tmp_path / "tty"), http_port=free_port(),
                      romfs=romfs_image())
    vb.start()
    try:
        vb.wait_http(timeout=30)
        vb.wait_console("clock: no answer from NTP server pool.ntp.org", timeout=30)
        with Stream(vb.url, timeout=10) as stream:
            tele = json.loads(stream.next(timeout=10, event="telemetry").data)
            assert "time" not in tele  # the board does not know the time
            down.unlink()  # the server answers the next retry (10 s later)
            deadline = time.monotonic() + 60
            kinds = set()
            while kinds != {"telemetry", "motion", "status"}:
                assert time.monotonic() < deadline, kinds
                ev = stream.next(timeout=30)
                data = json.loads(ev.data)
                if ev.event == "status" and data.get("kind") == "clock":
                    assert "set from pool.ntp.org" in data["message"]
                if "time" in data:
                    assert abs(data["time"] - time.time()) < 5, data
                    kinds.add(ev.event)
    finally:
        vb.stop()
    assert "Traceback" not in vb.console()
