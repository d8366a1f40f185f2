// Typed errors: every non-2xx answer of the services becomes an ApiError carrying the SPEC §4 body.

const CODE_BY_STATUS = /** @type {Record<number, string>} */ ({
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  410: 'gone',
  413: 'request_entity_too_large',
  500: 'internal',
  502: 'bad_gateway',
  503: 'service_unavailable',
  504: 'gateway_timeout',
});

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the request never got an answer
   * @param {string} code SPEC §4 machine code (or `network_error`)
   * @param {string} origin
   * @param {string} desc
   * @param {Record<string, string>} details
   */
  constructor(status, code, origin, desc, details) {
    super(`${status} ${code}${desc ? `: ${desc}` : ''} ${JSON.stringify(details)}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.origin = origin;
    this.desc = desc;
    this.details = details;
  }

  /** `details.reason` of box authorisation failures (`not_member`, `no_access`, …), if any. */
  get reason() {
    return this.details.reason;
  }
}

/** Builds the error of a failed response from its status and (possibly unparsable) body text.
 * @param {number} status
 * @param {string} bodyText
 * @returns {ApiError} */
export function errorFromResponse(status, bodyText) {
  /** @type {any} */
  let body = null;
  try {
    body = JSON.parse(bodyText);
  } catch {
    body = null;
  }
  const fallback = CODE_BY_STATUS[status] ?? (status >= 500 ? 'internal' : 'bad_request');
  if (!body || typeof body !== 'object' || typeof body.code !== 'string') {
    return new ApiError(status, fallback, 'not_defined', '', {});
  }
  /** @type {Record<string, string>} */
  const details = {};
  if (body.details && typeof body.details === 'object') {
    for (const [k, v] of Object.entries(body.details)) details[k] = String(v);
  }
  return new ApiError(
    status,
    body.code,
    typeof body.origin === 'string' ? body.origin : 'not_defined',
    typeof body.desc === 'string' ? body.desc : '',
    details,
  );
}

/** @param {unknown} cause */
export function networkError(cause) {
  const err = new ApiError(0, 'network_error', 'not_defined', String(cause), {});
  err.cause = cause;
  return err;
}
