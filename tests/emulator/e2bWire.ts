/**
 * The E2B emulator's wire layer: routes, request validation with E2B's messages, the metadata
 * filter and cursor formats, response shapes, errors. Pure functions; the state machine is in
 * e2bEmulator.ts.
 */
import type * as http from "node:http";
import { randomInt } from "node:crypto";
import type { CallRecord, EmulatedSandbox, Endpoint, FaultSpec } from "./e2bTypes";

/** Templates known by default: the ones the tests, bench and demo use. */
export const DEFAULT_TEMPLATES: Readonly<Record<string, string>> = {
  base: "rki5dems9wqfm4r03t7g",
  python: "p7yqz3m1c8w0kx5hd2rn",
};

/** E2B's deprecated-but-still-sent client ID (consts.ClientID in e2b-dev/infra). */
export const CLIENT_ID = "6532622b";
/** Default lifetime when create/connect omit `timeout` (NewSandboxV2 / ConnectSandboxV2 default). */
export const DEFAULT_TIMEOUT_S = 300;
/** GET /v2/sandboxes: default and maximum page size (sandboxesDefaultLimit / sandboxesMaxLimit). */
export const LIST_DEFAULT_LIMIT = 100;
export const LIST_MAX_LIMIT = 100;
/** Largest request body accepted. */
export const MAX_BODY_BYTES = 10 * 1024 * 1024;
export const ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz1234567890";

export interface Route {
  endpoint: Endpoint;
  id?: string;
  /** the id as sent (decoded), before ShortID */
  rawId?: string;
}

export interface Outcome {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** answer only once this settles (e.g. a create whose sandbox lands later) */
  hold?: Promise<void>;
}

export interface QueuedFault {
  spec: FaultSpec;
  remaining: number;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errorCode?: string,
  ) {
    super(message);
  }
}

/** Default real ms spent in each transitional state (small, but a concurrent request can meet it). */
export const DEFAULT_TRANSITION_MS = { create: 2, kill: 1, pause: 3, resume: 2 } as const;

/** The real-time part of a request's work: the delay fault plus the transition, spent once. */
export class Hold {
  private spent = false;
  constructor(
    private readonly sleep: (ms: number) => Promise<void>,
    readonly delayMs: number,
  ) {}

  /** Spend the delay plus `transitionMs`, less `elapsedMs` already waited (once; later calls return at once). */
  async run(transitionMs = 0, elapsedMs = 0): Promise<void> {
    if (this.spent) return;
    this.spent = true;
    const ms = this.delayMs + transitionMs - elapsedMs;
    if (ms > 0) await this.sleep(ms);
  }
}

/** Sandbox IDs are "i" + 20 chars of [a-z0-9] (InstanceIDPrefix + id.Generate(), uniuri.UUIDLen). */
export function newSandboxID(): string {
  let s = "i";
  for (let i = 0; i < 20; i++) s += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  return s;
}

/**
 * Go's url.QueryUnescape: "+" is a space, "%XX" must be valid hex (else an error), bytes are
 * decoded as UTF-8. The server applies it to the metadata filter, then to each key and value.
 */
