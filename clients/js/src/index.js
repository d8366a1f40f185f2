// Public surface of the SDK.
export { BoxesClient } from './client.js';
export { backoffDelay, newIdempotencyKey, isRetryable, withIdempotencyKey } from './retry.js';
export { PositionTracker, comparePositions } from './stream.js';
export { openRealtime, CLOSE } from './realtime.js';
export { SyncState } from './sync.js';
export { ApiError, errorFromResponse } from './errors.js';
export { foldEvent, foldEvents } from './fold.js';
export { MemoryKeyStore, FileKeyStore, IndexedDBKeyStore } from './keystore.js';
export * as crypto from './crypto.js';
export * as files from './files.js';
