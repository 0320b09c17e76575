"""Settings: a JSON file on flash, with a default for every key.

A missing, corrupt or invalid file never stops the board: what cannot be used
is reported (``load()`` returns the warnings) and the default is used instead.
Saves are atomic: the new file is written beside the old one and renamed over
it, so a power cut mid-save leaves the old file or the new one.

Every key has a spec ``(type, low, high)``: ints and floats are range-checked,
strings are length-checked (``low``..``high`` characters), ``"bool"`` is true
or false, ``"choice"`` is one of the strings in ``low`` (``high`` unused),
``"rects"`` is a list of at most ``high`` ``[x, y, w, h]`` lists of
non-negative ints. A key the firmware no longer has (``RETIRED``) is dropped
from an old file without a warning.
Secrets (Wi-Fi password, admin password hash) are never returned by
``public()``.
"""

import json
import os

import hashlib

PATH = "settings.json"  # relative to / (see README: renames on the VM)

SPECS = {
    # network
    "hostname": ("str", 1, 32),
    "wifi_ssid": ("str", 0, 32),
    "wifi_password": ("str", 0, 64),
    "wifi_timeout_s": ("int", 5, 120),
    "ap_password": ("str", 0, 63),
    "http_port": ("int", 1, 65535),
    # streams
    "ring_size": ("int", 8, 128),
    "heartbeat_s": ("int", 2, 60),
    "streams_max": ("int", 1, 8),
    # telemetry
    "telemetry_s": ("int", 1, 300),
    "heap_warn_bytes": ("int", 0, 1 << 30),
    # detection (see camwatch.motion for what each means)
    "sensitivity": ("int", 1, 100),
    "threshold": ("int", 1, 255),
    "min_area": ("int", 1, 300),
    "start_frames": ("int", 1, 30),
    "end_s": ("int", 1, 600),
    "update_ms": ("int", 100, 10000),
    "light_switch_pct": ("int", 0, 100),
    "auto_mask": ("bool", 0, 1),
    "mask": ("rects", 0, 16),
    "fps_max": ("int", 1, 30),
    # motion thumbnails (camwatch.episodes, loaded at the first motion: its
    # keys are here so that a settings file is read whole at boot)
    "episodes_max": ("int", 0, 32),
    "thumbs_bytes": ("int", 2048, 262144),
    "sd_max_mb": ("int", 0, 1048576),
    # updates: seconds a deployed app serves before it is kept (boot.py
    # rolls back one that failed 3 times before that)
    "confirm_s": ("int", 5, 3600),
    # admin (written by `make deploy`; a salted sha256, never the password)
    "admin_salt": ("str", 0, 64),
    "admin_hash": ("str", 0, 64),
}

DEFAULTS = {
    "hostname": "camwatch",
    "wifi_ssid": "",
    "wifi_password": "",
    "wifi_timeout_s": 20,
    "ap_password": "",
    "http_port": 80,
    "ring_size": 32,
    "heartbeat_s": 15,
    "streams_max": 4,
    "telemetry_s": 5,
    "heap_warn_bytes": 16384,
    "sensitivity": 50,
    "threshold": 16,
    "min_area": 3,
    "start_frames": 3,
    "end_s": 4,
    "update_ms": 500,
    "light_switch_pct": 20,
    "auto_mask": False,
    "mask": [],
    "fps_max": 10,
    "episodes_max": 8,
    "thumbs_bytes": 12288,
    "sd_max_mb": 1024,
    "confirm_s": 60,
    "admin_salt": "",
    "admin_hash": "",
}

# The keys camwatch.motion.Detector takes.
DETECTION = ("sensitivity", "threshold", "min_area", "start_frames", "end_s", "update_ms",
             "light_switch_pct", "auto_mask", "mask")
# Keys older firmware had: an old settings file may hold them (end_frames
# became the time-based end_s, since the frame rate varies).
RETIRED = ("end_frames",)

SECRETS = ["wifi_password", "ap_password", "admin_salt", "admin_hash"]
# Keys only `make deploy` writes: the settings page cannot change them.
PROVISIONED = ["wifi_password", "admin_salt", "admin_hash"]
_UNSET = object()  # a key a failed save found missing
# Keys read once at start: a change is saved but applies after a restart.
RESTART = ["ring_size", "streams_max", "heartbeat_s", "http_port", "hostname", "wifi_ssid",
           "wifi_timeout_s", "ap_password"]


def declare(keys, secrets=(), provisioned=(), restart=()):
    """Add a capability's own settings keys (call at import, before Settings()).

    :param keys: ``{key: (kind, low, high, default)}``, the spec as in SPECS
                 plus the default value.
    :param secrets: keys never returned by ``public()``.
    :param provisioned: keys the settings page may not write.
    :param restart: keys that apply only after a restart.
    """
    for key, (kind, low, high, default) in keys.items():
        SPECS[key] = (kind, low, high)
        DEFAULTS[key] = default
    for table, new in ((SECRETS, secrets), (PROVISIONED, provisioned), (RESTART, restart)):
        for key in new:
            if key not in table:
                table.append(key)


class SettingsError(ValueError):
    """A bad value: ``field`` names the key, ``reason`` says what is wrong."""

    def __init__(self, field, reason):
        super().__init__(field + ": " + reason)
        self.field = field
        self.reason = reason


