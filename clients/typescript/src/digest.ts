// HTTP Digest authentication (RFC 7616) as an openapi-fetch middleware.
//
// openapi-fetch has no Digest support (and `fetch` itself none either), so this is the client's
// own extension: it answers a `401` carrying a `WWW-Authenticate: Digest ...` challenge by sending
// the same request again with an `Authorization: Digest ...` header, and keeps the challenge so
// that later requests authenticate at once with the same nonce and an increasing nonce count
// (`nc`). A challenge marked `stale=true` (the nonce expired), or any other new challenge, replaces
// the kept one and the request is retried once with it.
//
// Supported: algorithms MD5 and SHA-256 (SHA-256 preferred when both are offered), qop `auth`.
// Not supported (not offered by the server): `-sess` variants, `auth-int`, `userhash`.

import { createHash, randomBytes } from "node:crypto";
import type { Middleware } from "openapi-fetch";

export type DigestAlgorithm = "MD5" | "SHA-256";

/** One parsed `Digest` challenge. */
export interface DigestChallenge {
  realm: string;
  nonce: string;
  opaque?: string;
  algorithm: DigestAlgorithm;
  qop: "auth";
  stale: boolean;
}

export interface DigestOptions {
  username: string;
  password: string;
  /** The realm to expect; a challenge for another realm is not answered. */
  realm?: string;
  /** Called on every request that left with a Digest `Authorization` header (for tests and counts). */
  onAuthorized?: (info: { nc: number; retried: boolean; algorithm: DigestAlgorithm }) => void;
}

/** Splits a header value at top-level commas (commas inside quoted strings are kept). */
function splitTopLevel(value: string): string[] {
  const parts: string[] = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value.charAt(i);
    if (quoted && ch === "\\" && i + 1 < value.length) {
      current += ch + value.charAt(i + 1);
      i++;
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === "," && !quoted) {
      parts.push(current.trim());
      current = "";
      continue;
    }
    current += ch;
  }
  if (current.trim() !== "") parts.push(current.trim());
  return parts.filter((p) => p !== "");
}

function unquote(v: string): string {
  const t = v.trim();
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) {
    return t.slice(1, -1).replace(/\\(.)/g, "$1");
  }
  return t;
}

/**
 * Parses a `WWW-Authenticate` value (possibly several challenges joined with commas, as
 * `Headers.get` returns them) into its challenges: scheme (lower case) and parameters (names in
 * lower case).
 */
export function parseChallenges(header: string): { scheme: string; params: Map<string, string> }[] {
  const out: { scheme: string; params: Map<string, string> }[] = [];
  for (const item of splitTopLevel(header)) {
    // "Scheme", "Scheme name=value" or "name=value" (continuing the last challenge).
    const schemeStart = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+)(?:\s+(.*))?$/s.exec(item);
    let rest = item;
    if (schemeStart && !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+\s*=/.test(item)) {
      out.push({ scheme: (schemeStart[1] ?? "").toLowerCase(), params: new Map() });
      rest = schemeStart[2] ?? "";
    }
    const current = out[out.length - 1];
    if (current === undefined || rest.trim() === "") continue;
    const eq = rest.indexOf("=");
    if (eq < 0) continue; // token68 (not used by Digest)
    current.params.set(rest.slice(0, eq).trim().toLowerCase(), unquote(rest.slice(eq + 1)));
  }
  return out;
}

/** The best Digest challenge we can answer in a `WWW-Authenticate` value, if any. */
export function pickDigestChallenge(header: string | null, realm?: string): DigestChallenge | undefined {
  if (header === null) return undefined;
  const usable: DigestChallenge[] = [];
  for (const c of parseChallenges(header)) {
    if (c.scheme !== "digest") continue;
    const nonce = c.params.get("nonce");
    const challengeRealm = c.params.get("realm");
    if (nonce === undefined || challengeRealm === undefined) continue;
    if (realm !== undefined && challengeRealm !== realm) continue;
    const algorithmParam = (c.params.get("algorithm") ?? "MD5").toUpperCase();
    const algorithm: DigestAlgorithm | undefined =
      algorithmParam === "MD5" ? "MD5" : algorithmParam === "SHA-256" ? "SHA-256" : undefined;
    if (algorithm === undefined) continue;
    const qops = (c.params.get("qop") ?? "").split(",").map((q) => q.trim().toLowerCase());
    if (!qops.includes("auth")) continue;
    const opaque = c.params.get("opaque");
    usable.push({
      realm: challengeRealm,
      nonce,
      ...(opaque !== undefined ? { opaque } : {}),
      algorithm,
      qop: "auth",
      stale: (c.params.get("stale") ?? "").toLowerCase() === "true",
    });
  }
  return usable.find((c) => c.algorithm === "SHA-256") ?? usable[0];
}