export function goQueryUnescape(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "%") {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new Error(`invalid URL escape "%${hex}"`);
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (c === "+") {
      bytes.push(0x20);
    } else {
      for (const b of Buffer.from(c!, "utf8")) bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/**
 * Parse the `metadata` query value as e2b-dev/infra's parseFilters does: unescape the whole
 * value, split on "&", each part must split on "=" into exactly two, unescape key and value.
 * (The SDK encodes each key/value, joins with URLSearchParams, and the HTTP layer encodes the
 * whole once more; URL parsing already removed that outermost layer.) Pairs are ANDed.
 */
export function parseMetadataFilter(raw: string): Record<string, string> {
  const query = goQueryUnescape(raw);
  const filters: Record<string, string> = {};
  for (const pair of query.split("&")) {
    const parts = pair.split("=");
    if (parts.length !== 2) throw new Error("invalid key value pair in query");
    filters[goQueryUnescape(parts[0]!)] = goQueryUnescape(parts[1]!);
  }
  return filters;
}

/** Cursor as E2B makes it: base64url (padded) of "<RFC3339 startedAt>__<sandboxID>[__asc]". */
export function encodeCursor(startedAt: number, id: string, asc: boolean): string {
  const raw = `${new Date(startedAt).toISOString()}__${id}${asc ? "__asc" : ""}`;
  return Buffer.from(raw, "utf8").toString("base64").replace(/\+/g, "-").replace(/\//g, "_");
}

export function decodeCursor(token: string): { time: number; id: string; asc: boolean } {
  const raw = Buffer.from(token.replace(/-/g, "+").replace(/_/g, "/"), "base64").toString("utf8");
  const parts = raw.split("__");
  if (parts.length !== 2 && !(parts.length === 3 && parts[2] === "asc"))
    throw new Error("invalid cursor format");
  const time = Date.parse(parts[0]!);
  if (Number.isNaN(time)) throw new Error("invalid timestamp format in cursor");
  return { time, id: parts[1]!, asc: parts.length === 3 };
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * E2B's OpenAPI request validator refuses a request before its handler runs: 400 with the first
 * line of kin-openapi's RequestError (U/error.go ErrorHandler).
 */
export const VALIDATION = "validation error: error in openapi3filter.RequestError: ";

export function bodyError(schema: string, at: string, what: string): HttpError {
  return new HttpError(
    400,
    `${VALIDATION}request body has an error: doesn't match schema #/components/schemas/${schema}: Error at "${at}": ${what}`,
  );
}

export function paramError(name: string, what: string): HttpError {
  return new HttpError(400, `${VALIDATION}parameter "${name}" in query has an error: ${what}`);
}

/** An optional string->string map field (metadata, envVars: SandboxMetadata, EnvVars). */
export function stringMap(
  body: Record<string, unknown>,
  field: string,
  schema: string,
): Record<string, string> {
  const v = body[field];
  if (v === undefined) return {};
  if (!isPlainObject(v)) throw bodyError(schema, `/${field}`, "value must be an object");
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== "string") throw bodyError(schema, `/${field}/${k}`, "value must be a string");
    out[k] = val;
  }
  return out;
}

/** An int32 seconds field (create/connect/setTimeout `timeout`) with the schema's minimum. */
export function secondsField(
  body: Record<string, unknown>,
  field: string,
  schema: string,
  minimum: number,
): number | undefined {
  const v = body[field];
  if (v === undefined) return undefined;
  if (typeof v !== "number") throw bodyError(schema, `/${field}`, "value must be an integer");
  if (!Number.isInteger(v)) throw bodyError(schema, `/${field}`, "value must be an integer");
  if (v > 2147483647 || v < -2147483648) throw bodyError(schema, `/${field}`, "number must be an int32");
  if (v < minimum) throw bodyError(schema, `/${field}`, `number must be at least ${minimum}`);
  return v;
}

/**
 * Path ids are `<id>` or `<id>-<clientID>` of [a-z0-9]; anything else is refused with 400
 * `Invalid sandbox ID`, not 404 (U/split.go ShortID, packages/shared/pkg/id ValidateSandboxID).
 */
export function validSandboxRef(raw: string): boolean {
  return /^[a-z0-9]+(-[a-z0-9]+)?$/.test(raw);
}

/** E2B's ShortID: IDs may come as "<sandboxID>-<clientID>"; only the part before "-" counts. */
export function shortID(id: string): string {
  return id.split("-")[0]!;
}

export function matchRoute(method: string, path: string): Route | undefined {
  const seg = path.split("/").filter((s) => s !== "");
  const withId = (endpoint: Endpoint, raw: string): Route => {
    let rawId = raw;
    try {
      rawId = decodeURIComponent(raw);
    } catch {
      // keep it as sent: it fails validation below
    }
    return { endpoint, id: shortID(rawId), rawId };
  };
  if (seg[0] === "v2" && seg[1] === "sandboxes") {
    if (seg.length === 2 && method === "POST") return { endpoint: "create" };
    if (seg.length === 2 && method === "GET") return { endpoint: "list" };
    if (seg.length === 4 && seg[3] === "connect" && method === "POST") return withId("connect", seg[2]!);
    return undefined;
  }
  if (seg[0] === "sandboxes" && seg.length >= 2) {
    if (seg.length === 2 && method === "DELETE") return withId("kill", seg[1]!);
    if (seg.length === 2 && method === "GET") return withId("getInfo", seg[1]!);
    if (seg.length === 3 && seg[2] === "timeout" && method === "POST") return withId("setTimeout", seg[1]!);
    if (seg.length === 3 && seg[2] === "pause" && method === "POST") return withId("pause", seg[1]!);
  }
  return undefined;
}

export function concurrencyMessage(max: number): string {
  // O/create_instance.go: the reservation is refused, without Retry-After
  return `you have reached the maximum number of concurrent E2B sandboxes (${max}). If you need more, please visit 'https://e2b.dev/docs/billing'`;
}

export function notFoundMsg(id: string): string {
  // sandboxNotFoundMsg in e2b-dev/infra
  return `Sandbox "${id}" doesn't exist or you don't have access to it`;
}

export function transitionalError(id: string, kind: "killing" | "pausing"): HttpError {
  // U/messages.go
  return new HttpError(409, `Sandbox "${id}" is being ${kind === "killing" ? "killed" : "paused"}`);
}

export const PLACEMENT_TIMEOUT_MESSAGE =
  "Failed to place sandbox: placement timed out, please try again later";

// ------------------------------------------------------------------ wire shapes

/** The identity fields every sandbox shape starts with. */
function identity(s: EmulatedSandbox) {
  return {
    sandboxID: s.sandboxID,
    templateID: s.templateID,
    clientID: s.clientID,
    ...(s.alias !== undefined ? { alias: s.alias } : {}),
  };
}

/** components["schemas"]["Sandbox"]: create and connect responses. */
export function sandboxBody(s: EmulatedSandbox) {
  return {
    ...identity(s),
    envdVersion: s.envdVersion,
    envdAccessToken: s.envdAccessToken, // v2 create is always secured
    domain: null,
    trafficAccessToken: null,
  };
}

/** components["schemas"]["ListedSandbox"]. */
export function listedBody(s: EmulatedSandbox) {
  return {
    ...identity(s),
    startedAt: new Date(s.startedAt).toISOString(),
    endAt: new Date(s.endAt).toISOString(),
    state: s.state,
    metadata: { ...s.metadata },
    cpuCount: s.cpuCount,
    memoryMB: s.memoryMB,
    diskSizeMB: s.diskSizeMB,
    envdVersion: s.envdVersion,
    volumeMounts: [],
  };
}

/** components["schemas"]["SandboxDetail"]. */
export function detailBody(s: EmulatedSandbox) {
  const { metadata, ...listed } = listedBody(s);
  return {
    ...listed,
    // H/sandbox_get.go leaves metadata out when empty (the SDK reads it as {})
    ...(Object.keys(metadata).length > 0 ? { metadata } : {}),
    envdAccessToken: s.envdAccessToken,
    domain: null,
    allowInternetAccess: null,
    lifecycle: { autoResume: s.autoResume, onTimeout: s.autoPause ? "pause" : "kill" },
  };
}

export const PLACEMENT_ERROR_CODES: Record<number, string> = {
  500: "sandbox_create_failed",
  503: "sandbox_capacity_unavailable",
  504: "sandbox_placement_timeout",
};

export function retryAfter(f: FaultSpec): Record<string, string> {
  return f.retryAfterS !== undefined ? { "Retry-After": String(Math.max(0, Math.floor(f.retryAfterS))) } : {};
}

export function defaultFaultMessage(status: number): string {
  switch (status) {
    case 400:
      return "Bad request";
    case 401:
      return "Invalid API key";
    case 404:
      return "Not found";
    case 409:
      return "Conflict";
    case 429:
      return "Rate limit exceeded";
    case 502:
      return "Bad gateway";
    case 503:
      return "Service unavailable";
    case 504:
      return "Gateway timeout";
    default:
      return "Internal server error";
  }
}

export function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers?: Record<string, string>,
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": String(Buffer.byteLength(text)),
  });
  res.end(text);
}

