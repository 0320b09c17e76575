"""boards.json: the one description of every supported board.

``load()`` validates the file against ``boards.schema.json`` and ``get(name)``
returns one board's entry (with its id under ``"id"``), or raises ToolError
listing the known boards.
"""

import json
import os

from tools import ROOT, ToolError

BOARDS_FILE = os.path.join(ROOT, "boards.json")
SCHEMA_FILE = os.path.join(os.path.dirname(__file__), "boards.schema.json")


def validate(data):
    """Raise ToolError describing the first schema violation in ``data``."""
    import jsonschema

    with open(SCHEMA_FILE) as f:
        schema = json.load(f)
    validator = jsonschema.Draft202012Validator(schema)
    e = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if e is not None:
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ToolError("boards.json is invalid at %s: %s" % (where, e.message))
    for bid, board in data["boards"].items():
        fw = board.get("firmware")
        tail = fw and "/releases/download/%s/%s" % (fw["release"], fw["asset"])
        if fw and not fw["url"].endswith(tail):
            raise ToolError("boards.json is invalid at boards/%s/firmware/url: it must end with "
                            "%s (the pinned release and asset)" % (bid, tail))


def load(path=BOARDS_FILE):
    """Return the validated ``{"boards": {...}}`` document."""
    try:
        with open(path) as f:
            data = json.load(f)
    except ValueError as exc:
        raise ToolError("%s is not valid JSON: %s" % (path, exc))
    validate(data)
    return data


def get(name, path=BOARDS_FILE):
    """Return the entry for board ``name`` with ``"id"`` set to the name."""
    boards = load(path)["boards"]
    if name not in boards:
        raise ToolError(
            "unknown board %r; known boards: %s (set BOARD=<one of them>)"
            % (name, ", ".join(sorted(boards)))
        )
    entry = dict(boards[name])
    entry["id"] = name
    return entry


def names(path=BOARDS_FILE):
    return sorted(load(path)["boards"])
