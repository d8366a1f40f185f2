// The SDK client: sessions, identity key, boxes, messages, invitations, realtime.
import * as c from './crypto.js';
import { ApiError, errorFromResponse, networkError } from './errors.js';
import * as f from './files.js';
import { foldEvent } from './fold.js';
import { MemoryKeyStore } from './keystore.js';
import { openRealtime, CLOSE } from './realtime.js';
import { withIdempotencyKey } from './retry.js';
import { PositionTracker } from './stream.js';
import { SyncState, allPages, eventsAfter } from './sync.js';
import { download, forwardProgress, uploadMultipart } from './transfer.js';

/** @typedef {import('./keystore.js').KeyStore} KeyStore */
/** @typedef {import('./fold.js').DecryptedEvent} DecryptedEvent */
/**
 * @typedef {{identityId: string, accessToken: string, refreshToken: string | null,
 *   csrfToken: string | null, expiresAt: number}} Session
 * @typedef {{authUrl: string, boxesUrl: string, realtimeUrl: string, store?: KeyStore,
 *   fetch?: typeof fetch, WebSocket?: any, XMLHttpRequest?: any, cookies?: boolean, autoRotate?: boolean,
 *   onSession?: (s: Session | null) => void}} ClientOptions
 * @typedef {{onEvent?: (e: DecryptedEvent) => void, onBoxDelete?: (o: {id: string}) => void,
 *   onAck?: (o: {box_id: string}) => void, onSettings?: (o: any) => void,
 *   onNotification?: (o: any) => void, onBoxes?: (boxes: any[]) => void,
 *   onResync?: (r: Resync) => void,
 *   onState?: (state: import('./realtime.js').SocketState) => void, onError?: (e: unknown) => void}} RealtimeHandlers
 * @typedef {{reason: 'connect' | 'not_recovered' | 'manual', boxes: string[]}} Resync what a
 *   re-sync did: why it ran, and the boxes whose missed events it delivered (through `onEvent`)
 * @typedef {import('./fold.js').FileInfo} FileInfo
 * @typedef {import('./transfer.js').OnProgress} OnProgress
 * @typedef {FileInfo & {bytes: Uint8Array}} OpenedFile a decrypted file: its metadata and its bytes
 * @typedef {{id: string, identity_id: string, encrypted_file_id: string, encrypted_metadata: string,
 *   key_fingerprint: string, created_at: string, file: FileInfo | null, undecryptable: boolean}} SavedFile
 *   a saved file as the services list it, with its metadata opened (`file`), or `undecryptable`
 */

/** Seconds before expiry at which a request first refreshes the access token. */
const REFRESH_MARGIN_S = 60;

/** @param {string} jwt */
function jwtClaims(jwt) {
  const part = jwt.split('.')[1];
  if (!part) throw new c.CryptoError('malformed token');
  return JSON.parse(new TextDecoder().decode(c.fromB64(part)));
}

export class BoxesClient {
  /** @param {ClientOptions} opts */
  constructor(opts) {
    this.authUrl = opts.authUrl.replace(/\/$/, '');
    this.boxesUrl = opts.boxesUrl.replace(/\/$/, '');
    this.realtimeUrl = opts.realtimeUrl.replace(/\/$/, '');
    this.store = opts.store ?? new MemoryKeyStore();
    this.fetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.WebSocket = opts.WebSocket ?? globalThis.WebSocket;
    // Uploads go through XMLHttpRequest where there is one (browsers), for its upload progress.
    this.XMLHttpRequest = opts.XMLHttpRequest === undefined ? globalThis.XMLHttpRequest : opts.XMLHttpRequest;
    this.cookies = opts.cookies ?? false;
    this.autoRotate = opts.autoRotate ?? true;
    this.onSession = opts.onSession;
    /** @type {Session | null} */
    this.session = null;
    /** @type {Uint8Array | null} */
    this.identitySecret = null;
    /** @type {Map<string, {secretKey: Uint8Array, publicKey: string, invitationShare: Uint8Array | null}>} */
    this.boxKeys = new Map();
    /** per box: the events already handed out and the catch-up cursor */
    this.sync = new SyncState();
    /** @type {Promise<void> | null} */
    this.refreshing = null;
    /** the realtime history position of the last envelope received */
    this.stream = new PositionTracker();
  }

  /** The realtime history position a reconnection asks to continue from (`?since=`). */
  get position() {
    return this.stream.position;
  }

  get identityId() {
    if (!this.session) throw new ApiError(401, 'unauthorized', 'not_defined', 'not logged in', {});
    return this.session.identityId;
  }

  // ---- sessions ----------------------------------------------------------------------------

