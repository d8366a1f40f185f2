// Retrying writes safely: backoff with full jitter, one Idempotency-Key per logical operation,
// and which failures are worth sending again with it.
import { ApiError } from './errors.js';
import { randomBytes } from './crypto.js';

/** Full jitter between half and all of the exponential delay.
 * @param {number} attempt 0-based
 * @param {number} [base] ms
 * @param {number} [max] ms, the cap
 * @param {() => number} [random] */
export function backoffDelay(attempt, base = 500, max = 30_000, random = Math.random) {
  const exp = Math.min(max, base * 2 ** Math.min(attempt, 16));
  return Math.round(exp / 2 + (random() * exp) / 2);
}

/** A fresh `Idempotency-Key`: a random (version 4) UUID. */
export function newIdempotencyKey() {
  const b = randomBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Whether a failed keyed write may be sent again with its key: no answer came back (network
 * error), the server failed or gave up (5xx: the key makes a retry safe even if it committed),
 * or the first request with the key is still running (409 on the key).
 * @param {unknown} e */
export function isRetryable(e) {
  if (!(e instanceof ApiError)) return false;
  return e.status === 0 || e.status >= 500 || (e.status === 409 && e.details['Idempotency-Key'] === 'conflict');
}

/**
 * @typedef {{attempts?: number, delay?: (attempt: number) => number,
 *   sleep?: (ms: number) => Promise<void>}} RetryOptions
 */

/** Runs `op(key)` with one new idempotency key, again with the same key after a retryable
 * failure, at most `attempts` times in all; any other failure is thrown at once.
 * @template T
 * @param {(key: string) => Promise<T>} op
 * @param {RetryOptions} [o]
 * @returns {Promise<T>} */
export async function withIdempotencyKey(op, o = {}) {
  const attempts = o.attempts ?? 5;
  const delay = o.delay ?? ((/** @type {number} */ a) => backoffDelay(a, 200, 2000));
  const sleep = o.sleep ?? ((/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms)));
  const key = newIdempotencyKey();
  for (let attempt = 0; ; attempt++) {
    try {
      return await op(key);
    } catch (e) {
      if (!isRetryable(e) || attempt + 1 >= attempts) throw e;
      await sleep(delay(attempt));
    }
  }
}
