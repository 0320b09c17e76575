// The settings form, built from whatever GET /api/settings returns: numbers
// become number inputs, booleans checkboxes, text text inputs, and lists or
// objects (masks) JSON text. Only changed fields are sent; the board checks
// them and names the field it refuses.

import { getJSON, within } from "./ui.js";

// Known keys: [label, hint]. Unknown keys still show, labelled by their name.
const KNOWN = {
  sensitivity: ["Sensitivity", "1–100; higher reacts to smaller changes"],
  min_blocks: ["Minimum blocks", "changed blocks that count as motion"],
  min_area: ["Minimum area (blocks)", "changed blocks that count as motion"],
  threshold: ["Pixel threshold", "grey-level change that marks a block"],
  start_frames: ["Start after frames", ""],
  end_s: ["End after still (s)", "an episode ends once nothing moved this long"],
  light_switch_pct: ["Light switch (%)", "this share of the picture changing at once is light, not motion; 0 off"],
  auto_mask: ["Mask repetitive motion", "leaves, curtains, screens mask themselves"],
  update_ms: ["Update every (ms)", "while motion lasts"],
  masks: ["Ignored areas", "JSON list of [x, y, w, h] in frame pixels"],
  mask: ["Ignored areas", "JSON list of [x, y, w, h] in frame pixels"],
  fps_max: ["Max frames/s", ""],
  telemetry_s: ["Telemetry every (s)", ""],
  heap_warn_bytes: ["Warn below free heap (bytes)", ""],
  heartbeat_s: ["Heartbeat every (s)", ""],
  streams_max: ["Max open streams", "each one holds a socket"],
  ring_size: ["Replay buffer (events)", ""],
  hostname: ["Host name", ""],
  wifi_ssid: ["Wi-Fi network", "empty: the board makes its own access point"],
  wifi_timeout_s: ["Wi-Fi timeout (s)", ""],
  http_port: ["HTTP port", "the page moves with it"],
  ntp_server: ["NTP server", "sets the board's clock; empty: events carry no time"],
  mqtt_host: ["MQTT broker", "name or address; empty: MQTT off"],
  mqtt_port: ["MQTT port", ""],
  mqtt_user: ["MQTT user", "the password is set with the API (never shown)"],
  mqtt_prefix: ["MQTT topic prefix", "empty: camwatch/<host name>"],
  ha_discovery: ["Home Assistant discovery", ""],
  mqtt_image: ["Send the motion picture over MQTT", ""],
  stream_fps: ["Live view frames/s", ""],
  viewers_max: ["Live viewers at once", "each one holds a socket; 0 turns the live view off"],
  framesize: ["Picture size", "bigger pictures cost detection time on the ESP32"],
  jpeg_quality: ["JPEG quality", "10–95; higher is sharper and bigger"],
  brightness: ["Brightness", ""],
  contrast: ["Contrast", ""],
  saturation: ["Saturation", ""],
  hmirror: ["Mirror", ""],
  vflip: ["Upside down", ""],
  awb: ["Auto white balance", ""],
  wb_mode: ["White balance", ""],
  special_effect: ["Effect", ""],
  aec: ["Auto exposure", ""],
  agc: ["Auto gain", ""],
  flash: ["Flash LED", "on, off, or lit for a snapshot"],
};
const ORDER = Object.keys(KNOWN);
const HIDDEN = ["admin_password_set"]; // facts about the board, not settings

function kindOf(v) {
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number") return "number";
  if (typeof v === "string") return "text";
  return "json";
}

export class SettingsForm {
  constructor(form, box) {
    this.form = form;
    this.box = box;
    this.values = null;
    this.fields = {};
    this.savedAt = 0;
    this.pw = form.querySelector("#admin-pw");
    this.pwErr = form.querySelector("#admin-pw-err");
    this.msg = form.querySelector("#settings-msg");
    form.addEventListener("submit", (e) => { e.preventDefault(); this.save(); });
  }

