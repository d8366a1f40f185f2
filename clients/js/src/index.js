// Public surface of the SDK.
export { BoxesClient, backoffDelay } from './client.js';
export { ApiError, errorFromResponse } from './errors.js';
export { foldEvent, foldEvents } from './fold.js';
export { MemoryKeyStore, FileKeyStore, IndexedDBKeyStore } from './keystore.js';
export * as crypto from './crypto.js';
