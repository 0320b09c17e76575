// camwatch dashboard: wires the event stream to the panels.

import { $, setText, clock, duration, num, kb, getJSON, Spark } from "./ui.js";
import { Stream } from "./stream.js";
import { EventLog } from "./log.js";

const log = new EventLog($("log-list"), $("paused-note"));

// ---- connection -------------------------------------------------------------

const conn = $("conn");
const connText = $("conn-text");
const ageEl = $("age");
const connSr = $("conn-sr"); // what a screen reader hears: the state, not the countdown
const SAY = {
  connecting: "Connecting", live: "Live", stale: "Connected, but no events lately",
  reconnecting: "Connection lost, reconnecting", busy: "Device busy, retrying", offline: "Offline, retrying",
};

function showConnection() {
  const st = stream.state;
  const left = stream.retryAt ? Math.ceil((stream.retryAt - Date.now()) / 1000) : 0;
  const when = left > 0 ? " in " + left + " s" : "…";
  let text;
  if (st === "live") text = "Live";
  else if (st === "stale") text = "Live, but quiet";
  else if (st === "reconnecting") text = "Reconnecting" + when;
  else if (st === "busy") text = "Device busy, retrying" + when;
  else if (st === "offline") text = "Offline, retrying" + when;
  else text = "Connecting…";
  conn.dataset.state = st;
  setText(connText, text);
  setText(connSr, SAY[st] || st);
  const at = stream.lastEventAt;
  setText(ageEl, at ? duration((Date.now() - at) / 1000) + " ago" : "never");
  ageEl.dataset.old = at && Date.now() - at > stream.staleMs ? "1" : "0";
}

// ---- board status -----------------------------------------------------------

const facts = {
  board: $("s-board"), version: $("s-version"), uptime: $("s-uptime"), streams: $("s-streams"),
  wifi: $("s-wifi"), camera: $("s-camera"), heapmin: $("s-heapmin"), events: $("s-events"),
  update: $("s-update"),
};
let uptime = null; // [uptime_s, when we learnt it]

function setUptime(s) {
  if (typeof s === "number") uptime = [s, Date.now()];
}

function showUptime() {
  if (uptime) setText(facts.uptime, duration(uptime[0] + (Date.now() - uptime[1]) / 1000));
}

function showWifi(w) {
  if (!w) return;
  if (typeof w === "string") return setText(facts.wifi, w);
  setText(facts.wifi, [w.state, w.ip, w.ssid, w.rssi != null ? w.rssi + " dBm" : ""].filter(Boolean).join(" · "));
}

function showCamera(c) {
  if (!c) return;
  setText(facts.camera, typeof c === "string" ? c : [c.state, c.message].filter(Boolean).join(": "));
}

function showStreams(d) {
  if (d.clients != null) setText(facts.streams, d.clients + " of " + num(d.clients_max) + " in use");
}

function warn(message, at) {
  const list = $("warnings");
  const li = document.createElement("li");
  li.textContent = (at ? clock(at) + " " : "") + message;
  list.prepend(li);
  while (list.childElementCount > 5) list.lastElementChild.remove();
}

let statusAt = 0, statusUptime = null;

async function refreshStatus() {
  statusAt = Date.now();
  try {
    const s = await getJSON("api/status");
    statusUptime = s.uptime_s;
    if (s.board) setText(facts.board, String(s.board));
    if (s.version) setText(facts.version, String(s.version));
    setUptime(s.uptime_s);
    showUptime();
    showStreams(s);
    showWifi(s.wifi);
    showCamera(s.camera);
    if (s.heap_min_free != null) setText(facts.heapmin, kb(s.heap_min_free));
    if (s.auto_mask) showMask(s.auto_mask);
    if (Array.isArray(s.warnings)) {
      $("warnings").textContent = "";
      for (const w of s.warnings) warn(typeof w === "string" ? w : w.message || JSON.stringify(w));
    }
  } catch (err) { /* the stream will tell us when the board is back */ }
}

// ---- telemetry --------------------------------------------------------------

const tiles = {};
for (const tile of document.querySelectorAll(".tile")) {
  tiles[tile.dataset.key] = { out: tile.querySelector(".v"), spark: new Spark(tile.querySelector("svg"), 60) };
}
const tileText = {
  heap_free: (v) => kb(v),
  rssi: (v) => num(v, undefined, " dBm"),
  temperature: (v) => num(v, 1, " °C"),
  fps: (v) => num(v, 1),
};

