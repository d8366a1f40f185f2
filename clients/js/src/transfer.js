// Moving encrypted files over HTTP with progress. Uploads are multipart/form-data: through
// XMLHttpRequest where the platform has it (its upload events are the only upload progress a
// browser gives over HTTP/1.1), otherwise through fetch with a streamed body (Node), encrypted as
// it is sent. Downloads are read from fetch's body stream and resumed with a Range request when
// the connection drops.
import { errorFromResponse, networkError } from './errors.js';
import { newIdempotencyKey } from './retry.js';

/** @typedef {{loaded: number, total: number}} Progress */
/** @typedef {(p: Progress) => void} OnProgress */

/** Reports progress only forward: never twice the same figure, never backwards (a request sent
 * again after a refreshed token starts from zero without showing it).
 * @param {OnProgress | undefined} onProgress */
export function forwardProgress(onProgress) {
  let last = -1;
  /** @param {number} loaded @param {number} total */
  return (loaded, total) => {
    const at = Math.min(loaded, total);
    if (at <= last) return;
    last = at;
    onProgress?.({ loaded: at, total });
  };
}

/**
 * @typedef {{url: string, fields: Array<[string, string]>, fileField: string, size: number,
 *   pieces: () => AsyncIterable<Uint8Array>, headers: Record<string, string>, credentials: boolean,
 *   progress: (loaded: number, total: number) => void, fetch: typeof fetch, XMLHttpRequest?: any}} Upload
 * `size` is the byte length of everything `pieces` yields, the file part's content
 */

/** Sends a multipart upload whose file part is LAST; returns the parsed JSON answer and throws an
 * ApiError for anything but a 2xx.
 * @param {Upload} u
 * @returns {Promise<any>} */
export async function uploadMultipart(u) {
  const { status, text } = u.XMLHttpRequest ? await viaXhr(u) : await viaFetch(u);
  if (status < 200 || status >= 300) throw errorFromResponse(status, text);
  return text ? JSON.parse(text) : null;
}

/** @param {Upload} u @returns {Promise<{status: number, text: string}>} */
async function viaXhr(u) {
  /** @type {BlobPart[]} */
  const parts = [];
  for await (const piece of u.pieces()) parts.push(/** @type {Uint8Array<ArrayBuffer>} */ (piece));
  const form = new FormData();
  for (const [name, value] of u.fields) form.append(name, value);
  form.append(u.fileField, new Blob(parts, { type: 'application/octet-stream' }), 'encrypted');
  return new Promise((resolve, reject) => {
    const xhr = new u.XMLHttpRequest();
    xhr.open('POST', u.url);
    xhr.withCredentials = u.credentials;
    for (const [k, v] of Object.entries(u.headers)) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (/** @type {ProgressEvent} */ e) => {
      if (e.lengthComputable) u.progress(e.loaded, e.total);
    };
    xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText });
    xhr.onerror = () => reject(networkError(new Error('the upload failed')));
    xhr.onabort = () => reject(networkError(new Error('the upload was aborted')));
    xhr.send(form);
  });
}

const CRLF = '\r\n';
const utf8 = new TextEncoder();

/** A form field's name or a file name, quoted as browsers do in Content-Disposition.
 * @param {string} s */
const quoted = (s) => `"${s.replace(/\r/g, '%0D').replace(/\n/g, '%0A').replace(/"/g, '%22')}"`;

/** The multipart body written out by hand, so the file part can be a stream of known length.
 * @param {Upload} u @returns {Promise<{status: number, text: string}>} */
