// Small shared helpers: DOM lookup, number and time formatting, sparklines.

export const $ = (id) => document.getElementById(id);

export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

const pad = (n) => (n < 10 ? "0" : "") + n;

// Wall-clock time of day, hh:mm:ss.
export function clock(ms) {
  const d = new Date(ms);
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}

// A duration in seconds as "42 s", "3 min 5 s", "2 h 10 min", "3 d 4 h".
export function duration(s) {
  s = Math.max(0, Math.floor(s));
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + (s % 60) + " s";
  const h = Math.floor(m / 60);
  if (h < 24) return h + " h " + (m % 60) + " min";
  return Math.floor(h / 24) + " d " + (h % 24) + " h";
}

// A number, or an em dash when the board does not know it (null).
export function num(v, digits, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  return (digits === undefined ? String(v) : v.toFixed(digits)) + (unit || "");
}

export function kb(bytes) {
  return bytes == null ? "—" : (bytes / 1024).toFixed(1) + " KB";
}

// Options for fetch() that give up after `ms`: a board short of sockets or
// memory can leave a request hanging for good.
export function within(ms, opts) {
  opts = opts || {};
  if (AbortSignal.timeout) opts.signal = AbortSignal.timeout(ms);
  return opts;
}

export async function getJSON(url) {
  const res = await fetch(url, within(8000, { cache: "no-store" }));
  if (!res.ok) throw new Error(url + ": HTTP " + res.status);
  return res.json();
}

// A sparkline: a fixed ring of samples drawn as one SVG polyline in a
// 100 x 30 viewBox. Nulls leave the point out.
export class Spark {
  constructor(svg, size) {
    this.line = svg.querySelector("polyline");
    this.values = new Array(size).fill(null);
    this.next = 0;
    this.count = 0;
  }

  push(v) {
    this.values[this.next] = typeof v === "number" ? v : null;
    this.next = (this.next + 1) % this.values.length;
    if (this.count < this.values.length) this.count++;
    this.draw();
  }

  draw() {
    const n = this.values.length;
    let lo = Infinity, hi = -Infinity;
    for (const v of this.values) {
      if (v !== null) { if (v < lo) lo = v; if (v > hi) hi = v; }
    }
    if (lo === Infinity) { this.line.setAttribute("points", ""); return; }
    const span = hi - lo;
    // until the ring is full the line is stretched over at least 12 slots
    const step = 100 / (Math.max(12, this.count) - 1);
    let pts = "";
    for (let i = 0; i < this.count; i++) {
      // oldest first, right-aligned so the newest sample is at the right edge
      const v = this.values[(this.next - this.count + i + n) % n];
      if (v === null) continue;
      const x = 100 - (this.count - 1 - i) * step;
      const y = span ? 28 - ((v - lo) / span) * 26 : 15; // a steady value: a line in the middle
      pts += x.toFixed(1) + "," + y.toFixed(1) + " ";
    }
    this.line.setAttribute("points", pts);
  }
}
