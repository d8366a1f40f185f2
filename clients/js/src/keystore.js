// Where the device keeps its secrets (identity secret key, box secret keys, invitation shares).
// They never leave it: the SDK sends none of them to any server.

/** @typedef {{get(key: string): Promise<string | undefined>, set(key: string, value: string): Promise<void>, delete(key: string): Promise<void>}} KeyStore */

/** Secrets for the lifetime of the process (tests, scripts).
 * @implements {KeyStore} */
export class MemoryKeyStore {
  constructor() {
    /** @type {Map<string, string>} */
    this.map = new Map();
  }
  /** @param {string} key */
  async get(key) {
    return this.map.get(key);
  }
  /** @param {string} key @param {string} value */
  async set(key, value) {
    this.map.set(key, value);
  }
  /** @param {string} key */
  async delete(key) {
    this.map.delete(key);
  }
}

/** Node: one JSON file, written with mode 0600 (write to a temporary file, then rename).
 * @implements {KeyStore} */
export class FileKeyStore {
  /** @param {string} path */
  constructor(path) {
    this.path = path;
    /** @type {Promise<unknown>} */
    this.queue = Promise.resolve();
  }
  async #read() {
    const fs = await import('node:fs/promises');
    try {
      return /** @type {Record<string, string>} */ (JSON.parse(await fs.readFile(this.path, 'utf8')));
    } catch (e) {
      if (/** @type {any} */ (e).code === 'ENOENT') return {};
      throw e;
    }
  }
  /** @param {(data: Record<string, string>) => void} change */
  #update(change) {
    const run = this.queue.then(async () => {
      const fs = await import('node:fs/promises');
      const data = await this.#read();
      change(data);
      const tmp = `${this.path}.tmp`;
      await fs.writeFile(tmp, JSON.stringify(data), { mode: 0o600 });
      await fs.rename(tmp, this.path);
    });
    this.queue = run.catch(() => {});
    return run;
  }
  /** @param {string} key */
  async get(key) {
    await this.queue;
    return (await this.#read())[key];
  }
  /** @param {string} key @param {string} value */
  async set(key, value) {
    await this.#update((d) => {
      d[key] = value;
    });
  }
  /** @param {string} key */
  async delete(key) {
    await this.#update((d) => {
      delete d[key];
    });
  }
}

/** Browsers: one IndexedDB object store, scoped to the page's origin.
 * @implements {KeyStore} */
export class IndexedDBKeyStore {
  /** @param {string} [dbName] */
  constructor(dbName = 'boxes-keys') {
    this.dbName = dbName;
    /** @type {Promise<IDBDatabase> | null} */
    this.db = null;
  }
  /** @returns {Promise<IDBDatabase>} */
  #open() {
    this.db ??= new Promise((resolve, reject) => {
      const req = indexedDB.open(this.dbName, 1);
      req.onupgradeneeded = () => req.result.createObjectStore('keys');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return this.db;
  }
  /** @template T @param {IDBTransactionMode} mode @param {(s: IDBObjectStore) => IDBRequest<T>} op @returns {Promise<T>} */
  async #run(mode, op) {
    const db = await this.#open();
    return new Promise((resolve, reject) => {
      const req = op(db.transaction('keys', mode).objectStore('keys'));
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  /** @param {string} key */
  async get(key) {
    const v = await this.#run('readonly', (s) => s.get(key));
    return typeof v === 'string' ? v : undefined;
  }
  /** @param {string} key @param {string} value */
  async set(key, value) {
    await this.#run('readwrite', (s) => s.put(value, key));
  }
  /** @param {string} key */
  async delete(key) {
    await this.#run('readwrite', (s) => s.delete(key));
  }
}
