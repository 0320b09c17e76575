// The event log: the last N events, newest first, as a fixed ring.
//
// Entries live in a ring of N plain objects that are overwritten in place;
// the list shows them through at most N <li> rows, and a new event reuses
// the oldest row instead of making one. Filtering is a class on the list
// (CSS hides the rows), so it costs nothing per event. While paused only the
// ring is written; resuming redraws the rows from it.
//
// Kinds: motion, telemetry, status, other (resync, busy, unnamed events) and
// mark (a reboot, a gap in the ids or lights changing: always shown, never
// filtered out).

import { clock } from "./ui.js";

export class EventLog {
  constructor(list, note, size = 200) {
    this.list = list;
    this.note = note;
    this.size = size;
    this.ring = [];
    this.next = 0;
    this.paused = false;
    this.unseen = 0;
  }

  add(kind, id, name, text) {
    let e = this.ring[this.next];
    if (!e) e = this.ring[this.next] = {};
    e.t = Date.now();
    e.kind = kind;
    e.id = id || "";
    e.name = name;
    e.text = text;
    this.next = (this.next + 1) % this.size;
    if (this.paused) {
      this.unseen++;
      this.note.textContent = "Paused: " + this.unseen + " new event" + (this.unseen === 1 ? "" : "s") + " not shown";
      return;
    }
    let row;
    if (this.list.childElementCount >= this.size) {
      row = this.list.lastElementChild;
    } else {
      row = document.createElement("li");
      row.append(document.createElement("time"), document.createElement("b"), document.createElement("span"), document.createElement("code"));
    }
    this.fill(row, e);
    this.list.prepend(row);
  }

  fill(row, e) {
    row.className = "k-" + e.kind;
    row.dataset.id = e.id;
    row.dataset.name = e.name;
    const c = row.children;
    c[0].textContent = clock(e.t);
    c[1].textContent = e.name;
    c[2].textContent = e.text;
    c[3].textContent = e.id;
  }

  pause(on) {
    this.paused = on;
    this.note.hidden = !on;
    if (on) {
      this.unseen = 0;
      this.note.textContent = "Paused: new events are kept but not shown";
      return;
    }
    // redraw every row from the ring, newest first
    const rows = this.list.children;
    let r = 0;
    for (let k = 1; k <= this.size; k++) {
      const e = this.ring[(this.next - k + this.size) % this.size];
      if (!e) break;
      let row = rows[r];
      if (!row) {
        row = document.createElement("li");
        row.append(document.createElement("time"), document.createElement("b"), document.createElement("span"), document.createElement("code"));
        this.list.append(row);
      }
      this.fill(row, e);
      r++;
    }
  }

  filter(kind, shown) {
    this.list.classList.toggle("hide-" + kind, !shown);
  }
}