function onTelemetry(d) {
  for (const key in tiles) {
    const v = d[key];
    setText(tiles[key].out, tileText[key](v));
    tiles[key].spark.push(v);
  }
  setUptime(d.uptime_s);
  showUptime();
  showStreams(d);
  if (d.heap_min_free != null) setText(facts.heapmin, kb(d.heap_min_free));
  if (d.published != null) {
    setText(facts.events, d.published + " sent · " + num(d.dropped) + " dropped · " + num(d.resyncs) + " resyncs");
  }
  return "heap " + kb(d.heap_free) + " · rssi " + num(d.rssi) + " · " + num(d.temperature, 1, " °C") +
    " · fps " + num(d.fps, 1) + " · streams " + num(d.clients) + "/" + num(d.clients_max);
}

// ---- motion -----------------------------------------------------------------

const snap = $("snap");
const overlay = $("overlay");
const maskG = $("automask");
const bbox = $("bbox");
const centroid = $("centroid");
const badge = $("motion-state");
const episodes = $("episodes");
let frame = "";
let bootWall = Infinity; // wall-clock ms at the board's uptime 0, best guess
let episode = null; // the episode in progress: {start, peak, li}
let snapLoading = false, snapWanted = false, snapTimer = 0, snapAt = 0;

// Fetch a new picture: never two at once (unless one has hung for 6 s), at
// most one a second. Not while the live view plays in the same place.
function refreshSnapshot() {
  if (live) return;
  if ((snapLoading && Date.now() - snapAt < 6000) || snapTimer) { snapWanted = true; return; }
  const wait = snapAt + 1000 - Date.now();
  if (wait > 0) {
    snapTimer = setTimeout(() => { snapTimer = 0; refreshSnapshot(); }, wait);
    return;
  }
  snapLoading = true;
  snapWanted = false;
  snapAt = Date.now();
  snap.src = "snapshot?t=" + snapAt;
}
function snapshotDone() {
  snapLoading = false;
  if (snapWanted) refreshSnapshot();
}
snap.onload = snapshotDone;
snap.onerror = () => {
  if (live) return liveFailed();
  snap.dataset.missing = "1";
  snapshotDone();
};
snap.addEventListener("load", () => { snap.dataset.missing = "0"; });
$("snap-btn").onclick = refreshSnapshot;

// ---- live view (off until tapped: a phone on mobile data pays nothing) -------

const liveBtn = $("live-btn");
const liveNote = $("live-note");
let live = false;

function setLive(on, note) {
  live = on;
  liveBtn.setAttribute("aria-pressed", on);
  liveBtn.textContent = on ? "Stop live view" : "Watch live";
  setText(liveNote, note || (on ? "Live from the camera" : ""));
  snap.dataset.live = on ? "1" : "0";
  if (on) {
    snapLoading = false;
    snap.dataset.missing = "0";
    snap.src = "stream?t=" + Date.now();
  } else {
    snapAt = 0;
    refreshSnapshot(); // replacing the source ends the stream
  }
}
async function liveFailed() {
  let why = "The live view stopped.";
  try {
    const s = await getJSON("api/live");
    if (s.viewers_max === 0) why = "The live view is turned off on this board.";
    else if (s.viewers >= s.viewers_max) why = "Someone else is watching (" + s.viewers + " of " + s.viewers_max + "); try again later.";
  } catch (err) { /* the board is away: the connection state says so */ }
  setLive(false, why);
}
liveBtn.onclick = () => setLive(!live);

// Scores are percent of the watched area that changed (1..100); a fraction
// (0..1) from another firmware is shown the same way.
function pct(v) {
  if (typeof v !== "number") return null;
  return v < 1 && !Number.isInteger(v) ? v * 100 : v;
}
const pctText = (v) => (pct(v) === null ? "—" : Math.round(pct(v)) + "%");

function setRect(el, r) {
  el.setAttribute("x", r[0]);
  el.setAttribute("y", r[1]);
  el.setAttribute("width", r[2]);
  el.setAttribute("height", r[3]);
}

// The bars compare the listed episodes: the biggest peak fills its bar.
function scaleBars() {
  let top = 10;
  for (const m of episodes.querySelectorAll("meter")) top = Math.max(top, m.value);
  for (const m of episodes.querySelectorAll("meter")) m.max = top;
}

