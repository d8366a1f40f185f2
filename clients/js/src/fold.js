// Folding (SPEC §6.5) on the client: a list from GET /boxes/{id}/events arrives folded by the
// server; realtime `event.new` carries msg.edit / msg.delete modifiers, applied here.

/**
 * @typedef {{id: string, name: string, type: string, size: number}} FileInfo what a `msg.file`
 *   holds: the encrypted file's id and its decrypted name, media type and size in bytes
 * @typedef {{id: string, type: string, box_id: string, server_event_created_at: string,
 *   sender: {id: string, display_name: string}, content: any, referrer_id: string | null,
 *   text?: string | null, file?: FileInfo | null, deleted?: boolean, edited_at?: string | null,
 *   undecryptable?: boolean}} DecryptedEvent
 */

/** Applies one decrypted event to a timeline kept oldest first; returns a new array.
 * Duplicates (same id) are ignored, so catch-up and live delivery can overlap.
 * @param {DecryptedEvent[]} timeline
 * @param {DecryptedEvent} event
 * @returns {DecryptedEvent[]} */
export function foldEvent(timeline, event) {
  if (event.type === 'msg.edit' || event.type === 'msg.delete') {
    return timeline.map((m) => {
      if (m.id !== event.referrer_id) return m;
      if (event.type === 'msg.delete') {
        return {
          ...m,
          text: null,
          ...(m.type === 'msg.file' ? { file: null } : {}),
          deleted: true,
          content: { deleted: { at_time: event.server_event_created_at, by_identity: event.sender } },
        };
      }
      if (m.deleted) return m;
      return {
        ...m,
        text: event.text ?? null,
        undecryptable: event.undecryptable ?? false,
        edited_at: event.server_event_created_at,
        content: {
          encrypted: event.content?.new_encrypted,
          public_key: event.content?.new_public_key,
          last_edited_at: event.server_event_created_at,
        },
      };
    });
  }
  if (timeline.some((m) => m.id === event.id)) return timeline;
  return [...timeline, event];
}

/** Folds a batch (oldest first) into a timeline.
 * @param {DecryptedEvent[]} timeline
 * @param {DecryptedEvent[]} events */
export function foldEvents(timeline, events) {
  return events.reduce(foldEvent, timeline);
}
