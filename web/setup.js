// The setup page a phone opens on the board's access point: pick a network,
// give its password and the camera's admin password, save, and watch the
// board join. The board keeps its access point up for a while after the join
// works, so this page can say where to find it next.

import { $, getJSON, within } from "./ui.js";

let claimed = false;
let hostname = "camwatch";

function say(el, text, tone) {
  el.textContent = text;
  el.dataset.tone = tone || "";
}

function bars(rssi) {
  return rssi >= -55 ? "▂▄▆█" : rssi >= -67 ? "▂▄▆" : rssi >= -78 ? "▂▄" : "▂";
}

async function scan() {
  const msg = $("scan-msg"), list = $("networks");
  say(msg, "Looking for networks…");
  try {
    const { networks } = await getJSON("api/wifi/scan");
    list.textContent = "";
    for (const n of networks) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = n.ssid + (n.secured ? " 🔒" : "");
      b.title = n.rssi + " dBm";
      const s = document.createElement("span");
      s.textContent = bars(n.rssi);
      s.setAttribute("aria-label", n.rssi + " dBm");
      b.append(s);
      b.addEventListener("click", () => {
        $("ssid").value = n.ssid;
        (n.secured ? $("wifi-pw") : $("admin-pw")).focus();
      });
      li.append(b);
      list.append(li);
    }
    say(msg, networks.length ? "Tap your network, or type its name below." : "No network found: type its name below.");
  } catch (err) {
    say(msg, "Could not scan (" + err.message + "): type the network's name below.", "bad");
  }
}

async function board() {
  return getJSON("api/wifi");
}

function showClaimed(yes) {
  claimed = yes;
  $("admin-hint").textContent = yes
    ? "this camera has one already: type it to change the network"
    : "new, 8 characters or more: every change of settings asks for it";
  $("admin-pw").autocomplete = yes ? "current-password" : "new-password";
}

async function watch(ssid) {
  const msg = $("setup-msg");
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000));
    let w;
    try {
      w = await board();
    } catch (err) {
      // the access point may have gone: the board joined, or moved channel
      say(msg, "Lost the camera's access point. If it joined " + ssid + ", connect your phone to " + ssid + " and open http://" + hostname + ".local/ .");
      continue;
    }
    if (w.state === "connected" && w.ssid === ssid) {
      say(msg, "Joined " + ssid + ". Connect your phone to " + ssid + ", then open http://" + w.hostname + ".local/ or http://" + w.ip + "/ .", "good");
      return;
    }
    // saving cleared the last reason: one now is this join's
    if (w.reason && !w.joining) {
      say(msg, "Could not join " + ssid + ": " + w.reason + ". The camera is back on its access point " + (w.ap || "") + "; check and save again.", "bad");
      showClaimed(w.admin_password_set);
      return;
    }
    say(msg, "Saved. Joining " + ssid + "…");
  }
  say(msg, "The camera has not joined " + ssid + " after a minute. Check the name and password, and save again.", "bad");
}

async function save(e) {
  e.preventDefault();
  const msg = $("setup-msg");
  for (const k of ["ssid", "wifi_password", "admin_password"]) $(k + "-err").textContent = "";
  const ssid = $("ssid").value.trim();
  if (!ssid) {
    $("ssid-err").textContent = "Choose a network";
    $("ssid").focus();
    return;
  }
  const body = { ssid, wifi_password: $("wifi-pw").value };
  const pw = $("admin-pw").value;
  if (claimed) body.password = pw;
  else body.admin_password = pw;
  say(msg, "Saving…");
  let resp, data;
  try {
    resp = await fetch("api/setup", within(15000, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    }));
    data = await resp.json();
  } catch (err) {
    say(msg, "Could not reach the camera: " + err.message, "bad");
    return;
  }
  if (!resp.ok) {
    const field = data.field === "password" ? "admin_password" : data.field;
    const err = field && $(field + "-err");
    if (err) err.textContent = data.reason || data.error;
    say(msg, data.error || "Refused (" + resp.status + ")", "bad");
    return;
  }
  showClaimed(true);
  say(msg, "Saved. Joining " + ssid + "…");
  watch(ssid);
}

$("setup").addEventListener("submit", save);
$("rescan").addEventListener("click", scan);
board().then((w) => {
  hostname = w.hostname;
  showClaimed(w.admin_password_set);
  if (w.network) $("ssid").value = w.network;
}, () => {});
scan();