// A row: the episode's thumbnail (its start, then its peak, from the board's
// RAM; hidden once the board has overwritten it), time, length, peak bar.
function episodeRow(start, dur, peak, now, id) {
  const li = document.createElement("li");
  li.innerHTML = "<a target=_blank><img alt='' width=48 height=36 hidden></a><time></time><span></span><meter min=0 max=100></meter><b></b>";
  const img = li.querySelector("img");
  img.onload = () => { img.hidden = false; };
  img.onerror = () => { img.hidden = true; };
  if (id != null) li.dataset.id = id;
  fillEpisode(li, start, dur, peak, now);
  return li;
}
function fillEpisode(li, start, dur, peak, now) {
  const c = li.children;
  c[1].textContent = clock(start);
  c[2].textContent = now ? "now" : (dur / 1000).toFixed(1) + " s";
  c[3].value = pct(peak) || 0;
  c[4].textContent = "peak " + pctText(peak);
  li.classList.toggle("now", !!now);
}
function thumb(li, url) {
  if (!url || li.dataset.thumb === url) return;
  li.dataset.thumb = url;
  li.firstChild.href = url;
  li.querySelector("img").src = url;
}
function addEpisode(li) {
  if (episodes.querySelector(".empty")) episodes.textContent = "";
  episodes.prepend(li);
  while (episodes.childElementCount > 10) episodes.lastElementChild.remove();
}
// The board's recent episodes, with their thumbnails, when the page opens.
async function loadEpisodes(uptime) {
  let list;
  try { list = (await getJSON("api/episodes")).episodes; } catch (err) { return; }
  if (typeof uptime === "number") bootWall = Math.min(bootWall, Date.now() - uptime * 1000);
  for (const e of list.slice().reverse()) {
    if (episodes.querySelector("[data-id='" + e.id + "']")) continue; // the stream was first
    const start = typeof e.time === "number" ? e.time * 1000 : bootWall !== Infinity ? bootWall + e.t : Date.now();
    const li = episodeRow(start, e.duration_ms || 0, e.peak_score, e.active, e.id);
    thumb(li, e.peak || e.start);
    addEpisode(li);
    if (e.active && !episode) episode = { start, peak: e.peak_score || 0, li };
  }
  scaleBars();
}

function setFrame(f) {
  if (!Array.isArray(f)) return;
  const vb = "0 0 " + f[0] + " " + f[1];
  if (vb !== frame) {
    frame = vb;
    overlay.setAttribute("viewBox", vb);
    snap.style.aspectRatio = f[0] + " / " + f[1];
  }
}

// The detector's automatic mask (repetitive motion it ignores), over the picture.
function showMask(m) {
  setFrame(m.frame);
  maskG.textContent = "";
  for (const r of m.rects || []) {
    const el = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    setRect(el, r);
    maskG.append(el);
  }
}

function onMotion(d) {
  const now = Date.now();
  if (typeof d.t === "number") bootWall = Math.min(bootWall, now - d.t);
  // the board's own clock once NTP set it (Unix seconds), else the phone's
  const at = typeof d.time === "number" ? d.time * 1000 : now;
  const start = typeof d.time === "number" ? at : typeof d.t === "number" && bootWall !== Infinity ? bootWall + d.t : now;
  setFrame(d.frame);
  if (Array.isArray(d.bbox)) {
    setRect(bbox, d.bbox);
    bbox.hidden = false;
    bbox.dataset.bbox = d.bbox.join(",");
  }
  if (Array.isArray(d.centroid)) {
    centroid.setAttribute("cx", d.centroid[0]);
    centroid.setAttribute("cy", d.centroid[1]);
    centroid.hidden = false;
  }
  const active = d.phase !== "end";
  overlay.classList.toggle("old", !active);
  badge.dataset.on = active ? "1" : "0";
  setText(badge, active ? "Motion now" : "No motion");
  const box = Array.isArray(d.bbox) ? d.bbox[2] + "×" + d.bbox[3] + " at " + d.bbox[0] + "," + d.bbox[1] : "";
  const lasted = num(d.duration_ms / 1000, 1, " s");
  const text = active ? d.phase + " · " + pctText(d.score) + " changed · " + num(d.blocks) + " blocks · box " + box
    : "end · lasted " + lasted + " · peak " + pctText(d.peak_score) + " · box " + box;
  setText($("motion-info"), active ? "Motion: " + pctText(d.score) + " of the picture changed, box " + box
    : "Last motion ended " + clock(at) + ", lasted " + lasted);

  const pics = d.episode != null ? "episodes/" + d.episode : null;
  if (d.phase === "start" || (active && !episode)) {
    episode = { start, peak: d.score || 0, li: null };
    episode.li = episodeRow(start, 0, episode.peak, true, d.episode);
    addEpisode(episode.li);
    if (pics) thumb(episode.li, pics + "-start.jpg");
    scaleBars();
  } else if (episode && active) {
    if (d.score > episode.peak) episode.peak = d.score;
    fillEpisode(episode.li, episode.start, 0, episode.peak, true);
    scaleBars();
  } else if (d.phase === "end" && episode) {
    const peak = d.peak_score != null ? d.peak_score : episode.peak;
    fillEpisode(episode.li, episode.start, d.duration_ms || now - episode.start, peak, false);
    if (pics) thumb(episode.li, pics + "-peak.jpg");
    scaleBars();
    episode = null;
  }
  refreshSnapshot();
  return text;
}

// ---- status events ------------------------------------------------------------