export function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        failed = true;
        chunks.length = 0;
        // keep draining so the socket stays usable, answer 413 at the end
      } else if (!failed) {
        chunks.push(c);
      }
    });
    req.on("end", () =>
      failed ? reject(new HttpError(413, "request body too large")) : resolve(Buffer.concat(chunks)),
    );
    req.on("error", reject);
  });
}

/** The list query, checked as E2B's validator and handler check it. */
export interface ListQuery {
  states: Array<"running" | "paused">;
  limit: number;
  asc: boolean;
  cursor?: { time: number; id: string };
  filter?: Record<string, string>;
  startedAfter?: number;
  template?: string;
}

/** state: form style, explode=false ("running,paused"); absent = both; other values -> 400. */
function parseStates(q: URLSearchParams): ListQuery["states"] {
  const raw = q.getAll("state");
  if (raw.length === 0) return ["running", "paused"];
  const states: ListQuery["states"] = [];
  for (const part of raw.flatMap((s) => s.split(","))) {
    if (part !== "running" && part !== "paused")
      throw paramError("state", 'value is not one of the allowed values ["running","paused"]');
    states.push(part);
  }
  return states;
}

/** spec paginationLimit: int32, minimum 1, maximum 100 — out of range is refused, not clipped. */
function parseLimit(q: URLSearchParams): number {
  const raw = q.get("limit");
  if (raw === null) return LIST_DEFAULT_LIMIT;
  if (!/^-?\d+$/.test(raw)) throw paramError("limit", `value ${raw}: an invalid integer: invalid syntax`);
  const limit = Number(raw);
  if (limit < 1) throw paramError("limit", "number must be at least 1");
  if (limit > LIST_MAX_LIMIT) throw paramError("limit", `number must be at most ${LIST_MAX_LIMIT}`);
  return limit;
}

