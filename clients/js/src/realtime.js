// The realtime socket's life: connecting → open (after `ready`) → closed, then connecting again
// after a capped, jittered backoff, from the last history position (`?since=`). Envelopes are
// filtered by position (no duplicates) and handled one at a time in the order they arrived.
import { PositionTracker } from './stream.js';
import { backoffDelay } from './retry.js';

/** Close codes the SDK acts on (SPEC §9.2). */
export const CLOSE = Object.freeze({ NORMAL: 1000, ABNORMAL: 1006, TOKEN_EXPIRED: 4001 });

/** @typedef {'connecting' | 'open' | 'closed'} SocketState */
/**
 * @typedef {{
 *   url: (since: string | null) => Promise<string | null>,
 *   WebSocket: any,
 *   tracker?: PositionTracker,
 *   handle: (env: any) => Promise<void>,
 *   beforeReconnect?: (closeCode: number) => Promise<void>,
 *   onState?: (s: SocketState) => void,
 *   onError?: (e: unknown) => void,
 *   delay?: (attempt: number) => number,
 * }} RealtimeOptions
 */

/** Opens the socket and keeps it open until `close()`.
 * `url(since)` gives the address to connect to (null: not now, stop); `handle(env)` gets every
 * envelope not seen before, `ready` included, in order; `beforeReconnect(code)` runs after a
 * close and before the backoff (refreshing the token after a 4001, say).
 * @param {RealtimeOptions} o
 * @returns {{close(): void, readonly connected: boolean, readonly state: SocketState}} */
export function openRealtime(o) {
  const tracker = o.tracker ?? new PositionTracker();
  const delay = o.delay ?? ((/** @type {number} */ a) => backoffDelay(a));
  const report = (/** @type {unknown} */ e) => o.onError?.(e);
  /** @type {SocketState} */
  let state = 'closed';
  let stopped = false;
  let attempt = 0;
  /** @type {any} */
  let ws = null;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;
  /** The envelopes being handled, one after the other. */
  let queue = Promise.resolve();

  const setState = (/** @type {SocketState} */ s) => {
    state = s;
    o.onState?.(s);
  };

  const retry = () => {
    if (!stopped) timer = setTimeout(open, delay(attempt++));
  };

  const open = async () => {
    timer = null;
    if (stopped) return;
    setState('connecting');
    let url = null;
    try {
      url = await o.url(tracker.position);
    } catch (e) {
      report(e);
      setState('closed');
      return retry();
    }
    if (stopped) return;
    if (!url) return setState('closed');
    const sock = new o.WebSocket(url);
    ws = sock;
    sock.onmessage = (/** @type {{data: any}} */ m) => {
      if (sock !== ws) return;
      let env;
      try {
        env = JSON.parse(typeof m.data === 'string' ? m.data : new TextDecoder().decode(m.data));
      } catch {
        return;
      }
      if (!tracker.accept(env)) return;
      if (env?.type === 'ready') {
        attempt = 0;
        setState('open');
      }
      queue = queue.then(() => o.handle(env)).catch(report);
    };
    const closed = (/** @type {number} */ code) => {
      if (sock !== ws) return;
      ws = null;
      setState('closed');
      if (stopped) return;
      (o.beforeReconnect?.(code) ?? Promise.resolve()).catch(report).then(retry);
    };
    sock.onclose = (/** @type {{code: number}} */ ev) => closed(ev.code);
    // Some clients (Node 20's) report a refused connection with `error` alone, never `close`.
    sock.onerror = () => {
      try {
        sock.close();
      } catch {
        // not open: nothing to close
      }
      closed(CLOSE.ABNORMAL);
    };
  };
  open();
  return {
    close() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      const sock = ws;
      ws = null;
      sock?.close(CLOSE.NORMAL);
      if (state !== 'closed') setState('closed');
    },
    get connected() {
      return state === 'open';
    },
    get state() {
      return state;
    },
  };
}
