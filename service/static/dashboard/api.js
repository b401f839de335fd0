// The API, with the key kept in localStorage on every call: JSON requests
// (`api`), their errors as messages (`ApiError`), and Server-Sent Events read
// from a fetch() body, since EventSource cannot send an Authorization header.

import { setConnection, state } from "./page.js";

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    const details = (error.details || [])
      .filter((detail) => detail.msg && !(error.message || "").includes(detail.msg))
      .map((detail) => `${(detail.loc || []).join(".")}: ${detail.msg}`);
    super([error.message || `HTTP ${status}`, ...details].join("\n"));
    this.status = status;
  }
}

export function authHeaders(extra) {
  const headers = new Headers(extra || {});
  if (state.key) headers.set("Authorization", `Bearer ${state.key}`);
  return headers;
}

export async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: authHeaders(options.headers) });
  } catch (error) {
    setConnection("error", "Server unreachable");
    throw error;
  }
  const text = await response.text();
  let body = null;
  if ((response.headers.get("Content-Type") || "").includes("json") && text) {
    body = JSON.parse(text);
  }
  if (response.status === 401) setConnection("error", "Key rejected (401)");
  else setConnection("ok", "Connected");
  if (!response.ok) throw new ApiError(response.status, body);
  return { body, response };
}

// Server-Sent Events, parsed by hand: blocks split by a blank line, each
// line `field: value`; lines starting with ':' are comments (keep-alives).
export async function readEvents(body, dispatch) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = text;
        else if (field === "data") data.push(text);
      }
      if (data.length) dispatch(name, JSON.parse(data.join("\n")));
    }
  }
}