/** A next token of the same order (U/pagination.go), else 400 `Invalid next token`. */
function parseCursor(q: URLSearchParams, asc: boolean): ListQuery["cursor"] {
  const token = q.get("nextToken");
  if (token === null || token === "") return undefined;
  try {
    const c = decodeCursor(token);
    if (c.asc !== asc) throw new Error("cursor was issued for a different sort order");
    return c;
  } catch {
    throw new HttpError(400, "Invalid next token");
  }
}

export function parseListQuery(q: URLSearchParams): ListQuery {
  const states = parseStates(q);
  const limit = parseLimit(q);
  const order = q.get("order") ?? "desc";
  if (order !== "asc" && order !== "desc")
    throw new HttpError(400, `Invalid order parameter: ${order}, must be 'asc' or 'desc'`);
  const asc = order === "asc";
  const query: ListQuery = { states, limit, asc };
  const cursor = parseCursor(q, asc);
  if (cursor) query.cursor = cursor;
  const rawMeta = q.get("metadata");
  if (rawMeta !== null) {
    try {
      query.filter = parseMetadataFilter(rawMeta);
    } catch {
      throw new HttpError(400, "Error parsing metadata");
    }
  }
  const rawAfter = q.get("startedAfter");
  if (rawAfter !== null && rawAfter !== "") {
    query.startedAfter = Date.parse(rawAfter);
    if (Number.isNaN(query.startedAfter)) throw new HttpError(400, `Invalid startedAfter: "${rawAfter}"`);
  }
  const template = q.get("template");
  if (template) query.template = template;
  return query;
}