async function viaFetch(u) {
  const boundary = `----boxes-${newIdempotencyKey()}`;
  let head = '';
  for (const [name, value] of u.fields) {
    head += `--${boundary}${CRLF}Content-Disposition: form-data; name=${quoted(name)}${CRLF}${CRLF}${value}${CRLF}`;
  }
  head += `--${boundary}${CRLF}Content-Disposition: form-data; name=${quoted(u.fileField)}; filename="encrypted"${CRLF}`;
  head += `Content-Type: application/octet-stream${CRLF}${CRLF}`;
  const headBytes = utf8.encode(head);
  const tailBytes = utf8.encode(`${CRLF}--${boundary}--${CRLF}`);
  const total = headBytes.length + u.size + tailBytes.length;
  const source = u.pieces()[Symbol.asyncIterator]();
  let queued = 0;
  let stage = /** @type {'head' | 'file' | 'tail' | 'done'} */ ('head');
  const body = new ReadableStream(
    {
      // Each pull means the bytes queued before were taken by the connection.
      async pull(ctrl) {
        u.progress(queued, total);
        /** @type {Uint8Array | null} */
        let next = null;
        if (stage === 'head') ((next = headBytes), (stage = 'file'));
        else if (stage === 'file') {
          const r = await source.next();
          if (r.done) ((next = tailBytes), (stage = 'done'));
          else next = r.value;
        }
        if (!next) return ctrl.close();
        queued += next.length;
        ctrl.enqueue(next);
      },
      async cancel() {
        await source.return?.();
      },
    },
    { highWaterMark: 0 },
  );
  let res;
  try {
    res = await u.fetch(u.url, {
      method: 'POST',
      headers: { ...u.headers, 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': String(total) },
      body,
      credentials: u.credentials ? 'include' : 'same-origin',
      // @ts-ignore a streamed request body needs it (fetch standard); not in every RequestInit type
      duplex: 'half',
    });
  } catch (e) {
    throw networkError(e);
  }
  const text = await res.text();
  if (res.ok) u.progress(total, total);
  return { status: res.status, text };
}

/**
 * @typedef {{url: string, headers: Record<string, string>, credentials: boolean, fetch: typeof fetch,
 *   progress: (loaded: number, total: number) => void, start: (total: number) => void,
 *   bytes: (b: Uint8Array) => void, resumes?: number}} Download
 * `start(total)` is called before the first byte, and again if a resumed download had to start
 * over; `bytes` gets the body in order.
 */

/** Downloads a whole body. When the connection drops in the middle, asks for the rest
 * (`Range: bytes=<received>-`, `If-Range: <ETag>`) up to `resumes` times (3); a server that
 * answers the whole body instead makes it start over. HTTP errors are thrown as ApiError.
 * @param {Download} d */
export async function download(d) {
  const resumes = d.resumes ?? 3;
  let received = 0;
  let total = 0;
  /** @type {string | null} */
  let etag = null;
  /** @type {unknown} */
  let lastFailure = null;
  for (let attempt = 0; attempt <= resumes; attempt++) {
    /** @type {Record<string, string>} */
    const headers = { ...d.headers };
    if (received > 0) {
      headers.Range = `bytes=${received}-`;
      if (etag) headers['If-Range'] = etag;
    }
    let res;
    try {
      res = await d.fetch(d.url, { method: 'GET', headers, credentials: d.credentials ? 'include' : 'same-origin' });
    } catch (e) {
      if (received === 0) throw networkError(e);
      lastFailure = e;
      continue;
    }
    if (!res.ok) throw errorFromResponse(res.status, await res.text().catch(() => ''));
    if (received > 0) {
      // A cross-origin page may not be allowed to read Content-Range; a 206 to `bytes=<n>-` starts at n.
      const start = rangeStart(res.headers.get('content-range'));
      if (res.status === 206 && start !== null && start !== received) {
        await res.body?.cancel().catch(() => {});
        throw networkError(new Error('the server resumed the download at the wrong offset'));
      }
      // A whole body instead: start over with it.
      if (res.status !== 206) received = 0;
    }
    if (received === 0) {
      total = Number(res.headers.get('content-length') ?? NaN);
      etag = res.headers.get('etag');
      try {
        d.start(total);
      } catch (e) {
        await res.body?.cancel().catch(() => {});
        throw e;
      }
    }
    if (!res.body) throw networkError(new Error('the answer has no body'));
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received += value.length;
        d.bytes(value);
        d.progress(received, total);
      }
    } catch (e) {
      // A consumer's error (a chunk that does not decrypt) ends the download at once.
      if (!isNetworkFailure(e)) throw e;
      lastFailure = e;
      continue;
    }
    if (Number.isFinite(total) && received < total) {
      lastFailure = new Error('the connection closed before the end of the body');
      continue;
    }
    return;
  }
  throw networkError(lastFailure);
}

/** @param {unknown} e */
function isNetworkFailure(e) {
  return e instanceof TypeError || (e instanceof Error && (e.name === 'AbortError' || e.name === 'NetworkError'));
}

/** @param {string | null} header `bytes <start>-<end>/<size>`, or null when unreadable
 * @returns {number | null} */
function rangeStart(header) {
  if (header === null) return null;
  const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(header.trim());
  return m ? Number(m[1]) : -1;
}
