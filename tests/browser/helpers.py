"""Reading the dashboard's state in a test."""

import re

from playwright.sync_api import expect

ADMIN_PASSWORD = "correct horse"  # the test boards' admin password

def log_rows(page):
    """The event log, oldest first: [(name, id, kind)]."""
    rows = page.eval_on_selector_all(
        "#log-list li", "els => els.map(e => [e.dataset.name, e.dataset.id, e.className])")
    rows.reverse()
    return [(name, id_, cls[2:] if cls.startswith("k-") else cls) for name, id_, cls in rows]


def parse_id(event_id):
    tag, _, n = event_id.rpartition("-")
    return tag, int(n)


def wait_state(page, state, timeout=20000):
    """Wait until the connection indicator shows ``state`` (or one of them)."""
    states = [state] if isinstance(state, str) else list(state)
    expect(page.locator("#conn")).to_have_attribute(
        "data-state", re.compile("^(%s)$" % "|".join(states)), timeout=timeout)
