// The public API (docs/api-contract.md) seen from the browser: one origin, JSON in and out,
// and the session's tokens.
//
// The access token lives only in this module's memory. The refresh token comes only in the
// login's JSON body, so it is kept in sessionStorage: it survives a reload of this tab (and so
// resumes an upload after one) and dies with the tab; the strict Content-Security-Policy (no
// inline or foreign scripts) is what keeps other scripts from reading it. An HttpOnly cookie
// would hide it from scripts altogether; that needs the auth service to set it (docs/web.md).

const REFRESH_KEY = "rs.refresh";
// Refresh this long before the access token expires, so a request never carries a stale one.
const REFRESH_MARGIN_SECONDS = 60;

let access = null;
let timer = null;
let refreshing = null;
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, detail, code) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

export function onSessionChange(listener) {
  listeners.add(listener);
}

export function signedIn() {
  return access !== null || sessionStorage.getItem(REFRESH_KEY) !== null;
}

function announce() {
  for (const listener of listeners) listener(signedIn());
}

function keep(tokens) {
  access = tokens.access_token;
  if (tokens.refresh_token) sessionStorage.setItem(REFRESH_KEY, tokens.refresh_token);
  clearTimeout(timer);
  const seconds = Math.max(5, (tokens.expires_in || 3600) - REFRESH_MARGIN_SECONDS);
  timer = setTimeout(() => refresh().catch(() => {}), seconds * 1000);
  announce();
}

function forget() {
  access = null;
  clearTimeout(timer);
  sessionStorage.removeItem(REFRESH_KEY);
  announce();
}

async function refresh() {
  // One refresh at a time: the old refresh token is spent by the first.
  if (!refreshing) {
    refreshing = (async () => {
      const token = sessionStorage.getItem(REFRESH_KEY);
      if (!token) throw new ApiError(401, "Inicia sesión para continuar.", "unauthorized");
      try {
        keep(await call("POST", "/api/auth/refresh", { body: { refresh_token: token } }));
      } catch (error) {
        if (error.status === 401) forget();
        throw error;
      }
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** The access token, refreshed first when there is none in memory (after a reload). */
export async function accessToken() {
  if (access === null) await refresh();
  return access;
}

export async function login(email, password) {
  keep(await call("POST", "/api/auth/login", { body: { email, password } }));
}

export async function logout() {
  const token = sessionStorage.getItem(REFRESH_KEY);
  forget();
  if (token) {
    await call("POST", "/api/auth/logout", { body: { refresh_token: token } }).catch(() => {});
  }
}

async function call(method, path, { body, token, raw } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "Sin conexión con el servidor. Revisa tu red e inténtalo de nuevo.", "network");
  }
  if (response.ok) {
    if (raw) return response;
    return response.status === 204 ? null : response.json();
  }
  let detail = `Error ${response.status}`;
  let code;
  try {
    const payload = await response.json();
    if (typeof payload.detail === "string") detail = payload.detail;
    code = payload.code;
  } catch {
    // Not JSON (a proxy's page): the status says enough.
  }
  throw new ApiError(response.status, detail, code);
}

/** A public call: no token. `raw` gives the Response (for its Link header). */
export function open(method, path, options = {}) {
  return call(method, path, options);
}

/** A call as the signed-in user: one refresh and one retry when the token was refused. */
export async function authed(method, path, options = {}) {
  const token = await accessToken();
  try {
    return await call(method, path, { ...options, token });
  } catch (error) {
    if (error.status !== 401) throw error;
    access = null;
    return call(method, path, { ...options, token: await accessToken() });
  }
}

/** The next page's URL from a `Link: <…>; rel="next"` header, or null. */
export function nextLink(response) {
  const header = response.headers.get("Link") || "";
  const match = header.match(/<([^>]+)>\s*;\s*rel="next"/);
  return match ? match[1] : null;
}
