// A fake fetch and a fake socket for the SDK's unit tests: the server side, scripted by the test.
import assert from 'node:assert/strict';
import { BoxesClient } from '../../src/index.js';

/** @typedef {{method: string, path: string, query: URLSearchParams, headers: Record<string, string>, body: any}} Call */
/** @typedef {(n: number, call: Call) => [number, any] | Promise<[number, any]>} Route */

/** A fetch that answers from `routes` (`METHOD path` → function) and records every request;
 * a route may throw to play a network error.
 * @param {Record<string, Route>} routes */
export function fakeFetch(routes) {
  /** @type {Call[]} */
  const calls = [];
  /** @type {any} */
  const fetch = async (/** @type {string} */ url, /** @type {any} */ init) => {
    const u = new URL(url);
    const call = { method: init.method, path: u.pathname, query: u.searchParams, headers: { ...init.headers }, body: init.body };
    calls.push(call);
    const route = routes[`${init.method} ${u.pathname}`];
    const n = calls.filter((c) => c.method === call.method && c.path === call.path).length;
    const [status, body] = route ? await route(n, call) : [404, { code: 'not_found', origin: 'path', desc: '', details: {} }];
    return new Response(body === null ? null : JSON.stringify(body), { status });
  };
  return { fetch, calls };
}

export class FakeSocket {
  /** @type {FakeSocket[]} */
  static all = [];
  /** @param {string} url */
  constructor(url) {
    this.url = url;
    /** @type {((m: {data: string}) => void) | null} */
    this.onmessage = null;
    /** @type {((ev: {code: number}) => void) | null} */
    this.onclose = null;
    /** @type {(() => void) | null} */
    this.onerror = null;
    FakeSocket.all.push(this);
  }
  /** Delivers envelopes as the server would. @param {any[]} envs */
  push(...envs) {
    for (const env of envs) this.onmessage?.({ data: JSON.stringify(env) });
  }
  close(code = 1006) {
    this.onclose?.({ code });
  }
  /** A connection that failed, reported with `error` alone (as Node 20's client does). */
  fail() {
    this.onerror?.();
  }
}

/** Waits (up to 2 s) for `cond` to hold. @param {() => boolean} cond */
export async function until(cond) {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), 'condition never held');
}

/** A logged-in client on the fakes. @param {any} fetch */
export function client(fetch) {
  const cl = new BoxesClient({ authUrl: 'http://a', boxesUrl: 'http://b', realtimeUrl: 'ws://r', fetch, WebSocket: FakeSocket });
  cl.session = { identityId: 'me', accessToken: 'tok', refreshToken: null, csrfToken: null, expiresAt: Date.now() / 1000 + 3600 };
  return cl;
}

/** An event as boxes lists it. @param {string} box @param {number} seq @param {any} [extra] */
export const event = (box, seq, extra = {}) => ({
  id: `${box}-e${seq}`,
  seq,
  type: 'member.join',
  box_id: box,
  server_event_created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
  sender: { id: 'someone', display_name: 'Someone' },
  content: null,
  referrer_id: null,
  ...extra,
});

/** The `event.new` envelope of an event at a history position. @param {any} e @param {string} position */
export const envelope = (e, position) => ({ type: 'event.new', object: e, position });

/** @param {string} position @param {boolean | null} recovered */
export const ready = (position, recovered) => ({ type: 'ready', object: { identity_id: 'me', position, recovered } });
