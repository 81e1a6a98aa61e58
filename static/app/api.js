// Calls to the JSON API with the access token, one retry after a refresh on 401.

import { freshToken, refresh, sessionEnded } from "./auth.js";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || `The request failed (${status}).`);
    this.status = status;
    this.code = body?.code || "error";
    this.fields = body?.fields || {};
  }
}

export async function api(path, { method = "GET", body } = {}) {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const token = await freshToken();
    if (!token) {
      sessionEnded();
      throw new ApiError(401, { code: "not_authenticated", detail: "Please sign in." });
    }
    let response;
    try {
      response = await fetch(path, {
        method,
        credentials: "same-origin",
        headers: {
          Authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, { code: "network_error", detail: "The server cannot be reached. Check your connection." });
    }
    if (response.status === 401 && attempt === 0 && (await refresh())) {
      continue; // the token had just expired or rotated: try once more
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (response.status === 401) {
      sessionEnded();
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
  throw new ApiError(401, { code: "not_authenticated", detail: "Please sign in." });
}