function hash(algorithm: DigestAlgorithm, data: string): string {
  return createHash(algorithm === "MD5" ? "md5" : "sha256")
    .update(data, "utf8")
    .digest("hex");
}

function quote(v: string): string {
  return `"${v.replace(/(["\\])/g, "\\$1")}"`;
}

/** The `Authorization` value answering `challenge` for one request (RFC 7616 section 3.4). */
export function digestAuthorization(
  challenge: DigestChallenge,
  username: string,
  password: string,
  method: string,
  uri: string,
  nc: number,
  cnonce: string,
): string {
  const ha1 = hash(challenge.algorithm, `${username}:${challenge.realm}:${password}`);
  const ha2 = hash(challenge.algorithm, `${method}:${uri}`);
  const ncHex = nc.toString(16).padStart(8, "0");
  const response = hash(challenge.algorithm, `${ha1}:${challenge.nonce}:${ncHex}:${cnonce}:auth:${ha2}`);
  const parts = [
    `username=${quote(username)}`,
    `realm=${quote(challenge.realm)}`,
    `nonce=${quote(challenge.nonce)}`,
    `uri=${quote(uri)}`,
    `algorithm=${challenge.algorithm}`,
    `qop=auth`,
    `nc=${ncHex}`,
    `cnonce=${quote(cnonce)}`,
    `response=${quote(response)}`,
  ];
  if (challenge.opaque !== undefined) parts.push(`opaque=${quote(challenge.opaque)}`);
  return `Digest ${parts.join(", ")}`;
}

/**
 * An openapi-fetch middleware authenticating every request of a client with HTTP Digest.
 *
 * `onRequest` keeps a copy of the request (its body can be sent only once) and, when a challenge
 * is known, signs it with the next nonce count. `onResponse` answers a `401` with a Digest
 * challenge by signing the copy with the new challenge and fetching it again (once); the retried
 * response replaces the first one for openapi-fetch, which parses it as usual.
 */
export function digestAuth(options: DigestOptions): Middleware {
  let challenge: DigestChallenge | undefined;
  let nc = 0;
  const pending = new Map<string, { copy: Request; signed: boolean }>();

  const sign = (request: Request, retried: boolean): Request => {
    if (challenge === undefined) return request;
    nc += 1;
    const url = new URL(request.url);
    const authorization = digestAuthorization(
      challenge,
      options.username,
      options.password,
      request.method,
      url.pathname + url.search,
      nc,
      randomBytes(12).toString("hex"),
    );
    const headers = new Headers(request.headers);
    headers.set("Authorization", authorization);
    options.onAuthorized?.({ nc, retried, algorithm: challenge.algorithm });
    return new Request(request, { headers });
  };

  return {
    onRequest({ request, id }) {
      const signed = challenge !== undefined;
      const out = sign(request, false);
      pending.set(id, { copy: out.clone(), signed });
      return out;
    },
    async onResponse({ response, id, options: merged }) {
      const kept = pending.get(id);
      pending.delete(id);
      if (response.status !== 401 || kept === undefined) return undefined;
      const offered = pickDigestChallenge(response.headers.get("WWW-Authenticate"), options.realm);
      if (offered === undefined) return undefined;
      // Refused although signed, with the very nonce it was signed with and no `stale=true`: the
      // credentials are wrong, and a retry would be refused the same way. Any other challenge
      // (stale, or a new nonce) gets one retry; a retry is never retried.
      if (kept.signed && !offered.stale && challenge !== undefined && offered.nonce === challenge.nonce) {
        return undefined;
      }
      challenge = offered;
      nc = 0;
      await response.body?.cancel();
      return merged.fetch(sign(kept.copy, true));
    },
    onError({ id }) {
      pending.delete(id);
      return undefined;
    },
  };
}