/** Metadata pairs ANDed, exact, key must exist (U/sandboxes_list.go); `ignored` keys skipped (fault). */
export function listMatches(s: EmulatedSandbox, q: ListQuery, ignored: string[]): boolean {
  if (!q.states.includes(s.state)) return false;
  if (q.filter !== undefined) {
    for (const [k, v] of Object.entries(q.filter)) {
      if (!ignored.includes(k) && !(Object.hasOwn(s.metadata, k) && s.metadata[k] === v)) return false;
    }
  }
  if (q.startedAfter !== undefined && s.startedAt < q.startedAfter) return false;
  return q.template === undefined || s.templateID === q.template || s.alias === q.template;
}

/** SortPaginatedSandboxes: desc = startedAt DESC, sandboxID ASC; asc reverses the whole key. */
function descOrder(a: { startedAt: number; sandboxID: string }, b: { startedAt: number; sandboxID: string }) {
  if (a.startedAt !== b.startedAt) return b.startedAt - a.startedAt;
  return a.sandboxID < b.sandboxID ? -1 : a.sandboxID > b.sandboxID ? 1 : 0;
}

/** One page after the cursor, and the next token when more remain (absent on the last page). */
export function pageOf(
  rows: EmulatedSandbox[],
  q: ListQuery,
): { page: EmulatedSandbox[]; nextToken?: string } {
  const sorted = [...rows].sort((a, b) => (q.asc ? -descOrder(a, b) : descOrder(a, b)));
  const c = q.cursor;
  const after = c
    ? sorted.filter((s) => {
        const key = descOrder(s, { startedAt: c.time, sandboxID: c.id });
        return q.asc ? key < 0 : key > 0;
      })
    : sorted;
  const page = after.slice(0, q.limit);
  if (after.length <= q.limit) return { page };
  const last = page[page.length - 1]!;
  return { page, nextToken: encodeCursor(last.startedAt, last.sandboxID, q.asc) };
}

/** envd's port, as E2B's proxy reports it in its closed-port answer. */
export const ENVD_PORT = 49983;

/** A POST's JSON object body (other methods' bodies are recorded, not used); else 400. */
export function parseJsonBody(raw: Buffer, rec: CallRecord): Record<string, unknown> {
  if (raw.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString("utf8"));
  } catch (e) {
    throw new HttpError(400, `Error when parsing request: ${(e as Error).message}`);
  }
  rec.body = parsed;
  if (rec.method !== "POST") return {};
  if (!isPlainObject(parsed))
    throw new HttpError(400, "Error when parsing request: body must be a JSON object");
  return parsed;
}

/** E2B's error body for a refused request: {code, message[, error_code]}. */
export function errorOutcome(e: unknown): Outcome {
  if (!(e instanceof HttpError)) throw e;
  const errorCode = e.errorCode !== undefined ? { error_code: e.errorCode } : {};
  return { status: e.status, body: { code: e.status, message: e.message, ...errorCode } };
}

/** Writes one control-plane answer and records its status. */
export class Reply {
  constructor(
    private readonly res: http.ServerResponse,
    readonly rec: CallRecord,
  ) {}

  answer(o: Outcome): void {
    this.rec.status = o.status;
    if (this.res.destroyed) return;
    if (o.body === undefined) {
      this.res.writeHead(o.status, o.headers);
      this.res.end();
    } else {
      sendJson(this.res, o.status, o.body, o.headers);
    }
  }

  fail(status: number, message: string, headers?: Record<string, string>, errorCode?: string): void {
    const code = errorCode !== undefined ? { error_code: errorCode } : {};
    this.answer({ status, body: { code: status, message, ...code }, ...(headers ? { headers } : {}) });
  }

  error(e: unknown): void {
    this.answer(errorOutcome(e));
  }

  /** A fault's answer; create faults carry E2B's placement error_code by default. */
  faulted(f: FaultSpec, status: number): void {
    const placement = this.rec.endpoint === "create" ? PLACEMENT_ERROR_CODES[status] : undefined;
    this.fail(status, f.message ?? defaultFaultMessage(status), retryAfter(f), f.errorCode ?? placement);
  }
}
