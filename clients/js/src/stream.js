// The realtime history position (README "Recovery on reconnect"): the client keeps the position
// of `ready` and of each envelope, reconnects with `?since=` it, and drops anything at or before
// it, so an envelope replayed and also received live is handled once, in order.

/** `"<ms>-<seq>"` as two numbers, or null for anything else.
 * @param {string} p
 * @returns {[number, number] | null} */
function parse(p) {
  const m = /^(\d{1,16})-(\d{1,16})$/.exec(p);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

/** Orders two positions of one history: negative, zero or positive. Positions that are not
 * `"<ms>-<seq>"` compare equal only to themselves and are otherwise taken as newer.
 * @param {string} a @param {string} b */
export function comparePositions(a, b) {
  const pa = parse(a);
  const pb = parse(b);
  if (!pa || !pb) return a === b ? 0 : 1;
  return pa[0] - pb[0] || pa[1] - pb[1];
}

export class PositionTracker {
  /** @param {string | null} [position] */
  constructor(position = null) {
    /** @type {string | null} the newest position handled; a reconnection asks for what follows */
    this.position = position;
  }

  /** Takes the position of a received envelope. Returns false for one at or before the current
   * position (a duplicate: drop it), true otherwise. `ready` sets the position: after
   * `recovered:true` only forward, otherwise (a new history, or a first connection) as given.
   * @param {any} env */
  accept(env) {
    if (env?.type === 'ready') {
      const p = env.object?.position;
      if (typeof p !== 'string') return true;
      if (env.object.recovered !== true || this.position === null || comparePositions(p, this.position) > 0) this.position = p;
      return true;
    }
    const p = env?.position;
    if (typeof p !== 'string') return true;
    if (this.position !== null && comparePositions(p, this.position) <= 0) return false;
    this.position = p;
    return true;
  }
}