  async load() {
    try {
      // the camera's controls: ranges and choices for sliders and lists
      if (!this.controls) this.controls = (await getJSON("api/live").catch(() => ({}))).controls || {};
      this.values = await getJSON("api/settings");
      this.render();
      this.say("");
    } catch (err) {
      this.say("Could not load the settings: " + err.message, "bad");
    }
  }

  say(text, tone) {
    this.msg.textContent = text;
    this.msg.dataset.tone = tone || "";
  }

  render() {
    const v = this.values;
    const keys = Object.keys(v).filter((k) => !HIDDEN.includes(k));
    keys.sort((a, b) => {
      const ia = ORDER.indexOf(a), ib = ORDER.indexOf(b);
      return (ia < 0 ? 999 : ia) - (ib < 0 ? 999 : ib) || (a < b ? -1 : a > b ? 1 : 0);
    });
    this.box.textContent = "";
    this.fields = {};
    if (v.admin_password_set === false) this.box.append(this.claimBox());
    for (const key of keys) this.box.append(this.field(key, v[key]));
  }

  // A board with no admin password takes one, once (POST api/claim): in the
  // first minutes after it starts, or from its own access point.
  claimBox() {
    const box = document.createElement("div");
    box.className = "claim";
    box.innerHTML = '<p class="note">This board has no admin password yet, so nothing can be changed here. Set one now: the board takes it in the first 10 minutes after it starts, or from its own access point.</p>' +
      '<div class="field"><label for="claim-pw">New admin password</label><input id="claim-pw" type="password" autocomplete="new-password"><small>8 characters or more; every change asks for it</small><span id="claim-err" class="err" aria-live="polite"></span></div>' +
      '<div class="row"><button type="button" id="claim-btn">Set an admin password</button></div>';
    box.querySelector("#claim-btn").addEventListener("click", () => this.claim(box));
    return box;
  }

