// The page's one EventSource, and what its connection is doing.
//
// The browser reconnects an EventSource by itself and sends Last-Event-ID,
// so the board can replay what we missed: we leave it to do that. We only
// make a new EventSource when the browser gave up (readyState CLOSED), when
// the board keeps saying it is busy (to back off further than its `retry:`),
// or when a stream that looks open has been silent for far too long (a dead
// TCP connection after the phone lost Wi-Fi). A new EventSource cannot send
// Last-Event-ID, so the last id goes along as `?last=`; whatever is still
// missed shows up as a jump in the ids and is marked as a gap.
//
// States: connecting, live, stale (open but silent), reconnecting, busy,
// offline (several attempts failed; still trying).

const TYPES = ["motion", "telemetry", "status", "resync", "message"];
const BROWSER_RETRY_MS = 3000; // what Chromium and Firefox wait by default
const OFFLINE_AFTER = 4; // failed attempts in a row
const BUSY_NATIVE = 3; // busy answers left to the browser's retry before backing off

export function parseId(id) {
  const i = id ? id.lastIndexOf("-") : -1;
  if (i < 1) return null;
  const n = parseInt(id.slice(i + 1), 10);
  return Number.isNaN(n) ? null : { tag: id.slice(0, i), n };
}

export class Stream {
  // handlers: event(type, data, id, seq), mark(kind, info), state(name)
  constructor(url, handlers) {
    this.url = url;
    this.on = handlers;
    this.es = null;
    this.state = "connecting";
    this.lastId = "";
    this.tag = null;
    this.seq = -1;
    this.expectJump = true;
    this.lastEventAt = 0;
    this.openedAt = 0;
    this.retryAt = 0; // when the next attempt is due (ms), 0 when unknown
    this.fails = 0;
    this.busyCount = 0;
    this.busyAt = 0;
    this.busyRetry = 3000;
    this.staleMs = 20000;
    this.timer = 0;
    this.graceTimer = 0;
    this.listener = (e) => this.receive(e);
  }

  open() {
    clearTimeout(this.timer);
    this.close();
    const url = this.lastId ? this.url + "?last=" + encodeURIComponent(this.lastId) : this.url;
    const es = (this.es = new EventSource(url));
    for (const t of TYPES) es.addEventListener(t, this.listener);
    es.addEventListener("busy", (e) => this.busy(e));
    es.onopen = () => this.opened();
    es.onerror = () => this.failed();
    this.retryAt = 0;
    if (this.state !== "busy" && this.state !== "offline") this.set("connecting");
  }

  close() {
    if (this.es) {
      this.es.onerror = this.es.onopen = null;
      this.es.close();
      this.es = null;
    }
  }

  set(state) {
    if (state === this.state) return;
    this.state = state;
    this.on.state(state);
  }

  opened() {
    this.openedAt = Date.now();
    this.fails = 0;
    this.retryAt = 0;
    clearTimeout(this.graceTimer);
    if (this.state === "busy") {
      // a busy answer is a 200 too: wait a moment for the `busy` event
      this.graceTimer = setTimeout(() => this.set("live"), 1500);
    } else {
      this.set("live");
    }
  }

  failed() {
    const es = this.es;
    clearTimeout(this.graceTimer);
    if (!es) return;
    if (es.readyState === EventSource.CLOSED) {
      // the browser gave up on this EventSource; start a new one later
      this.fails++;
      this.schedule(Math.min(30000, 2000 * this.fails), "offline");
      return;
    }
    // CONNECTING: the browser retries by itself after its reconnection time
    if (this.state === "busy" && Date.now() - this.busyAt < 2000) {
      // the board said busy and closed the stream, as it does
      this.retryAt = Date.now() + this.busyRetry;
      this.on.state(this.state); // new countdown
      return;
    }
    this.fails++;
    this.retryAt = Date.now() + BROWSER_RETRY_MS;
    this.set(this.fails >= OFFLINE_AFTER ? "offline" : "reconnecting");
    this.on.state(this.state);
  }

  schedule(ms, state) {
    this.close();
    clearTimeout(this.timer);
    this.retryAt = Date.now() + ms;
    this.timer = setTimeout(() => this.open(), ms);
    this.set(state);
    this.on.state(state);
  }

  busy(e) {
    clearTimeout(this.graceTimer);
    this.busyAt = Date.now();
    this.busyCount++;
    let retry = 0;
    try {
      const d = JSON.parse(e.data);
      retry = d.retry_ms || d.retry || 0;
    } catch (err) { /* a plain-text busy message */ }
    if (retry > 0) this.busyRetry = retry; // else the board's `retry:`, 3 s by default
    this.on.mark("busy", { count: this.busyCount });
    if (this.busyCount > BUSY_NATIVE) {
      // back off further than the board asks: doubling, up to a minute
      const ms = Math.min(60000, this.busyRetry * 2 ** (this.busyCount - BUSY_NATIVE));
      this.schedule(ms, "busy");
    } else {
      this.retryAt = Date.now() + this.busyRetry;
      this.set("busy");
    }
  }

  receive(e) {
    const now = Date.now();
    let data = e.data;
    try { data = JSON.parse(data); } catch (err) { /* keep the text */ }
    const id = e.lastEventId;
    const p = parseId(id);
    if (p) {
      if (this.tag !== null && p.tag !== this.tag) {
        this.on.mark("reboot", { from: this.tag, to: p.tag });
      } else if (this.tag !== null && p.n <= this.seq && e.type !== "resync") {
        return; // already have it (a replay overlapping what we saw)
      } else if (this.tag !== null && p.n > this.seq + 1 && !this.expectJump && e.type !== "resync") {
        this.on.mark("gap", { lost: p.n - this.seq - 1, from: this.seq, to: p.n });
      }
      this.tag = p.tag;
      this.seq = p.n;
      this.lastId = id;
    }
    this.expectJump = e.type === "resync";
    this.lastEventAt = now;
    this.busyCount = 0;
    this.fails = 0;
    if (this.state !== "live" && this.es && this.es.readyState === EventSource.OPEN) {
      clearTimeout(this.graceTimer);
      this.set("live");
    }
    if (e.type === "resync") this.on.mark("resync", { lost: data && data.lost, id });
    this.on.event(e.type, data, id, p);
  }

  // Called every second by the page: notices a stream that went silent.
  tick() {
    if (!this.es || this.es.readyState !== EventSource.OPEN) return;
    const quiet = Date.now() - Math.max(this.lastEventAt, this.openedAt);
    if (quiet > this.staleMs * 3) {
      this.schedule(500, "reconnecting"); // a dead connection: start over
    } else if (this.state === "live" && quiet > this.staleMs) {
      this.set("stale");
    }
  }
}