def check(key, value):
    """Return ``value`` if it is valid for ``key``, else raise SettingsError."""
    spec = SPECS.get(key)
    if spec is None:
        raise SettingsError(key, "unknown setting")
    kind, low, high = spec
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(key, "must be a whole number")
        if not low <= value <= high:
            raise SettingsError(key, "must be between %d and %d" % (low, high))
    elif kind == "bool":
        if not isinstance(value, bool):
            raise SettingsError(key, "must be true or false")
    elif kind == "str":
        if not isinstance(value, str):
            raise SettingsError(key, "must be text")
        if not low <= len(value) <= high:
            raise SettingsError(key, "must be %d to %d characters" % (low, high))
        if key == "ap_password" and 0 < len(value) < 8:  # the ESP32 refuses a shorter WPA2 key
            raise SettingsError(key, "must be empty (an open access point) or 8 to 63 characters")
    elif kind == "choice":
        if not isinstance(value, str) or value not in low:
            raise SettingsError(key, "must be one of: " + ", ".join(low))
    elif kind == "rects":
        if not isinstance(value, list) or len(value) > high:
            raise SettingsError(key, "must be a list of at most %d [x, y, w, h]" % high)
        for r in value:
            if (not isinstance(r, list) or len(r) != 4
                    or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in r)):
                raise SettingsError(key, "each entry must be [x, y, w, h] of whole numbers >= 0")
    return value


def password_hash(salt, password):
    """Hex sha256 of salt + password, as `make deploy` stores it."""
    import binascii

    return binascii.hexlify(hashlib.sha256((salt + password).encode()).digest()).decode()


class Settings:
    """The board's settings.

    :param path: file on flash (relative to /).
    :param overrides: defaults that differ on this board (e.g. streams_max
                      from board.json); the file still wins over them.
    """

    def __init__(self, path=PATH, overrides=None):
        self.path = path
        self.values = dict(DEFAULTS)
        if overrides:
            self.values.update(overrides)

    def __getitem__(self, key):
        return self.values[key]

    def load(self):
        """Read the file; return a list of warnings (empty when all is well).

        A save cut short (a power cut, a reset) leaves the old file and
        perhaps a ``.new`` beside it, which is dropped. Where the filesystem
        cannot rename over a file (FAT: the old file is removed first), a cut
        between the two steps leaves only the ``.new``, complete: it is
        taken and renamed into place.
        """
        tmp = self.path + ".new"
        try:
            os.stat(self.path)
            try:
                os.remove(tmp)
            except OSError:
                pass  # the usual case: no save was cut short
        except OSError:
            try:
                os.rename(tmp, self.path)
            except OSError:
                return []  # no file yet: defaults
        try:
            with open(self.path) as f:
                data = json.load(f)
        except OSError:
            return []
        except ValueError:
            return ["settings file is corrupt; using defaults"]
        if not isinstance(data, dict):
            return ["settings file is not a JSON object; using defaults"]
        warnings = []
        for key, value in data.items():
            if key in RETIRED:
                continue
            try:
                self.values[key] = check(key, value)
            except SettingsError as exc:
                warnings.append("setting %s ignored (%s); using %r"
                                % (key, exc.reason, self.values.get(key)))
        return warnings

    def public(self):
        """All settings except secrets, plus whether Wi-Fi/admin are set."""
        out = {}
        for key, value in self.values.items():
            if key not in SECRETS:
                out[key] = value
        out["admin_password_set"] = bool(self.values["admin_hash"])
        return out

    def check_password(self, password):
        """True when ``password`` is the admin password. No admin password set
        means no writes at all (claim the board from the page, see
        camwatch.portal, or set one with `make deploy`)."""
        if not self.values["admin_hash"] or not isinstance(password, str):
            return False
        return password_hash(self.values["admin_salt"], password) == self.values["admin_hash"]

    def update(self, changes):
        """Validate every change, then apply and save them all (or none).

        Returns the list of keys whose value changed. When the save fails
        (a full flash, no heap left to write it), the values are as they
        were and the error is raised: nothing changed.
        """
        if not isinstance(changes, dict):
            raise SettingsError("settings", "must be an object of key: value")
        for key, value in changes.items():
            if key in PROVISIONED:
                raise SettingsError(key, "is set by `make deploy`, not from the page")
            check(key, value)
        changed = [k for k, v in changes.items() if self.values.get(k) != v]
        if changed:
            self._save_with(changes, changed)
        return changed

    def provision(self, values):
        """Set ``values`` in one atomic save, keys the page may not write
        included (Wi-Fi, the admin password's salt and hash): for the setup
        and claim routes (camwatch.portal), once they have checked who asks.
        Raises SettingsError, changing nothing, if any value is invalid, and
        what the save raised, changing nothing, if it failed."""
        for key, value in values.items():
            check(key, value)
        self._save_with(values, list(values))

    def _save_with(self, changes, keys):
        # set ``keys`` of ``changes`` and save; a failed save puts the old
        # values back before its error goes on up: nothing changed
        values = self.values
        old = [values.get(k, _UNSET) for k in keys]
        for key in keys:
            values[key] = changes[key]
        try:
            self.save()
        except BaseException:
            for i in range(len(keys)):
                if old[i] is _UNSET:
                    values.pop(keys[i], None)
                else:
                    values[keys[i]] = old[i]
            raise

    def save(self):
        """Write the file atomically: new file, then rename over the old."""
        tmp = self.path + ".new"
        with open(tmp, "w") as f:
            json.dump(self.values, f)
        try:
            os.rename(tmp, self.path)
        except OSError:  # filesystems that refuse to rename over a file
            os.remove(self.path)
            os.rename(tmp, self.path)
