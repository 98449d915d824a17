// The lead's WebSocket session as in the protocol contract: hello, welcome, sync,
// synced, live frames; answers resent after every reconnect and on `unavailable` /
// `rate_limited` until the hub says `ok`; automatic reconnect with jittered backoff.

import { backoff } from "../lib/util.js";

export function createSession({ token, onFrame, onState, onAnswer }) {
  const pending = new Map(); // ref -> {frame, key, tries}
  let ws = null;
  let attempt = 0;
  let retry = null;
  let heartbeat = null;
  let synced = false;
  let seq = 0;
  let stopped = false;

  const send = (frame) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  };

  function connect() {
    clearTimeout(retry);
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/lead/ws`;
    onState(attempt ? "reconnecting" : "connecting", {});
    synced = false;
    const sock = new WebSocket(url);
    ws = sock;
    sock.onopen = () => send({ type: "hello", token, client: { name: "gridcast-lead-page", version: "2" } });
    sock.onmessage = (m) => {
      let f;
      try {
        f = JSON.parse(m.data);
      } catch (_) {
        return;
      }
      handle(f);
    };
    sock.onclose = (e) => {
      if (ws !== sock) return;
      clearInterval(heartbeat);
      ws = null;
      if (stopped) return;
      if (e.code === 4401 || e.code === 4403) return onState("refused", { code: e.code });
      if (e.code === 4409) return onState("elsewhere", {}); // coming back would close the other device's session
      const wait = backoff(attempt++);
      onState("reconnecting", { s: Math.ceil(wait / 1000) });
      retry = setTimeout(connect, wait);
    };
  }

  function handle(f) {
    switch (f.type) {
      case "welcome":
        clearInterval(heartbeat);
        heartbeat = setInterval(() => send({ type: "ping" }), Math.max(5, f.heartbeat_s || 30) * 1000);
        break;
      case "synced":
        synced = true;
        attempt = 0;
        onState("online", {});
        for (const p of pending.values()) send(p.frame);
        break;
      case "ok": {
        const p = pending.get(f.ref);
        if (p) {
          pending.delete(f.ref);
          onAnswer(p.key, "ok", undefined, p.frame);
        }
        break;
      }
      case "error": {
        const p = f.ref && pending.get(f.ref);
        if (p && (f.code === "unavailable" || f.code === "rate_limited")) {
          // Transient: the hub could not record it yet. Resend until it says ok.
          p.tries += 1;
          onAnswer(p.key, "retrying", f);
          setTimeout(() => pending.has(f.ref) && synced && send(p.frame), backoff(Math.min(p.tries, 5), 500, 10000));
          return;
        }
        if (p) {
          pending.delete(f.ref);
          onAnswer(p.key, "refused", f);
          return;
        }
        break;
      }
      default:
        break;
    }
    onFrame(f);
  }

  return {
    start: connect,
    send,
    /** Sends a frame that must be answered `ok`; the latest answer per key counts. */
    request(frame, key) {
      const ref = `p${Date.now().toString(36)}-${++seq}`;
      for (const [r, p] of pending) if (p.key === key) pending.delete(r);
      pending.set(ref, { frame: { ...frame, ref }, key, tries: 0 });
      onAnswer(key, "sending");
      if (synced) send({ ...frame, ref });
    },
    stop() {
      stopped = true;
      clearTimeout(retry);
      clearInterval(heartbeat);
      if (ws) ws.close();
      ws = null;
    },
  };
}
