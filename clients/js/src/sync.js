// Catch-up bookkeeping (README "The events cursor"): per box the newest `seq` read over HTTP and
// the ids already handed to the app, and the newest server time seen, so a re-sync asks only for
// the boxes changed since then and, in each, only for the events after its cursor.

/** How far before the newest server time seen a re-sync looks for changed boxes: events get
 * their time when inserted, not when committed, within the 6 s request budget. */
export const CHANGED_SINCE_MARGIN_MS = 10_000;

export class SyncState {
  constructor() {
    /** @type {Map<string, number>} box → newest seq read over HTTP (the next `after`) */
    this.cursors = new Map();
    /** @type {Map<string, Set<string>>} box → event ids handed to the app */
    this.seen = new Map();
    /** @type {number | null} newest `server_event_created_at` seen, ms */
    this.newest = null;
  }

  /** Notes an event's time and returns whether its id is new in its box (and marks it seen).
   * @param {{id: string, box_id: string, server_event_created_at?: string}} e */
  firstSight(e) {
    const t = e.server_event_created_at ? Date.parse(e.server_event_created_at) : NaN;
    if (!Number.isNaN(t) && (this.newest === null || t > this.newest)) this.newest = t;
    let ids = this.seen.get(e.box_id);
    if (!ids) this.seen.set(e.box_id, (ids = new Set()));
    if (ids.has(e.id)) return false;
    ids.add(e.id);
    return true;
  }

  /** Events read over HTTP: seen, and the box's cursor moved to the newest `seq` among them.
   * @param {string} boxId @param {any[]} events */
  listed(boxId, events) {
    let cursor = this.cursors.get(boxId) ?? 0;
    for (const e of events) {
      this.firstSight(e);
      if (typeof e.seq === 'number' && e.seq > cursor) cursor = e.seq;
    }
    this.cursors.set(boxId, cursor);
  }

  /** @param {string} boxId */
  forget(boxId) {
    this.cursors.delete(boxId);
    this.seen.delete(boxId);
  }

  /** The `changed_since` of the next re-sync (RFC 3339), or null when nothing was seen yet. */
  changedSince() {
    return this.newest === null ? null : new Date(this.newest - CHANGED_SINCE_MARGIN_MS).toISOString();
  }
}

/** Every page of a listing: `page(limit, offset)` until a short page.
 * @param {(limit: number, offset: number) => Promise<any[]>} page @param {number} limit */
export async function allPages(page, limit) {
  const all = [];
  for (let offset = 0; ; offset += limit) {
    const got = await page(limit, offset);
    all.push(...got);
    if (got.length < limit) return all;
  }
}

/** What changed in a box after `after`, oldest first: `GET /boxes/{id}/events?after=` paged by
 * passing the `seq` of the last item as the next `after`, until a page that is not full.
 * @param {(after: number, limit: number) => Promise<any[]>} page @param {number} after */
export async function eventsAfter(page, after, limit = 200) {
  const all = [];
  for (;;) {
    const got = await page(after, limit);
    all.push(...got);
    const last = got[got.length - 1]?.seq;
    if (got.length < limit || typeof last !== 'number' || last <= after) return all;
    after = last;
  }
}