  async claim(box) {
    const pw = box.querySelector("#claim-pw").value;
    const err = box.querySelector("#claim-err");
    err.textContent = "";
    if (pw.length < 8) {
      err.textContent = "8 characters or more";
      return;
    }
    try {
      const res = await fetch("api/claim", within(8000, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ password: pw }),
      }));
      const data = await res.json();
      if (!res.ok) {
        err.textContent = data.reason || data.error;
        return;
      }
      this.pw.value = pw;
      await this.load();
      this.say("Admin password set. Keep it: every change asks for it.", "good");
    } catch (e) {
      err.textContent = "Could not reach the board: " + e.message;
    }
  }

  field(key, value) {
    const spec = (this.controls || {})[key] || {};
    const kind = spec.kind === "choice" ? "choice" : kindOf(value);
    const [label, hint] = KNOWN[key] || [key.replace(/_/g, " "), ""];
    const wrap = document.createElement("div");
    wrap.className = "field " + kind;
    const id = "set-" + key;
    const lab = document.createElement("label");
    lab.htmlFor = id;
    lab.textContent = label;
    let input;
    if (kind === "choice") {
      input = document.createElement("select");
      for (const c of spec.choices) input.add(new Option(c, c));
    } else if (kind === "json") {
      input = document.createElement("textarea");
      input.rows = 2;
      input.spellcheck = false;
    } else {
      input = document.createElement("input");
      if (kind === "bool") input.type = "checkbox";
      else if (kind === "number") {
        input.type = "number";
        input.step = "any";
        input.inputMode = Number.isInteger(value) ? "numeric" : "decimal";
        if (spec.kind === "int") {
          input.type = "range"; // a slider for the camera's small ranges
          input.min = spec.min;
          input.max = spec.max;
          input.step = 1;
        }
      } else {
        input.type = "text";
        input.autocapitalize = "off";
        input.spellcheck = false;
      }
    }
    input.id = id;
    input.name = key;
    const err = document.createElement("span");
    err.className = "err";
    err.id = id + "-err";
    err.setAttribute("aria-live", "polite");
    input.setAttribute("aria-describedby", err.id + (hint ? " " + id + "-hint" : ""));
    if (input.type === "range") {
      const out = document.createElement("output");
      out.htmlFor = id;
      lab.append(" ", out);
      input.addEventListener("input", () => { out.textContent = input.value; });
    }
    this.set(input, kind, value);
    if (kind === "bool") wrap.append(input, lab);
    else wrap.append(lab, input);
    if (hint) {
      const h = document.createElement("small");
      h.id = id + "-hint";
      h.textContent = hint;
      wrap.append(h);
    }
    wrap.append(err);
    this.fields[key] = { input, err, kind };
    return wrap;
  }

  set(input, kind, value) {
    if (kind === "bool") input.checked = value;
    else if (kind === "json") input.value = JSON.stringify(value);
    else input.value = value;
    if (input.type === "range") input.dispatchEvent(new Event("input"));
  }

  read(key) {
    const { input, kind } = this.fields[key];
    if (kind === "bool") return input.checked;
    if (kind === "number") return input.value.trim() === "" ? NaN : Number(input.value);
    if (kind === "json") return JSON.parse(input.value);
    return input.value;
  }

  error(key, text) {
    const f = key === "password" ? { input: this.pw, err: this.pwErr } : this.fields[key];
    if (!f) return false;
    f.err.textContent = text;
    f.input.setAttribute("aria-invalid", text ? "true" : "false");
    return true;
  }

  clearErrors() {
    for (const key in this.fields) this.error(key, "");
    this.error("password", "");
  }

  async save() {
    if (!this.values) return;
    this.clearErrors();
    const changes = {};
    let bad = null;
    for (const key in this.fields) {
      let v;
      try {
        v = this.read(key);
      } catch (err) {
        this.error(key, "not valid JSON");
        bad = bad || key;
        continue;
      }
      if (typeof v === "number" && Number.isNaN(v)) {
        this.error(key, "enter a number");
        bad = bad || key;
        continue;
      }
      if (JSON.stringify(v) !== JSON.stringify(this.values[key])) changes[key] = v;
    }
    if (bad) return this.fields[bad].input.focus();
    if (!Object.keys(changes).length) return this.say("Nothing changed.");
    if (!this.pw.value) {
      this.error("password", "the admin password is needed to save");
      return this.pw.focus();
    }
    this.say("Saving…");
    this.savedAt = Date.now(); // the board's `settings` event may come first
    let res, body;
    try {
      res = await fetch("api/settings", within(15000, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ password: this.pw.value, settings: changes }),
      }));
      body = await res.json().catch(() => ({}));
    } catch (err) {
      return this.say("The board did not answer; the change may not be saved. Press Reload to check.", "bad");
    }
    if (res.status === 401) {
      this.error("password", body.error || "wrong password");
      this.say("Not saved: the password was refused.", "bad");
      return this.pw.focus();
    }
    if (res.status === 400) {
      const text = body.reason || body.error || "refused";
      if (!this.error(body.field, text)) this.say("Not saved: " + (body.error || text), "bad");
      else this.say("Not saved: " + (KNOWN[body.field] ? KNOWN[body.field][0] : body.field) + " " + text + ".", "bad");
      const f = this.fields[body.field];
      if (f) f.input.focus();
      return;
    }
    if (!res.ok) return this.say("Not saved: " + (body.error || "the board answered " + res.status) + ".", "bad");
    this.pw.value = "";
    this.savedAt = Date.now();
    // a board short of heap answers {"saved": true} without the settings
    this.values = body.settings || Object.assign({}, this.values, changes);
    this.render();
    const changed = body.changed || Object.keys(changes);
    this.say(changed.length ? "Saved: " + changed.join(", ") + "." : "Saved (nothing was different).", "good");
  }

  // A `settings` status event: someone changed settings. Reload unless the
  // person is editing here (or it is the echo of our own save).
  changedElsewhere(keys) {
    if (Date.now() - this.savedAt < 5000) return;
    const note = "Changed on the board: " + keys.join(", ") + ".";
    if (this.box.contains(document.activeElement)) this.say(note + " Press Reload to see the new values.");
    else this.load().then(() => this.say(note));
  }
}
