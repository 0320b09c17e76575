# Settings on the MicroPython VM: defaults, validation, atomic saves.
import json
import os

import vmtest
from camwatch.settings import DEFAULTS, Settings, SettingsError, password_hash

PATH = vmtest.scratch("camwatch-test-settings.json")


def _fresh(content=None):
    for p in (PATH, PATH + ".new"):
        try:
            os.remove(p)
        except OSError:
            pass
    if content is not None:
        with open(PATH, "w") as f:
            f.write(content)
    return Settings(PATH)


def test_missing_file_gives_defaults_without_warnings():
    s = _fresh()
    assert s.load() == []
    assert s["telemetry_s"] == DEFAULTS["telemetry_s"]


def test_corrupt_file_is_reported_and_defaults_used():
    s = _fresh('{"telemetry_s": 9,')
    warnings = s.load()
    assert warnings == ["settings file is corrupt; using defaults"]
    assert s["telemetry_s"] == DEFAULTS["telemetry_s"]


def test_bad_values_are_reported_one_by_one_and_good_ones_kept():
    s = _fresh(json.dumps({"telemetry_s": 9, "sensitivity": 500, "nonsense": 1}))
    warnings = s.load()
    assert s["telemetry_s"] == 9
    assert s["sensitivity"] == DEFAULTS["sensitivity"]
    assert len(warnings) == 2
    assert "sensitivity" in warnings[0] or "sensitivity" in warnings[1]


def test_update_validates_everything_before_changing_anything():
    s = _fresh()
    s.load()
    try:
        s.update({"telemetry_s": 7, "sensitivity": 0})
        raise AssertionError("accepted sensitivity 0")
    except SettingsError as exc:
        assert exc.field == "sensitivity"
        assert exc.reason == "must be between 1 and 100"
    assert s["telemetry_s"] == DEFAULTS["telemetry_s"]
    try:
        os.stat(PATH)
        raise AssertionError("a refused update wrote the file")
    except OSError:
        pass


def test_update_saves_atomically_and_returns_what_changed():
    s = _fresh()
    s.load()
    assert s.update({"telemetry_s": 7, "sensitivity": DEFAULTS["sensitivity"]}) == ["telemetry_s"]
    with open(PATH) as f:
        assert json.load(f)["telemetry_s"] == 7
    try:
        os.stat(PATH + ".new")
        raise AssertionError("temporary file left behind")
    except OSError:
        pass
    again = Settings(PATH)
    assert again.load() == [] and again["telemetry_s"] == 7


def test_a_failed_save_changes_nothing():
    s = _fresh()
    s.load()
    s.update({"telemetry_s": 7})
    os.mkdir(PATH + ".new")  # the temporary file cannot be written
    try:
        for change in (lambda: s.update({"telemetry_s": 9, "sensitivity": 33}),
                       lambda: s.provision({"telemetry_s": 9, "wifi_ssid": "elsewhere"})):
            try:
                change()
                raise AssertionError("the save did not fail")
            except OSError:
                pass
            assert s["telemetry_s"] == 7
            assert s["sensitivity"] == DEFAULTS["sensitivity"]
            assert s["wifi_ssid"] == DEFAULTS["wifi_ssid"]
    finally:
        os.rmdir(PATH + ".new")
    again = Settings(PATH)
    assert again.load() == [] and again["telemetry_s"] == 7


def test_types_are_checked():
    s = _fresh()
    for key, value, reason in (("telemetry_s", "5", "must be a whole number"),
                               ("telemetry_s", True, "must be a whole number"),
                               ("hostname", "", "must be 1 to 32 characters"),
                               ("ap_password", "1234567", "must be empty (an open access "
                                "point) or 8 to 63 characters"),
                               ("mask", [[1, 2, 3]], "each entry must be [x, y, w, h] of whole numbers >= 0"),
                               ("bogus", 1, "unknown setting")):
        try:
            s.update({key: value})
            raise AssertionError("accepted %s=%r" % (key, value))
        except SettingsError as exc:
            assert (exc.field, exc.reason) == (key, reason), (exc.field, exc.reason)
    assert s.update({"ap_password": "12345678"}) == ["ap_password"]
    assert s.update({"ap_password": ""}) == ["ap_password"]


def test_secrets_are_never_public_and_not_writable_from_the_page():
    s = _fresh(json.dumps({"wifi_password": "hunter2", "admin_salt": "ab",
                           "admin_hash": password_hash("ab", "letmein")}))
    s.load()
    public = s.public()
    for key in ("wifi_password", "admin_hash", "admin_salt", "ap_password"):
        assert key not in public
    assert public["admin_password_set"] is True
    assert s.check_password("letmein")
    assert not s.check_password("letmein ")
    assert not s.check_password(None)
    try:
        s.update({"admin_hash": "0" * 64})
        raise AssertionError("admin hash writable")
    except SettingsError as exc:
        assert exc.field == "admin_hash"


def test_no_admin_password_means_no_writes():
    s = _fresh()
    s.load()
    assert not s.check_password("")
    assert not s.check_password("anything")


def test_a_capability_declares_its_own_keys_secrets_and_restart_keys():
    from camwatch import settings as mod

    mod.declare({"zz_level": ("int", 0, 9, 4), "zz_token": ("str", 0, 16, "")},
                secrets=("zz_token",), restart=("zz_level",))
    s = _fresh(json.dumps({"zz_level": 7, "zz_token": "hunter2"}))
    assert s.load() == []
    assert s["zz_level"] == 7
    pub = s.public()
    assert pub["zz_level"] == 7 and "zz_token" not in pub
    assert "zz_level" in mod.RESTART
    try:
        s.update({"zz_level": 10})
        raise AssertionError("out of range accepted")
    except SettingsError as exc:
        assert exc.field == "zz_level"
    assert s["zz_level"] == 7


def test_an_old_file_with_end_frames_loads_quietly_and_the_key_goes_on_save():
    s = _fresh(json.dumps({"end_frames": 25, "sensitivity": 70}))
    assert s.load() == []
    assert s["sensitivity"] == 70 and s["end_s"] == DEFAULTS["end_s"]
    assert "end_frames" not in s.public()
    s.update({"end_s": 6})
    with open(PATH) as f:
        saved = json.load(f)
    assert saved["end_s"] == 6 and "end_frames" not in saved


def test_detection_settings_auto_mask_is_true_or_false():
    s = _fresh()
    s.load()
    for bad in (1, "yes", None):
        try:
            s.update({"auto_mask": bad})
        except SettingsError as exc:
            assert exc.field == "auto_mask"
        else:
            raise AssertionError("accepted auto_mask=%r" % (bad,))
    changed = s.update({"auto_mask": True, "light_switch_pct": 0})
    assert sorted(changed) == ["auto_mask", "light_switch_pct"], changed
    assert s["auto_mask"] is True
    try:
        s.update({"end_frames": 5})
    except SettingsError as exc:
        assert exc.field == "end_frames"
    else:
        raise AssertionError("end_frames accepted from the page")


def test_bool_and_choice_kinds_name_the_field():
    from camwatch.settings import check, declare

    declare({"t_flag": ("bool", 0, 0, False), "t_mode": ("choice", ("off", "on"), None, "off")})
    assert check("t_flag", True) is True and check("t_mode", "on") == "on"
    for key, bad, says in (("t_flag", 1, "true or false"), ("t_mode", "dim", "one of: off, on"),
                           ("t_mode", ["on"], "one of")):
        try:
            check(key, bad)
        except SettingsError as exc:
            assert exc.field == key and says in exc.reason, exc.reason
        else:
            raise AssertionError("%s=%r accepted" % (key, bad))