function onStatus(d) {
  const k = d.kind;
  if (k === "boot") {
    if (d.board) setText(facts.board, String(d.board));
    if (d.version) setText(facts.version, String(d.version));
  } else if (k === "wifi") {
    showWifi(d);
  } else if (k === "camera") {
    showCamera(d);
  } else if (k === "warning") {
    warn(d.message || "warning", Date.now());
  } else if (k === "settings") {
    settingsChanged(d.changed || []);
  } else if (k === "mask") {
    showMask(d);
  } else if (k === "update") {
    setText(facts.update, d.message || "");
  }
  return k + ": " + (d.message || "") + (d.reason ? " (" + d.reason + ")" : "");
}

// ---- the stream -------------------------------------------------------------

const kinds = { motion: "motion", telemetry: "telemetry", status: "status" };

const stream = new Stream("events", {
  event(type, data, id) {
    let text;
    if (type === "motion" && data && typeof data === "object") text = onMotion(data);
    else if (type === "telemetry" && data && typeof data === "object") text = onTelemetry(data);
    else if (type === "status" && data && typeof data === "object") text = onStatus(data);
    else if (type === "resync") return; // shown as a mark, see below
    else text = typeof data === "string" ? data : JSON.stringify(data);
    if (type === "status" && data && data.kind === "light") {
      log.add("mark", id, "light", "Lights changed: " + (data.share || "?") + "% of the picture at once; detection paused " + num(data.pause_ms / 1000, 1, " s"));
    } else log.add(kinds[type] || "other", id, type, text);
    showConnection();
  },
  mark(kind, info) {
    if (kind === "reboot") {
      bootWall = Infinity;
      log.add("mark", "", "reboot", "The board restarted; ids start over (" + info.from + " → " + info.to + ")");
      refreshStatus();
    } else if (kind === "gap") {
      log.add("mark", "", "gap", info.lost + " event" + (info.lost === 1 ? "" : "s") + " missed here");
      refreshStatus();
    } else if (kind === "resync") {
      const lost = typeof info.lost === "number"
        ? info.lost + " event" + (info.lost === 1 ? "" : "s") + " missed here (too old for the board to replay)"
        : "events from before the restart cannot be replayed";
      log.add("mark", info.id, "gap", "Resync: " + lost + "; status reloaded");
      refreshStatus();
    } else if (kind === "busy" && info.count === 1) {
      log.add("other", "", "busy", "The board has too many open streams; retrying");
    }
  },
  state() {
    showConnection();
    if (stream.state === "live" && Date.now() - statusAt > 3000) refreshStatus();
  },
});

// ---- log controls -----------------------------------------------------------

const pauseBtn = $("pause");
pauseBtn.onclick = () => {
  const on = pauseBtn.getAttribute("aria-pressed") !== "true";
  pauseBtn.setAttribute("aria-pressed", on);
  pauseBtn.textContent = on ? "Resume" : "Pause";
  log.pause(on);
};
for (const box of document.querySelectorAll(".filters input")) {
  box.onchange = () => log.filter(box.value, box.checked);
}

// ---- settings (loaded when opened) ------------------------------------------

let settingsUI = null;
const details = $("settings");

async function openSettings() {
  if (!settingsUI) {
    const mod = await import("./settings.js");
    settingsUI = new mod.SettingsForm($("settings-form"), $("settings-fields"));
    $("settings-reload").onclick = () => settingsUI.load();
  }
  settingsUI.load();
}
details.addEventListener("toggle", () => { if (details.open) openSettings(); });

function applyTiming(s) {
  // telemetry is the heartbeat we can see: quiet for 2.5 periods means stale
  if (s && typeof s.telemetry_s === "number") stream.staleMs = Math.max(20000, s.telemetry_s * 2500);
}

async function settingsChanged(keys) {
  if (keys.includes("telemetry_s")) getJSON("api/settings").then(applyTiming, () => {});
  if (settingsUI && details.open) settingsUI.changedElsewhere(keys);
}

// ---- start ------------------------------------------------------------------

// one request after the other: the board has few sockets to spare
stream.open();
refreshStatus()
  .then(() => getJSON("api/settings").then(applyTiming, () => {}))
  .then(refreshSnapshot)
  .then(() => loadEpisodes(statusUptime));
setInterval(() => {
  stream.tick();
  showConnection();
  showUptime();
  if (episode) fillEpisode(episode.li, episode.start, 0, episode.peak, true);
  if (snapWanted) refreshSnapshot(); // after a picture that never came
}, 1000);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) { stream.tick(); showConnection(); }
});
// free the board's stream slot as soon as the page goes away
window.addEventListener("pagehide", () => { stream.close(); if (live) setLive(false); });
document.addEventListener("visibilitychange", () => { if (document.hidden && live) setLive(false, "Live view stopped while the page was hidden."); });
window.addEventListener("pageshow", (e) => { if (e.persisted) stream.open(); });
window.camwatch = { stream, log }; // for the console; also tells index.html we started