  /** Development login and the miniapp-backend login (SPEC §10.2).
   * @param {{authCode: string, appId: string, clientId: string}} p */
  async login({ authCode, appId, clientId }) {
    const body = await this.#raw('POST', `${this.authUrl}/auth/login`, {
      auth_code: authCode,
      app_id: appId,
      client_id: clientId,
    });
    this.#setSession({
      identityId: body.identity_id,
      accessToken: body.access_token,
      refreshToken: body.refresh_token,
      csrfToken: body.csrf_token,
      expiresAt: Date.now() / 1000 + body.expires_in,
    });
    await this.init();
    return this.session;
  }

  /** Inside a Boxo host page: asks the host's web SDK (which calls POST /api/v1/authorize/) for
   * `{token, refresh_token}`. `appboxo` is `@appboxo/js-sdk`'s default export; its `login()`
   * waits for native init data in an iframe, so the event is sent directly.
   * @param {{sendPromise(name: string, params?: any): Promise<any>}} appboxo */
  async loginWithBoxo(appboxo) {
    const answer = await appboxo.sendPromise('AppBoxoWebAppLogin', {});
    const payload = answer?.payload ?? answer;
    if (!payload?.token) throw new ApiError(401, 'unauthorized', 'not_defined', 'the host app gave no token', {});
    await this.useTokens(payload.token, payload.refresh_token ?? null);
    return this.session;
  }

  /** Resumes with tokens obtained elsewhere (host page, earlier run).
   * @param {string} accessToken
   * @param {string | null} refreshToken
   * @param {string | null} [csrfToken] */
  async useTokens(accessToken, refreshToken, csrfToken = null) {
    const claims = jwtClaims(accessToken);
    this.#setSession({ identityId: claims.sub, accessToken, refreshToken, csrfToken, expiresAt: claims.exp });
    await this.init();
  }

  /** @param {Session | null} s */
  #setSession(s) {
    this.session = s;
    this.onSession?.(s);
  }

  /** Rotates the refresh token and gets a new access token (SPEC §10.5). */
  async refresh() {
    this.refreshing ??= (async () => {
      const s = this.session;
      if (!s?.refreshToken && !this.cookies) throw new ApiError(401, 'unauthorized', 'not_defined', 'no refresh token', {});
      const headers = /** @type {Record<string, string>} */ ({});
      if (this.cookies && s?.csrfToken) headers['X-CSRF-Token'] = s.csrfToken;
      const body = await this.#raw(
        'POST',
        `${this.authUrl}/auth/refresh`,
        this.cookies ? {} : { refresh_token: s?.refreshToken },
        headers,
      );
      this.#setSession({
        identityId: body.identity_id ?? s?.identityId,
        accessToken: body.access_token ?? body.token,
        refreshToken: body.refresh_token ?? null,
        csrfToken: body.csrf_token ?? s?.csrfToken ?? null,
        expiresAt: Date.now() / 1000 + (body.expires_in ?? 3600),
      });
    })().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  async logout() {
    try {
      if (this.session) await this.#call('POST', `${this.authUrl}/auth/logout`, undefined, { retry: false });
    } finally {
      this.#setSession(null);
      this.identitySecret = null;
      this.boxKeys.clear();
    }
  }

  // ---- HTTP --------------------------------------------------------------------------------

  /** One request without session handling.
   * @param {string} method @param {string} url @param {any} [body] @param {Record<string, string>} [headers] */
  async #raw(method, url, body, headers = {}) {
    /** @type {RequestInit} */
    const init = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      /** @type {Record<string, string>} */ (init.headers)['Content-Type'] = 'application/json';
    }
    if (this.cookies) init.credentials = 'include';
    let res;
    try {
      res = await this.fetch(url, init);
    } catch (e) {
      throw networkError(e);
    }
    const text = await res.text();
    if (!res.ok) throw errorFromResponse(res.status, text);
    return text ? JSON.parse(text) : null;
  }

  /** The headers that authenticate a request: the bearer token, or with cookies the CSRF token
   * of a write. Refreshes first when the access token is about to expire.
   * @param {string} method @returns {Promise<Record<string, string>>} */
  async #authHeaders(method) {
    if (this.session?.refreshToken && this.session.expiresAt - Date.now() / 1000 < REFRESH_MARGIN_S) {
      await this.refresh().catch(() => {});
    }
    const s = this.session;
    if (!s) throw new ApiError(401, 'unauthorized', 'not_defined', 'not logged in', {});
    /** @type {Record<string, string>} */
    const headers = {};
    if (!this.cookies) headers.Authorization = `Bearer ${s.accessToken}`;
    else if (method !== 'GET' && method !== 'HEAD' && s.csrfToken) headers['X-CSRF-Token'] = s.csrfToken;
    return headers;
  }

  /** Runs `perform` with the authentication headers; on a 401, refreshes once and runs it again.
   * @template T
   * @param {string} method @param {(auth: Record<string, string>) => Promise<T>} perform @param {boolean} [retry]
   * @returns {Promise<T>} */
  async #authorized(method, perform, retry = true) {
    const auth = await this.#authHeaders(method);
    const s = this.session;
    try {
      return await perform(auth);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401 && retry && (s?.refreshToken || this.cookies)) {
        await this.refresh();
        return this.#authorized(method, perform, false);
      }
      throw e;
    }
  }

  /** An authenticated request: refreshes before expiry, and once more on a 401.
   * @param {string} method @param {string} url @param {any} [body] @param {{retry?: boolean, headers?: Record<string, string>}} [o]
   * @returns {Promise<any>} */
  #call(method, url, body, o = {}) {
    return this.#authorized(method, (auth) => this.#raw(method, url, body, { ...(o.headers ?? {}), ...auth }), o.retry !== false);
  }

  /** @param {string} method @param {string} path @param {any} [body] @param {Record<string, string>} [headers] */
  api(method, path, body, headers) {
    return this.#call(method, `${this.boxesUrl}${path}`, body, { headers });
  }

  /** A write that is safe to retry: sent with one new `Idempotency-Key` (a UUID), and sent
   * again with the same key and body when no answer came back (network error), on a 5xx, or while
   * the first is still running (409 on the key), at most `attempts` times (5), so a flaky network
   * neither loses nor doubles it. Other errors are thrown at once.
   * @param {string} path @param {any} body @param {import('./retry.js').RetryOptions} [o] */
  idempotentPost(path, body, o = {}) {
    return withIdempotencyKey((key) => this.api('POST', path, body, { 'Idempotency-Key': key }), o);
  }

  // ---- identity key ------------------------------------------------------------------------

  /** Loads (or makes) this device's identity key pair and publishes its public key. */
  async init() {
    const id = this.identityId;
    const stored = await this.store.get(`identity:${id}`);
    let kp;
    if (stored) kp = c.keyPairFromSecretKey(c.fromB64(stored));
    else {
      kp = c.generateKeyPair();
      await this.store.set(`identity:${id}`, c.toB64u(kp.secretKey));
    }
    this.identitySecret = kp.secretKey;
    this.identityPublicKey = c.toB64u(kp.publicKey);
    const me = await this.api('GET', `/identities/${id}`);
    this.me = me;
    if (me.non_identified_pubkey !== this.identityPublicKey) {
      this.me = await this.api('PUT', `/identities/${id}/public-keys`, { non_identified_pubkey: this.identityPublicKey });
    }
  }

  // ---- box keys ----------------------------------------------------------------------------

  /** @param {string} boxId @param {Uint8Array} secretKey @param {string} publicKey @param {Uint8Array | null} invitationShare */
  async #keepBoxKey(boxId, secretKey, publicKey, invitationShare) {
    const entry = { secretKey, publicKey, invitationShare };
    this.boxKeys.set(boxId, entry);
    await this.store.set(
      `box:${this.identityId}:${boxId}`,
      JSON.stringify({
        secret_key: c.toB64u(secretKey),
        public_key: publicKey,
        invitation_share: invitationShare ? c.toB64u(invitationShare) : null,
      }),
    );
  }

  /** @param {string} boxId */
  async boxKey(boxId) {
    const cached = this.boxKeys.get(boxId);
    if (cached) return cached;
    const stored = await this.store.get(`box:${this.identityId}:${boxId}`);
    if (!stored) return null;
    const j = JSON.parse(stored);
    const entry = {
      secretKey: c.fromB64(j.secret_key),
      publicKey: j.public_key,
      invitationShare: j.invitation_share ? c.fromB64(j.invitation_share) : null,
    };
    this.boxKeys.set(boxId, entry);
    return entry;
  }

  /** @param {string} boxId */
  async #forgetBox(boxId) {
    this.boxKeys.delete(boxId);
    this.sync.forget(boxId);
    await this.store.delete(`box:${this.identityId}:${boxId}`);
  }

  // ---- boxes -------------------------------------------------------------------------------

  /** @param {string} title */
  async createBox(title) {
    const keys = c.newBoxKeys();
    const box = await this.idempotentPost('/boxes', { title, public_key: keys.publicKey, key_share: keys.keyShare });
    await this.#keepBoxKey(box.id, keys.secretKey, keys.publicKey, keys.invitationShare);
    return box;
  }

  /** A two-person box with `identityId`, its invitation encrypted to that identity's public key.
   * @param {string} identityId @param {string} title */
  async contact(identityId, title) {
    const profile = await this.api('GET', `/identities/${identityId}/profile`);
    const theirKey = profile.non_identified_pubkey ?? profile.pubkey;
    if (!theirKey) throw new ApiError(409, 'conflict', 'body', 'identity has no public key', { contacted_identity_id: 'conflict' });
    const keys = c.newBoxKeys();
    const box = await this.idempotentPost(`/box-users/${this.identityId}/contact`, {
      contacted_identity_id: identityId,
      box: { title, public_key: keys.publicKey },
      key_share: keys.keyShare,
      extra: { [theirKey]: c.encryptInvitation(keys.publicKey, keys.invitationShare, theirKey) },
    });
    await this.#keepBoxKey(box.id, keys.secretKey, keys.publicKey, keys.invitationShare);
    return box;
  }

  /** @param {{limit?: number, offset?: number, changedSince?: string}} [p] with `changedSince`
   * (RFC 3339), only the boxes with an event after that time */
  listBoxes({ limit = 50, offset = 0, changedSince } = {}) {
    const since = changedSince ? `&changed_since=${encodeURIComponent(changedSince)}` : '';
    return this.api('GET', `/boxes/joined?limit=${limit}&offset=${offset}${since}`);
  }

  /** @param {string} boxId */
  getBox(boxId) {
    return this.api('GET', `/boxes/${boxId}`);
  }

  /** @param {string} boxId */
  members(boxId) {
    return this.api('GET', `/boxes/${boxId}/members`);
  }

  /** @param {string} boxId */
  async deleteBox(boxId) {
    await this.api('DELETE', `/boxes/${boxId}`, { user_confirmation: 'delete' });
    await this.#forgetBox(boxId);
  }

  /** @param {string} boxId */
  async leave(boxId) {
    const ev = await this.api('POST', `/boxes/${boxId}/events`, { type: 'member.leave' });
    await this.#forgetBox(boxId);
    return ev;
  }

  /** @param {string} boxId */
  ack(boxId) {
    return this.api('PUT', `/boxes/${boxId}/new-events-count/ack`, { identity_id: this.identityId });
  }

  /** @param {string} boxId */
  settings(boxId) {
    return this.api('GET', `/box-users/${this.identityId}/boxes/${boxId}/settings`);
  }

  /** @param {string} boxId @param {boolean} muted */
  setMuted(boxId, muted) {
    return this.api('PUT', `/box-users/${this.identityId}/boxes/${boxId}/settings`, { muted });
  }

  // ---- messages ----------------------------------------------------------------------------

  /** @param {string} boxId */
  async #requireKey(boxId) {
    const k = await this.boxKey(boxId);
    if (k) return k;
    const box = await this.getBox(boxId);
    throw new c.CryptoError(`this device holds no key for box ${box.id}`);
  }

  /** @param {string} boxId @param {string} text */
  async send(boxId, text) {
    const k = await this.#requireKey(boxId);
    return this.decryptEvent(
      await this.idempotentPost(`/boxes/${boxId}/events`, {
        type: 'msg.text',
        content: { encrypted: c.encryptMessage(text, k.publicKey), public_key: k.publicKey },
      }),
    );
  }

  /** @param {string} boxId @param {string} messageId @param {string} text */
  async edit(boxId, messageId, text) {
    const k = await this.#requireKey(boxId);
    return this.decryptEvent(
      await this.idempotentPost(`/boxes/${boxId}/events`, {
        type: 'msg.edit',
        referrer_id: messageId,
        content: { new_encrypted: c.encryptMessage(text, k.publicKey), new_public_key: k.publicKey },
      }),
    );
  }

  /** @param {string} boxId @param {string} messageId */
  async deleteMessage(boxId, messageId) {
    return this.decryptEvent(await this.idempotentPost(`/boxes/${boxId}/events`, { type: 'msg.delete', referrer_id: messageId }));
  }

  /** Decrypts what an event carries; never throws for a ciphertext it cannot open.
   * @param {any} event
   * @returns {Promise<DecryptedEvent>} */
  async decryptEvent(event) {
    /** @type {DecryptedEvent} */
    const out = { ...event, text: null, deleted: false, edited_at: null, undecryptable: false };
    const content = event.content;
    const ciphertext = content?.encrypted ?? content?.new_encrypted;
    if (content?.deleted) out.deleted = true;
    if (event.type === 'msg.text' || event.type === 'msg.edit') {
      out.edited_at = content?.last_edited_at ?? null;
      if (typeof ciphertext === 'string') {
        const k = await this.boxKey(event.box_id);
        try {
          if (!k) throw new c.CryptoError('no key');
          out.text = c.decryptMessage(ciphertext, k.secretKey);
        } catch {
          out.undecryptable = true;
        }
      }
    }
    if (event.type === 'msg.file') {
      out.file = null;
      if (typeof ciphertext === 'string') {
        try {
          const m = await this.#fileMetadata(event);
          out.file = { id: event.content.encrypted_file_id, name: m.name, type: m.type, size: m.size };
        } catch {
          out.undecryptable = true;
        }
      }
    }
    return out;
  }

  /** A page of a box's visible events, decrypted, oldest first.
   * @param {string} boxId @param {{limit?: number, offset?: number}} [p] */
  async listEvents(boxId, { limit = 50, offset = 0 } = {}) {
    const page = await this.api('GET', `/boxes/${boxId}/events?limit=${limit}&offset=${offset}`);
    this.sync.listed(boxId, page);
    const out = [];
    for (const e of page.reverse()) out.push(await this.decryptEvent(e));
    return out;
  }

  /** A whole timeline, folded (at most `max` events).
   * @param {string} boxId @param {number} [max] */
  async timeline(boxId, max = 1000) {
    /** @type {DecryptedEvent[]} */
    let all = [];
    for (let offset = 0; offset < max; offset += 200) {
      const page = await this.listEvents(boxId, { limit: 200, offset });
      all = [...page, ...all];
      if (page.length < 200) break;
    }
    return all.reduce(foldEvent, /** @type {DecryptedEvent[]} */ ([]));
  }

  // ---- encrypted files ---------------------------------------------------------------------

  /** Encrypts a file under a fresh key (docs/crypto.md §9) and posts it to a box as a `msg.file`
   * whose content is the file's metadata and key sealed to the box, as a message's text is.
   * `onProgress` follows the upload, in bytes of the request body, up to `{loaded: total, total}`.
   * @param {string} boxId
   * @param {Blob | Uint8Array | ArrayBuffer} file a `File` gives its own name and type
   * @param {{name?: string, type?: string, onProgress?: OnProgress}} [o]
   * @returns {Promise<DecryptedEvent>} the `msg.file` event, decrypted */
  async uploadFile(boxId, file, o = {}) {
    const k = await this.#requireKey(boxId);
    const source = fileSource(file);
    const name = o.name ?? source.name ?? 'file';
    const type = o.type ?? source.type ?? '';
    if (name.length > f.MAX_FILE_NAME) throw new ApiError(400, 'bad_request', 'body', 'file name too long', { name: 'invalid' });
    if (type.length > f.MAX_FILE_TYPE) throw new ApiError(400, 'bad_request', 'body', 'media type too long', { type: 'invalid' });
    const key = f.newFileKey();
    const prefix = c.randomBytes(f.FILE_PREFIX_BYTES);
    const meta = { name, type, size: source.size, key, format: f.FILE_FORMAT };
    const encrypted = c.encryptMessage(f.metadataJson(meta), k.publicKey);
    const progress = forwardProgress(o.onProgress);
    const event = await this.#authorized('POST', (auth) =>
      uploadMultipart({
        url: `${this.boxesUrl}/boxes/${boxId}/encrypted-files`,
        fields: [
          ['msg_encrypted_content', encrypted],
          ['msg_public_key', k.publicKey],
        ],
        fileField: 'encrypted_file',
        size: f.encryptedFileSize(source.size),
        // The same key and prefix give the same bytes, so a request sent again sends them again.
        pieces: () => f.encryptFileChunks(source.size, source.read, key, prefix),
        headers: auth,
        credentials: this.cookies,
        progress,
        fetch: this.fetch,
        XMLHttpRequest: this.XMLHttpRequest,
      }),
    );
    return this.decryptEvent(event);
  }

  /** The metadata (with the key) of a `msg.file`, opened with the box key.
   * @param {any} event @returns {Promise<f.FileMetadata>} */
  async #fileMetadata(event) {
    const encrypted = event?.content?.encrypted;
    if (event?.type !== 'msg.file' || typeof encrypted !== 'string' || typeof event.content.encrypted_file_id !== 'string') {
      throw new c.CryptoError('not a file message, or a deleted one');
    }
    const k = await this.boxKey(event.box_id);
    if (!k) throw new c.CryptoError(`this device holds no key for box ${event.box_id}`);
    return f.parseMetadata(c.decryptMessage(encrypted, k.secretKey));
  }

  /** Downloads and decrypts the file of a `msg.file` event (as listed, received or returned by
   * `uploadFile`). Every chunk is verified before its bytes count; a file cut short, reordered or
   * altered throws a CryptoError. `onProgress` follows the download, in bytes of the encrypted file.
   * @param {any} event @param {{onProgress?: OnProgress}} [o]
   * @returns {Promise<OpenedFile>} */
  async openFile(event, o = {}) {
    const meta = await this.#fileMetadata(event);
    return this.#fetchFile(event.content.encrypted_file_id, meta, o.onProgress);
  }

  /** @param {string} fileId @param {f.FileMetadata} meta @param {OnProgress | undefined} onProgress
   * @returns {Promise<OpenedFile>} */
  async #fetchFile(fileId, meta, onProgress) {
    const expected = f.encryptedFileSize(meta.size);
    const progress = forwardProgress(onProgress);
    return this.#authorized('GET', async (auth) => {
      let out = new Uint8Array(0);
      let at = 0;
      /** @type {f.FileDecryptor} */
      let decryptor = new f.FileDecryptor(meta.key);
      const take = (/** @type {Uint8Array[]} */ parts) => {
        for (const p of parts) {
          if (at + p.length > out.length) throw new c.CryptoError('the file is longer than its metadata says');
          out.set(p, at);
          at += p.length;
        }
      };
      await download({
        url: `${this.boxesUrl}/encrypted-files/${fileId}`,
        headers: auth,
        credentials: this.cookies,
        fetch: this.fetch,
        start: (total) => {
          if (Number.isFinite(total) && total !== expected) {
            throw new c.CryptoError('the stored file does not have the length its metadata gives');
          }
          out = new Uint8Array(meta.size);
          at = 0;
          decryptor = new f.FileDecryptor(meta.key);
        },
        bytes: (b) => take(decryptor.push(b)),
        progress: (loaded) => progress(loaded, expected),
      });
      take([decryptor.finish()]);
      if (at !== meta.size) throw new c.CryptoError('the file is shorter than its metadata says');
      return { id: fileId, name: meta.name, type: meta.type, size: meta.size, bytes: out };
    });
  }

  /** Keeps a file of a box for oneself: its metadata and key sealed to this identity's public key,
   * so it can still be opened after leaving the box.
   * @param {any} event a `msg.file`
   * @returns {Promise<SavedFile>} */
  async saveFile(event) {
    const meta = await this.#fileMetadata(event);
    if (!this.identityPublicKey) throw new c.CryptoError('no identity key');
    const saved = await this.idempotentPost(`/identities/${this.identityId}/saved-files`, {
      encrypted_file_id: event.content.encrypted_file_id,
      encrypted_metadata: c.toB64u(c.seal(new TextEncoder().encode(f.metadataJson(meta)), c.fromB64(this.identityPublicKey))),
      key_fingerprint: f.keyFingerprint(meta.key),
    });
    return this.#openSaved(saved);
  }

  /** @param {any} saved @returns {Promise<f.FileMetadata>} */
  async #savedMetadata(saved) {
    if (!this.identitySecret) throw new c.CryptoError('no identity key');
    return f.parseMetadata(new TextDecoder('utf-8', { fatal: true }).decode(c.open(c.fromB64(saved.encrypted_metadata), this.identitySecret)));
  }

  /** @param {any} saved @returns {Promise<SavedFile>} */
  async #openSaved(saved) {
    try {
      const m = await this.#savedMetadata(saved);
      return { ...saved, file: { id: saved.encrypted_file_id, name: m.name, type: m.type, size: m.size }, undecryptable: false };
    } catch {
      return { ...saved, file: null, undecryptable: true };
    }
  }

  /** This identity's saved files, their metadata decrypted.
   * @returns {Promise<SavedFile[]>} */
  async savedFiles() {
    const list = await this.api('GET', `/identities/${this.identityId}/saved-files`);
    return Promise.all(list.map((/** @type {any} */ s) => this.#openSaved(s)));
  }

  /** Downloads and decrypts a saved file, as `openFile` does.
   * @param {{encrypted_file_id: string, encrypted_metadata: string}} saved @param {{onProgress?: OnProgress}} [o]
   * @returns {Promise<OpenedFile>} */
  async openSavedFile(saved, o = {}) {
    return this.#fetchFile(saved.encrypted_file_id, await this.#savedMetadata(saved), o.onProgress);
  }

  /** @param {{id: string}} saved */
  async deleteSavedFile(saved) {
    await this.api('DELETE', `/identities/${this.identityId}/saved-files/${saved.id}`);
  }

  /** `{identity_id, quota, used}` in bytes. */
  storageQuota() {
    return this.api('GET', `/identities/${this.identityId}/storage-quota`);
  }

  /** `{box_id, used}`: the bytes the files of a box take. @param {string} boxId */
  boxUsedSpace(boxId) {
    return this.api('GET', `/boxes/${boxId}/used-space`);
  }

  // ---- invitations -------------------------------------------------------------------------

  /** The current invitation share of a box: kept locally, or rebuilt from
   * `encrypted_invitation_key_share` with the box secret key.
   * @param {string} boxId */
  async invitationShare(boxId) {
    const k = await this.#requireKey(boxId);
    if (k.invitationShare) return k.invitationShare;
    const enc = await this.api('GET', `/box-key-shares/encrypted-invitation-key-share?box_id=${boxId}`);
    const share = c.decryptInvitationShare(enc, k.secretKey);
    await this.#keepBoxKey(boxId, k.secretKey, k.publicKey, share);
    return share;
  }

  /** A link anyone can open to join (the admin's box is made public first).
   * @param {string} boxId @param {string} baseUrl the miniapp page the link opens */
  async invitationLink(boxId, baseUrl) {
    const box = await this.getBox(boxId);
    if (box.access_mode !== 'public' && box.creator?.id === this.identityId) {
      await this.api('POST', `/boxes/${boxId}/events`, { type: 'state.access_mode', content: { value: 'public' } });
    }
    return c.makeInvitationLink(baseUrl, boxId, await this.invitationShare(boxId));
  }

  /** What a link shows before joining: `{title, creator}` (no login needed).
   * @param {string} link */
  async previewLink(link) {
    const { boxId, otherShareHash } = c.parseInvitationLink(link);
    return this.#raw('GET', `${this.boxesUrl}/boxes/${boxId}/public?other_share_hash=${otherShareHash}`);
  }

  /** @param {string} link */
  async joinByLink(link) {
    const { boxId, invitationShare } = c.parseInvitationLink(link);
    return this.#joinWithShare(boxId, invitationShare, null);
  }

  /** Joins (if not yet a member), fetches `misakey_share` and rebuilds the box secret.
   * @param {string} boxId @param {Uint8Array} invitationShare
   * @param {string | null} expectedPublicKey the box key an invitation named */
  async #joinWithShare(boxId, invitationShare, expectedPublicKey) {
    try {
      await this.api('POST', `/boxes/${boxId}/events`, { type: 'member.join' });
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 'conflict')) throw e;
    }
    const share = await this.api('GET', `/box-key-shares/${c.shareHash(invitationShare)}`);
    const box = await this.getBox(boxId);
    if (expectedPublicKey !== null && box.public_key !== expectedPublicKey) {
      throw new c.CryptoError('the box does not have the key the invitation names');
    }
    const secret = c.recoverBoxSecret(c.fromB64(share.misakey_share), invitationShare, box.public_key);
    await this.#keepBoxKey(boxId, secret, box.public_key, invitationShare);
    return box;
  }

  /** Handles pending crypto actions: accepts invitations, stores rotated invitation shares,
   * deletes each action it handled. Returns the ids of the boxes joined. */
  async processCryptoActions() {
    const actions = await this.api('GET', `/identities/${this.identityId}/crypto/actions`);
    /** @type {string[]} */
    const joined = [];
    for (const a of actions) {
      try {
        if (a.type === 'invitation') {
          if (a.encryption_public_key !== this.identityPublicKey || !this.identitySecret) continue;
          const { boxPublicKey, invitationShare } = c.decryptInvitation(a.encrypted, this.identitySecret);
          await this.#joinWithShare(a.box_id, invitationShare, boxPublicKey);
          joined.push(a.box_id);
        } else if (a.type === 'set_box_key_share') {
          const k = await this.boxKey(a.box_id);
          if (k) {
            const share = c.decryptInvitationShare(a.encrypted, k.secretKey);
            await this.#keepBoxKey(a.box_id, k.secretKey, k.publicKey, share);
          }
        }
      } catch (e) {
        // A box deleted or an invitation withdrawn in the meantime: the action is spent.
        if (!(e instanceof ApiError && (e.status === 403 || e.status === 404))) throw e;
      }
      await this.api('DELETE', `/identities/${this.identityId}/crypto/actions/${a.id}`).catch((/** @type {unknown} */ e) => {
        if (!(e instanceof ApiError && e.status === 404)) throw e;
      });
    }
    return joined;
  }

  /** A new split of the box secret (admin): old links and shares stop working.
   * @param {string} boxId */
  async rotateKeyShare(boxId) {
    const k = await this.#requireKey(boxId);
    const { invitationShare, keyShare } = c.newKeyShare(k.secretKey, k.publicKey);
    await this.api('POST', `/boxes/${boxId}/events`, { type: 'state.key_share', extra: keyShare });
    await this.#keepBoxKey(boxId, k.secretKey, k.publicKey, invitationShare);
  }

  // ---- realtime ----------------------------------------------------------------------------

  /** Opens the socket and keeps it open (see `openRealtime`): reconnects with a capped, jittered
   * backoff from the last history position (`?since=`), hands each envelope over once and in
   * order, and re-syncs (`catchUp`, then `onResync`) after a first `ready` and after any `ready`
   * that says `recovered` is not true.
   * @param {RealtimeHandlers} h
   * @param {{delay?: (attempt: number) => number}} [o]
   * @returns {{close(): void, readonly connected: boolean}} */
  connect(h = {}, o = {}) {
    return openRealtime({
      WebSocket: this.WebSocket,
      tracker: this.stream,
      delay: o.delay,
      onState: h.onState,
      onError: h.onError,
      url: async (since) => {
        if (this.session && this.session.expiresAt - Date.now() / 1000 < REFRESH_MARGIN_S) {
          await this.refresh().catch((e) => h.onError?.(e));
        }
        if (!this.session) return null;
        const url = `${this.realtimeUrl}/box-users/${this.identityId}/ws?access_token=${encodeURIComponent(this.session.accessToken)}`;
        return since ? `${url}&since=${encodeURIComponent(since)}` : url;
      },
      beforeReconnect: async (code) => {
        if (code === CLOSE.TOKEN_EXPIRED) await this.refresh();
      },
      handle: (env) => this.#dispatch(env, h),
    });
  }

  /** @param {any} env @param {RealtimeHandlers} h */
  async #dispatch(env, h) {
    const o = env.object;
    switch (env.type) {
      case 'ready':
        // Recovered: every missed envelope was replayed before `ready`, nothing to re-sync.
        if (o?.recovered !== true) await this.catchUp(h, o?.recovered === false ? 'not_recovered' : 'connect');
        break;
      case 'event.new': {
        if (!this.sync.firstSight(o)) return;
        if (this.autoRotate && (o.type === 'member.leave' || o.type === 'member.kick')) {
          const k = await this.boxKey(o.box_id);
          const box = k ? await this.getBox(o.box_id).catch(() => null) : null;
          if (box?.creator?.id === this.identityId) await this.rotateKeyShare(o.box_id);
        }
        if (o.type === 'state.key_share') await this.processCryptoActions();
        if ((o.type === 'member.leave' || o.type === 'member.kick') && o.sender?.id === this.identityId) {
          await this.#forgetBox(o.box_id);
        }
        h.onEvent?.(await this.decryptEvent(o));
        break;
      }
      case 'box.delete':
        await this.#forgetBox(o.id);
        h.onBoxDelete?.(o);
        break;
      case 'ack':
        h.onAck?.(o);
        break;
      case 'box.settings':
        h.onSettings?.(o);
        break;
      case 'notification':
        if (o.type === 'box.auto_invite') await this.processCryptoActions();
        h.onNotification?.(o);
        break;
      default:
        break;
    }
  }

  /** The re-sync after a reconnection that did not recover everything: the crypto actions, the
   * whole box list, every page (`onBoxes`), then, in each box this client has read before and that changed since
   * the newest event it saw (`GET /boxes/joined?changed_since=`), the events after its cursor
   * (`GET /boxes/{id}/events?after=`), each handed to `onEvent` once, oldest first; `onResync`
   * last.
   * @param {RealtimeHandlers} h
   * @param {Resync['reason']} [reason] */
  async catchUp(h = {}, reason = 'manual') {
    await this.processCryptoActions();
    const boxes = await allPages((limit, offset) => this.listBoxes({ limit, offset }), 50);
    h.onBoxes?.(boxes);
    const since = this.sync.changedSince();
    const changed = since
      ? (await allPages((limit, offset) => this.listBoxes({ limit, offset, changedSince: since }), 50)).map((b) => b.id)
      : [...this.sync.cursors.keys()];
    /** @type {string[]} */
    const caughtUp = [];
    for (const boxId of changed) {
      const cursor = this.sync.cursors.get(boxId);
      if (cursor === undefined) continue;
      let events;
      try {
        events = await eventsAfter((after, limit) => this.api('GET', `/boxes/${boxId}/events?after=${after}&limit=${limit}`), cursor);
      } catch (e) {
        // Left, kicked or deleted in the meantime: the box list says so; no more catching up.
        if (!(e instanceof ApiError && [403, 404, 410].includes(e.status))) throw e;
        this.sync.forget(boxId);
        continue;
      }
      const fresh = events.filter((e) => !this.sync.seen.get(boxId)?.has(e.id));
      this.sync.listed(boxId, events);
      for (const e of fresh) h.onEvent?.(await this.decryptEvent(e));
      if (fresh.length > 0) caughtUp.push(boxId);
    }
    h.onResync?.({ reason, boxes: caughtUp });
  }
}

/** What `uploadFile` reads: a Blob (a File) slice by slice, or bytes in memory.
 * @param {Blob | Uint8Array | ArrayBuffer} file
 * @returns {{size: number, name: string | null, type: string | null, read: (offset: number, length: number) => Promise<Uint8Array>}} */
function fileSource(file) {
  if (file instanceof Uint8Array || file instanceof ArrayBuffer) {
    const bytes = file instanceof Uint8Array ? file : new Uint8Array(file);
    return { size: bytes.length, name: null, type: null, read: async (o, n) => bytes.subarray(o, o + n) };
  }
  if (typeof Blob !== 'undefined' && file instanceof Blob) {
    const name = 'name' in file && typeof file.name === 'string' ? file.name : null;
    return { size: file.size, name, type: file.type || null, read: async (o, n) => new Uint8Array(await file.slice(o, o + n).arrayBuffer()) };
  }
  throw new ApiError(400, 'bad_request', 'body', 'a file is a Blob, a File, a Uint8Array or an ArrayBuffer', { file: 'invalid' });
}
