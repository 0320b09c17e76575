"""A fleet on one machine: five virtual boards and one Mosquitto for a
minute (tools.fleet, what `make fleet` runs). Every board's events reach the
broker in order with no gap in their ids, and every Home Assistant discovery
config is valid by the integration's rules."""

import time
import urllib.request

from mqtt_broker import Watcher, discovery_problems
from sse_client import boot_tag, id_number
from tools.fleet import Fleet

BOARDS = 5
MINUTE = 60


def test_five_boards_for_a_minute_on_one_broker(vboard_fs, tmp_path):
    fleet = Fleet(BOARDS, folder=str(tmp_path / "fleet"), settings={"telemetry_s": 2})
    fleet.broker.start()
    watch = Watcher(fleet.broker)
    try:
        fleet.start()
        for name, vb in fleet.boards:
            watch.topic("camwatch/%s/availability" % name, payload=b"online", timeout=90)
        time.sleep(MINUTE)  # the minute the five report together
        for name, vb in fleet.boards:
            with urllib.request.urlopen(vb.url + "api/status", timeout=5) as r:
                assert r.status == 200
            assert "Traceback" not in vb.console(), vb.console()[-2000:]
        messages = list(watch.messages)
    finally:
        watch.close()
        fleet.stop()

    seen = {m.topic for m in messages}
    for name, vb in fleet.boards:
        prefix = "camwatch/" + name
        events = [m for m in messages if m.topic.startswith(prefix + "/event/")]
        ids = [m.json()["id"] for m in events]
        assert len(ids) > MINUTE // 4, (name, len(ids))  # telemetry every 2 s, motion, status
        assert len({boot_tag(i) for i in ids}) == 1, (name, ids[:5])
        numbers = [id_number(i) for i in ids]
        # from the boot event on, every one, in order
        assert numbers == list(range(1, len(numbers) + 1)), (name, numbers)
        kinds = {m.topic.rsplit("/", 1)[1] for m in events}
        assert {"status", "telemetry", "motion"} <= kinds, (name, kinds)

    configs = {m.topic: m for m in messages if m.topic.startswith("homeassistant/")}
    assert len(configs) == 12 * BOARDS
    problems, unique_ids = [], []
    for topic, m in configs.items():
        assert m.payload, topic
        config = m.json()
        node = topic.split("/")[2]
        owner = [n for n, vb in fleet.boards if config["availability_topic"] ==
                 "camwatch/%s/availability" % n]
        assert len(owner) == 1, topic
        problems += discovery_problems(topic, config, seen, "camwatch/" + owner[0])
        assert config["device"]["identifiers"] == [node]
        assert config["device"]["name"] == owner[0]
        unique_ids.append(config["unique_id"])
    assert not problems, "\n".join(problems)
    assert len(set(unique_ids)) == len(unique_ids)
    assert len({c.json()["device"]["configuration_url"] for c in configs.values()}) == BOARDS
