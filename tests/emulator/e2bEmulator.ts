/**
 * A local emulator of E2B's control-plane HTTP API, for tests and benchmarks.
 *
 * It speaks the wire protocol the real `e2b` JS SDK (2.51.x) uses, so tests drive it with the
 * real SDK over HTTP (point the SDK at it with `useEmulatorEnv`). Behaviour follows the SDK's
 * own dist and E2B's public server source (e2b-dev/infra, packages/api): paths, status codes,
 * JSON error bodies, pagination cursors, the triple-encoded metadata filter, TTL semantics.
 * Known deviations are listed at the bottom of this comment block.
 *
 * Endpoints (note the /v2 mix, exactly as the SDK calls them):
 *   POST   /v2/sandboxes                 create      201 Sandbox
 *   GET    /v2/sandboxes                 list        200 ListedSandbox[] (+ X-Next-Token)
 *   DELETE /sandboxes/{id}               kill        204
 *   GET    /sandboxes/{id}               getInfo     200 SandboxDetail
 *   POST   /sandboxes/{id}/timeout       setTimeout  204
 *   POST   /v2/sandboxes/{id}/connect    connect     200 (was running) / 201 (resumed)
 *   POST   /sandboxes/{id}/pause         pause       204 (409 when already paused)
 * Requests carrying an `E2b-Sandbox-Id` header are envd traffic and go to `envdHandler`.
 *
 * Extension points: `onLifecycle(listener)` (created/killed/paused/resumed/updated on the
 * emulator clock, as E2B's node publishes them), `mount(prefix, handler)` (extra control-plane
 * paths, e.g. "/events/webhooks", served after the API-key check), and a per-sandbox meter
 * (`runningMs`, `pausedMs`). Faults: `fault(endpoint, FaultSpec)` for the control plane,
 * `envdFault({kind: "proxy502"})` and `killEnvd(id)` for the data plane; a kill or pause that
 * 500s after E2B dropped the entry leaves an orphaned VM (`orphanedVms()`), reaped ~80 s later.
 *
 * Deliberate deviations from the real service:
 *  - Any template name is accepted (the real API 404s unknown templates); only the aliases in
 *    `templates` are resolved to a template ID.
 *  - The first list page has no time bound (the real API bounds it by time.Now(), which with a
 *    frozen, simulated clock would hide sandboxes started "now").
 *  - Paused sandboxes never expire (real snapshots are kept for a long time, not forever).
 *  - Rate limits are not enforced unless injected with `fault()`; concurrency is limited only
 *    with `maxConcurrentSandboxes`.
 *
 * Bind is loopback only; nothing here reaches the network.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes, randomInt } from "node:crypto";

export type Endpoint = "create" | "list" | "kill" | "getInfo" | "setTimeout" | "connect" | "pause";

export interface FaultSpec {
  /** answer this status with a JSON error body {code,message} */
  status?: number;
  /** with status 429: send an integer Retry-After header (the SDK retries only then) */
  retryAfterS?: number;
  /** how many upcoming calls of the endpoint get this fault (default 1; Infinity allowed) */
  times?: number;
  /** wait this long (real ms) before handling */
  delayMs?: number;
  /** PERFORM the operation, then destroy the socket without answering */
  dropResponse?: boolean;
  /** PERFORM the operation, then never answer (the client hits its requestTimeoutMs) */
  hang?: boolean;
  // Precedence: delayMs first; then hang, else dropResponse, else status. A fault with only
  // delayMs delays a normal answer. Faults are consumed after the API-key check passes.
  message?: string;
  /**
   * list: E2B applies only part of the metadata filter — these keys are ignored when matching
   * (a renamed filter parameter did exactly this once). The answer looks normal.
   */
  ignoreMetadataKeys?: string[];
  /** kill: answer 204 without killing (E2B says killed but did not; only a later list can tell) */
  fakeSuccess?: true;
  /**
   * kill/pause with `status` (default 500): the operation was applied anyway, as E2B's
   * RemoveSandbox drops the store entry even when the node call fails (O/delete_instance.go).
   * Later calls get 404 (or the previous snapshot, if it had one) and list omits it, while the
   * VM keeps running and billing until E2B's orphan reaper ends it (`orphanReapMs`, ~80 s; see
   * `orphanedVms()`), with a `killed` event, kill_reason "orphaned".
   */
  applied?: boolean;
  /**
   * create: the sandbox stays an invisible reservation (omitted from list; get/kill/pause/
   * connect/timeout answer 404; a kill changes nothing) until the emulator CLOCK passes
   * arrival + landAfterMs; it then appears with startedAt = that time. What the client sees is
   * chosen by the other fields: status (answered at once), dropResponse, hang; with none of them
   * the 201 is held until the sandbox lands.
   */
  landAfterMs?: number;
}

/** Faults of envd traffic (E2B's proxy in front of the in-sandbox daemon). */
export type EnvdFaultSpec = {
  /** E2B's proxy answers 502 {"code":502,"message":"The sandbox was not found"} though it lives */
  kind: "proxy502";
  /** how many upcoming envd requests get it (default 1; Infinity allowed) */
  times?: number;
};

/** A sandbox lifecycle transition, as E2B's node publishes it (packages/shared/pkg/events). */
export type LifecycleEvent = {
  type: "created" | "killed" | "paused" | "resumed" | "updated";
  sandboxId: string;
  templateId: string;
  metadata: Record<string, string>;
  /** emulator clock, ms */
  at: number;
  /** killed only: "request" (DELETE or killDirect), "timeout" (TTL), "orphaned" (reaper) */
  killReason?: "request" | "timeout" | "orphaned";
};

/** A control-plane path handled outside the emulator's routes (after the API-key check). */
export type MountHandler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  body: Buffer,
) => void | Promise<void>;

export interface EmulatedSandbox {
  sandboxID: string;
  templateID: string;
  clientID: string;
  alias?: string;
  metadata: Record<string, string>;
  envVars: Record<string, string>;
  envdAccessToken: string;
  envdVersion: string;
  state: "running" | "paused";
  /** ms since epoch on the emulator's clock; reset when a paused sandbox is resumed (as E2B does) */
  startedAt: number;
  /** running: when the TTL runs out; paused: when it was paused (E2B reports the snapshot time) */
  endAt: number;
  diedAt?: number;
  /** "reaped": an orphaned VM (see FaultSpec.applied) ended by E2B's orphan reaper */
  diedBy?: "killed" | "expired" | "reaped";
  cpuCount: number;
  memoryMB: number;
  diskSizeMB: number;
  /** create body `autoPause` (SDK `lifecycle.onTimeout: "pause"`): on expiry it pauses instead of dying */
  autoPause: boolean;
  /** emulator-clock ms its VM has run (billed compute), up to now; stops once the VM is gone */
  runningMs: number;
  /** emulator-clock ms it has spent paused (a snapshot, no VM), up to now */
  pausedMs: number;
  /** the VM still runs, but E2B's control plane has forgotten it (until the orphan reaper ends it) */
  orphaned?: boolean;
}

/** Internal record: the public shape plus the meter's running segments. */
interface Box extends EmulatedSandbox {
  /** emulator clock when the VM started running (undefined: no VM) */
  vmSince?: number;
  /** emulator clock when it became paused (undefined: not paused) */
  pausedSince?: number;
}

export interface CallRecord {
  endpoint: Endpoint | "other";
  method: string;
  path: string;
  /** raw query string without "?" (e.g. the still-encoded metadata filter), when present */
  query?: string;
  /** status answered; 0 while pending, and for calls never answered (dropResponse, hang) */
  status: number;
  /** emulator clock when the request arrived */
  at: number;
  sandboxID?: string;
  /** parsed JSON request body, when there was one */
  body?: unknown;
  /** the fault applied to this call, if any */
  fault?: FaultSpec;
}

export interface E2BEmulatorOptions {
  /** if set, require X-API-KEY to match */
  apiKey?: string;
  /** default Date.now; used for startedAt/endAt/expiry (benchmarks pass a simulated clock) */
  clock?: () => number;
  /** plan cap on a sandbox's lifetime, seconds; default 3600 (Hobby, "1 hours") */
  maxTimeoutS?: number;
  /** added real delay per endpoint; "*" applies where no endpoint-specific value is set */
  latencyMs?: Partial<Record<Endpoint | "*", number>>;
  /** handles envd traffic (requests with an `e2b-sandbox-id` header) for running sandboxes */
  envdHandler?: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /** envdVersion reported for new sandboxes; default "0.6.4", the highest the SDK gates features on */
  envdVersion?: string;
  /** template alias -> template ID; default { base: "rki5dems9wqfm4r03t7g" } */
  templates?: Record<string, string>;
  /** running-sandbox limit (Hobby 20, Pro 100); above it create answers 429. Default: unlimited */
  maxConcurrentSandboxes?: number;
  /** emulator-clock ms after which an orphaned VM is reaped (E2B: 60 s grace + 20 s sync); default 80 000 */
  orphanReapMs?: number;
}

/** E2B's deprecated-but-still-sent client ID (consts.ClientID in e2b-dev/infra). */
const CLIENT_ID = "6532622b";
/** Default lifetime when create/connect omit `timeout` (NewSandboxV2 / ConnectSandboxV2 default). */
const DEFAULT_TIMEOUT_S = 300;
/** GET /v2/sandboxes: default and maximum page size (sandboxesDefaultLimit / sandboxesMaxLimit). */
const LIST_DEFAULT_LIMIT = 100;
const LIST_MAX_LIMIT = 100;
/** Largest request body accepted. */
const MAX_BODY_BYTES = 10 * 1024 * 1024;
const ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz1234567890";

interface Route {
  endpoint: Endpoint;
  id?: string;
}

interface Outcome {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** answer only once this settles (e.g. a create whose sandbox lands later) */
  hold?: Promise<void>;
}

interface QueuedFault {
  spec: FaultSpec;
  remaining: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Sandbox IDs are "i" + 20 chars of [a-z0-9] (InstanceIDPrefix + id.Generate(), uniuri.UUIDLen). */
function newSandboxID(): string {
  let s = "i";
  for (let i = 0; i < 20; i++) s += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  return s;
}

/**
 * Go's url.QueryUnescape: "+" is a space, "%XX" must be valid hex (else an error), bytes are
 * decoded as UTF-8. The server applies it to the metadata filter, then to each key and value.
 */
function goQueryUnescape(s: string): string {
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
function encodeCursor(startedAt: number, id: string, asc: boolean): string {
  const raw = `${new Date(startedAt).toISOString()}__${id}${asc ? "__asc" : ""}`;
  return Buffer.from(raw, "utf8").toString("base64").replace(/\+/g, "-").replace(/\//g, "_");
}

function decodeCursor(token: string): { time: number; id: string; asc: boolean } {
  const raw = Buffer.from(token.replace(/-/g, "+").replace(/_/g, "/"), "base64").toString("utf8");
  const parts = raw.split("__");
  if (parts.length !== 2 && !(parts.length === 3 && parts[2] === "asc"))
    throw new Error("invalid cursor format");
  const time = Date.parse(parts[0]!);
  if (Number.isNaN(time)) throw new Error("invalid timestamp format in cursor");
  return { time, id: parts[1]!, asc: parts.length === 3 };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** An optional string->string map field (metadata, envVars); null counts as absent. */
function stringMap(body: Record<string, unknown>, field: string): Record<string, string> {
  const v = body[field];
  if (v === undefined || v === null) return {};
  if (!isPlainObject(v)) throw new HttpError(400, `Error when parsing request: ${field} must be an object`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== "string")
      throw new HttpError(400, `Error when parsing request: ${field}.${k} must be a string`);
    out[k] = val;
  }
  return out;
}

/** An optional int32 seconds field (create/connect/setTimeout `timeout`). */
function secondsField(body: Record<string, unknown>, field: string): number | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v > 2147483647 || v < -2147483648) {
    throw new HttpError(400, `Error when parsing request: ${field} must be an int32`);
  }
  return v;
}

/** E2B's ShortID: IDs may come as "<sandboxID>-<clientID>"; only the part before "-" counts. */
function shortID(id: string): string {
  return id.split("-")[0]!;
}

function matchRoute(method: string, path: string): Route | undefined {
  const seg = path.split("/").filter((s) => s !== "");
  let id: string | undefined;
  const decodeId = (s: string) => {
    try {
      return shortID(decodeURIComponent(s));
    } catch {
      return shortID(s);
    }
  };
  if (seg[0] === "v2" && seg[1] === "sandboxes") {
    if (seg.length === 2 && method === "POST") return { endpoint: "create" };
    if (seg.length === 2 && method === "GET") return { endpoint: "list" };
    if (seg.length === 4 && seg[3] === "connect" && method === "POST") {
      id = decodeId(seg[2]!);
      return { endpoint: "connect", id };
    }
    return undefined;
  }
  if (seg[0] === "sandboxes" && seg.length >= 2) {
    id = decodeId(seg[1]!);
    if (seg.length === 2 && method === "DELETE") return { endpoint: "kill", id };
    if (seg.length === 2 && method === "GET") return { endpoint: "getInfo", id };
    if (seg.length === 3 && seg[2] === "timeout" && method === "POST") return { endpoint: "setTimeout", id };
    if (seg.length === 3 && seg[2] === "pause" && method === "POST") return { endpoint: "pause", id };
  }
  return undefined;
}

function notFoundMsg(id: string): string {
  // sandboxNotFoundMsg in e2b-dev/infra
  return `Sandbox "${id}" doesn't exist or you don't have access to it`;
}

export class E2BEmulator {
  readonly url: string;
  readonly calls: CallRecord[] = [];

  private readonly server: http.Server;
  private readonly opts: E2BEmulatorOptions;
  private clock: () => number;
  private readonly maxTimeoutS: number;
  private readonly envdVersion: string;
  private readonly templates: Record<string, string>;
  private latency: Partial<Record<Endpoint | "*", number>>;
  /** every sandbox ever made, in creation order (dead ones stay as history) */
  private readonly sandboxes = new Map<string, Box>();
  /** the subset still alive (running or paused) */
  private readonly aliveSet = new Map<string, Box>();
  /** VMs E2B's control plane no longer knows, billing until the orphan reaper ends them */
  private readonly orphans = new Map<string, { box: Box; reapAt: number }>();
  /** creates still in flight (reservations): invisible until the clock passes landAt */
  private readonly pending = new Map<string, { box: Box; landAt: number; timeoutS: number }>();
  private readonly listeners = new Set<(e: LifecycleEvent) => void>();
  private readonly mounts: Array<{ prefix: string; handler: MountHandler }> = [];
  private envdFaults: Array<{ spec: EnvdFaultSpec; remaining: number }> = [];
  /** sandboxes whose envd the user killed (every envd call fails; the control plane says running) */
  private readonly envdDead = new Set<string>();
  private readonly orphanReapMs: number;
  private faults = new Map<Endpoint, QueuedFault[]>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  private constructor(server: http.Server, url: string, opts: E2BEmulatorOptions) {
    this.server = server;
    this.url = url;
    this.opts = opts;
    this.clock = opts.clock ?? Date.now;
    this.maxTimeoutS = opts.maxTimeoutS ?? 3600;
    this.envdVersion = opts.envdVersion ?? "0.6.4";
    this.templates = opts.templates ?? { base: "rki5dems9wqfm4r03t7g" };
    this.latency = { ...(opts.latencyMs ?? {}) };
    this.orphanReapMs = opts.orphanReapMs ?? 80_000;
  }

  /** Listen on 127.0.0.1, random port (loopback only). */
  static async start(opts: E2BEmulatorOptions = {}): Promise<E2BEmulator> {
    const server = http.createServer();
    // The SDK's undici pool keeps connections alive; keep ours open longer than its reuse window
    // so a reused socket is not closed under a request. Hangs must really hang: no requestTimeout.
    server.keepAliveTimeout = 30_000;
    server.headersTimeout = 35_000;
    server.requestTimeout = 0;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const { port } = server.address() as AddressInfo;
    const emu = new E2BEmulator(server, `http://127.0.0.1:${port}`, opts);
    server.on("request", (req, res) => {
      emu.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent && !res.destroyed) {
          sendJson(res, 500, { code: 500, message: `emulator error: ${String(err)}` });
        }
      });
    });
    return emu;
  }

  /** Close the server and every socket, including hung requests. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  // ---------------------------------------------------------------- inspection

  /** Running and paused sandboxes (expiry applied first). Returns copies. */
  alive(): EmulatedSandbox[] {
    this.sweep();
    return [...this.aliveSet.values()].map((s) => this.copy(s));
  }

  /** Every sandbox ever made, dead ones included. Returns copies. */
  all(): EmulatedSandbox[] {
    this.sweep();
    return [...this.sandboxes.values()].map((s) => this.copy(s));
  }

  /** A sandbox, alive or dead (copy), or undefined if never seen. */
  get(id: string): EmulatedSandbox | undefined {
    this.sweep();
    const s = this.sandboxes.get(id) ?? this.pending.get(id)?.box;
    return s && this.copy(s);
  }

  isAlive(id: string): boolean {
    this.sweep();
    return this.aliveSet.has(id);
  }

  /**
   * VMs still running (and billing) that E2B's control plane has already forgotten: a kill or
   * pause that answered 500 after dropping the store entry (FaultSpec.applied). They end when
   * the orphan reaper runs. Copies; `orphaned: true`.
   */
  orphanedVms(): EmulatedSandbox[] {
    this.sweep();
    return [...this.orphans.values()].map((o) => this.copy(o.box));
  }

  /** Creates still in flight (reservations), invisible to the API until they land. Copies. */
  pendingCreates(): EmulatedSandbox[] {
    this.sweep();
    return [...this.pending.values()].map((p) => this.copy(p.box));
  }

  /** Whether envd traffic to this sandbox reaches a live envd: running, and envd not killed. */
  envdReachable(id: string): boolean {
    this.sweep();
    const s = this.aliveSet.get(id);
    return s !== undefined && s.state === "running" && !this.envdDead.has(id);
  }

  /** Run expiry, landing reservations and the orphan reaper up to the current clock. */
  tick(): void {
    this.sweep();
  }

  // ---------------------------------------------------------------- extension points

  /**
   * Listen to lifecycle transitions (created, killed, paused, resumed, updated), emitted as
   * they happen on the emulator clock (expiry, landing and reaping are applied lazily: on the
   * next request, inspection or `tick()`, with `at` = when they happened). Returns unsubscribe.
   */
  onLifecycle(listener: (e: LifecycleEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Serve control-plane requests whose path starts with `prefix` (e.g. "/events/webhooks") with
   * `handler`, after the API-key check. The call is recorded with endpoint "other".
   */
  mount(prefix: string, handler: MountHandler): void {
    this.mounts.push({ prefix, handler });
  }

  // ---------------------------------------------------------------- direct manipulation

  /** Add a sandbox without HTTP. `startedAt` defaults to now, `timeoutMs` to 300 s. */
  seed(s: {
    templateID?: string;
    metadata?: Record<string, string>;
    timeoutMs?: number;
    startedAt?: number;
    state?: "running" | "paused";
    envVars?: Record<string, string>;
    autoPause?: boolean;
  }): EmulatedSandbox {
    const now = this.clock();
    const startedAt = s.startedAt ?? now;
    const state = s.state ?? "running";
    const sbx = this.makeSandbox(s.templateID ?? "base", {
      metadata: s.metadata ?? {},
      envVars: s.envVars ?? {},
      startedAt,
      endAt: state === "paused" ? now : startedAt + (s.timeoutMs ?? DEFAULT_TIMEOUT_S * 1000),
      state,
      autoPause: s.autoPause ?? false,
    });
    this.publish(sbx, now);
    return this.copy(sbx);
  }

  /** As if killed outside our system (e.g. the E2B dashboard). No-op if not alive. */
  killDirect(id: string): void {
    this.sweep();
    const s = this.aliveSet.get(id);
    if (s) this.die(s, "killed", this.clock());
  }

  /**
   * As if the user killed envd inside the sandbox as root: every envd call to it fails as E2B's
   * proxy answers for a closed port, while the control plane still says running.
   */
  killEnvd(sandboxId: string): void {
    this.envdDead.add(sandboxId);
  }

  /** Queue a fault for upcoming envd requests (any sandbox). */
  envdFault(spec: EnvdFaultSpec): void {
    if (spec.times !== undefined && !(spec.times > 0)) return;
    this.envdFaults.push({ spec: { ...spec }, remaining: spec.times ?? 1 });
  }

  /** As if its TTL passed now: dies (or pauses, if created with autoPause). No-op if not running. */
  expireDirect(id: string): void {
    this.sweep();
    const s = this.aliveSet.get(id);
    if (!s || s.state !== "running") return;
    s.endAt = this.clock();
    this.expire(s);
  }

  // ---------------------------------------------------------------- faults and knobs

  /** Queue a fault for upcoming calls of `endpoint`; several queued faults apply in order. */
  fault(endpoint: Endpoint, spec: FaultSpec): void {
    if (spec.times !== undefined && !(spec.times > 0)) return; // times: 0 means no call gets it
    const q = this.faults.get(endpoint) ?? [];
    q.push({ spec: { ...spec }, remaining: spec.times ?? 1 });
    this.faults.set(endpoint, q);
  }

  clearFaults(): void {
    this.faults = new Map();
    this.envdFaults = [];
  }

  setLatency(endpoint: Endpoint | "*", ms: number): void {
    this.latency[endpoint] = ms;
  }

  callCount(endpoint?: Endpoint): number {
    if (endpoint === undefined) return this.calls.length;
    let n = 0;
    for (const c of this.calls) if (c.endpoint === endpoint) n++;
    return n;
  }

  /** Forget sandboxes, faults, calls and latency (the clock is kept). */
  reset(): void {
    this.sandboxes.clear();
    this.aliveSet.clear();
    this.orphans.clear();
    this.pending.clear();
    this.envdDead.clear();
    this.envdFaults = [];
    this.faults = new Map();
    this.calls.length = 0;
    this.latency = {};
  }

  setClock(clock: () => number): void {
    this.clock = clock;
  }

  // ---------------------------------------------------------------- state

  /** A new sandbox record, not yet live: `publish` makes it visible. */
  private makeSandbox(
    template: string,
    f: Pick<EmulatedSandbox, "metadata" | "envVars" | "startedAt" | "endAt" | "state" | "autoPause">,
  ): Box {
    // Template references may carry a ":tag"; aliases resolve to the template ID, as E2B reports.
    const name = template.split(":")[0]!.trim().toLowerCase();
    const resolved = this.templates[name];
    return {
      sandboxID: newSandboxID(),
      templateID: resolved ?? name,
      clientID: CLIENT_ID,
      ...(resolved !== undefined ? { alias: name } : {}),
      metadata: { ...f.metadata },
      envVars: { ...f.envVars },
      envdAccessToken: randomBytes(24).toString("hex"),
      envdVersion: this.envdVersion,
      state: f.state,
      startedAt: f.startedAt,
      endAt: f.endAt,
      cpuCount: 2,
      memoryMB: 512,
      diskSizeMB: 10240,
      autoPause: f.autoPause,
      runningMs: 0,
      pausedMs: 0,
    };
  }

  /** The sandbox becomes live at `at`: listed, metered, and announced (`created`). */
  private publish(s: Box, at: number): void {
    this.sandboxes.set(s.sandboxID, s);
    this.aliveSet.set(s.sandboxID, s);
    if (s.state === "running") s.vmSince = at;
    else s.pausedSince = at;
    this.emit("created", s, at);
  }

  /**
   * Lazy time: every request and inspection first lands due reservations, retires running
   * sandboxes past endAt (E2B's evictor polls every 50 ms), and reaps due orphans.
   */
  private sweep(): void {
    const now = this.clock();
    for (const [id, p] of this.pending) {
      if (now < p.landAt) continue;
      this.pending.delete(id);
      p.box.startedAt = p.landAt;
      p.box.endAt = p.landAt + p.timeoutS * 1000;
      this.publish(p.box, p.landAt);
    }
    for (const s of this.aliveSet.values()) {
      if (s.state === "running" && now >= s.endAt) this.expire(s);
    }
    for (const [id, o] of this.orphans) {
      if (now < o.reapAt) continue;
      this.orphans.delete(id);
      o.box.orphaned = false;
      this.stopVm(o.box, o.reapAt);
      if (!this.aliveSet.has(id)) {
        o.box.diedAt = o.reapAt;
        o.box.diedBy = "reaped";
      }
      this.emit("killed", o.box, o.reapAt, "orphaned");
    }
  }

  private expire(s: Box): void {
    if (s.autoPause) {
      // endAt stays: the snapshot time is when the TTL ran out
      this.pauseNow(s, s.endAt);
    } else {
      this.die(s, "expired", s.endAt);
    }
  }

  private pauseNow(s: Box, at: number): void {
    s.state = "paused";
    s.endAt = at; // listed paused sandboxes report the snapshot time as endAt
    this.stopVm(s, at);
    s.pausedSince = at;
    this.emit("paused", s, at);
  }

  private resumeNow(s: Box, at: number, timeoutS: number): void {
    this.stopPaused(s, at);
    s.state = "running";
    s.startedAt = at;
    s.endAt = at + timeoutS * 1000;
    s.vmSince = at;
    this.emit("resumed", s, at);
  }

  private die(s: Box, by: "killed" | "expired", at: number): void {
    s.diedAt = at;
    s.diedBy = by;
    this.stopVm(s, at);
    this.stopPaused(s, at);
    this.aliveSet.delete(s.sandboxID);
    this.envdDead.delete(s.sandboxID);
    this.emit("killed", s, at, by === "expired" ? "timeout" : "request");
  }

  /**
   * A kill or pause whose node call failed after E2B dropped the store entry: the control plane
   * forgets the sandbox (404; a paused one keeps nothing either), the VM runs on as an orphan.
   */
  private orphan(s: Box, at: number): void {
    this.aliveSet.delete(s.sandboxID);
    if (s.state === "paused") {
      // nothing running to orphan: the snapshot is gone, the sandbox with it
      s.diedAt = at;
      s.diedBy = "killed";
      this.stopPaused(s, at);
      this.emit("killed", s, at, "request");
      return;
    }
    // Gone as far as the API can tell, but not dead: diedAt stays unset and the meter keeps
    // running until the reaper ends the VM.
    s.orphaned = true;
    this.orphans.set(s.sandboxID, { box: s, reapAt: at + this.orphanReapMs });
  }

  private stopVm(s: Box, at: number): void {
    if (s.vmSince === undefined) return;
    s.runningMs += Math.max(0, at - s.vmSince);
    s.vmSince = undefined;
  }

  private stopPaused(s: Box, at: number): void {
    if (s.pausedSince === undefined) return;
    s.pausedMs += Math.max(0, at - s.pausedSince);
    s.pausedSince = undefined;
  }

  private emit(type: LifecycleEvent["type"], s: Box, at: number, killReason?: LifecycleEvent["killReason"]) {
    if (this.listeners.size === 0) return;
    const e: LifecycleEvent = {
      type,
      sandboxId: s.sandboxID,
      templateId: s.templateID,
      metadata: { ...s.metadata },
      at,
      ...(killReason !== undefined ? { killReason } : {}),
    };
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch (err) {
        // a listener's bug must not become an emulator 500; surface it as an uncaught error
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  /** The public view: a copy with the meter brought up to now. */
  private copy(s: Box): EmulatedSandbox {
    const now = this.clock();
    const { vmSince, pausedSince, ...pub } = s;
    return {
      ...pub,
      metadata: { ...s.metadata },
      envVars: { ...s.envVars },
      runningMs: s.runningMs + (vmSince !== undefined ? Math.max(0, now - vmSince) : 0),
      pausedMs: s.pausedMs + (pausedSince !== undefined ? Math.max(0, now - pausedSince) : 0),
    };
  }

  private capMessage(): string {
    // e2b-dev/infra: fmt.Sprintf("Timeout cannot be greater than %d hours", MaxLengthHours)
    const h = this.maxTimeoutS / 3600;
    return `Timeout cannot be greater than ${Number.isInteger(h) ? h : h.toFixed(2)} hours`;
  }

  // ---------------------------------------------------------------- HTTP

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    const url = new URL(req.url ?? "/", "http://emulator.local");
    const headerId = req.headers["e2b-sandbox-id"];

    if (headerId !== undefined) {
      // envd traffic: the SDK sends it to E2B_SANDBOX_URL with the sandbox in a header.
      const id = Array.isArray(headerId) ? (headerId[0] ?? "") : headerId;
      const rec: CallRecord = {
        endpoint: "other",
        method,
        path: url.pathname,
        status: 0,
        at: this.clock(),
        sandboxID: id,
      };
      this.calls.push(rec);
      res.on("finish", () => (rec.status = res.statusCode));
      this.sweep();
      const s = this.aliveSet.get(id);
      // E2B's proxy answers 502 JSON for unknown, dead (and not-resumed paused) sandboxes, and,
      // under the proxy502 fault, for a live one too.
      if (!this.opts.envdHandler || !s || s.state !== "running" || this.takeEnvdFault()) {
        sendJson(res, 502, { code: 502, message: "The sandbox was not found" });
        return;
      }
      if (this.envdDead.has(id)) {
        // The proxy reaches the VM but nothing listens on envd's port (its closed-port answer).
        sendJson(res, 502, {
          code: 502,
          message: "The sandbox is running but port is not open",
          sandboxId: id,
          port: 49983,
        });
        return;
      }
      this.opts.envdHandler(req, res);
      return;
    }

    const route = matchRoute(method, url.pathname);
    const rec: CallRecord = {
      endpoint: route?.endpoint ?? "other",
      method,
      path: url.pathname,
      ...(url.search !== "" ? { query: url.search.slice(1) } : {}),
      status: 0,
      at: this.clock(),
      ...(route?.id !== undefined ? { sandboxID: route.id } : {}),
    };
    this.calls.push(rec);
    const answer = (o: Outcome) => {
      rec.status = o.status;
      if (res.destroyed) return;
      if (o.body === undefined) {
        res.writeHead(o.status, o.headers);
        res.end();
      } else {
        sendJson(res, o.status, o.body, o.headers);
      }
    };
    const fail = (status: number, message: string, headers?: Record<string, string>) =>
      answer({ status, body: { code: status, message }, headers });

    // Read the whole body first so keep-alive sockets stay in a clean state whatever we answer.
    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch (e) {
      return fail(
        e instanceof HttpError ? e.status : 400,
        `Error when reading request: ${String((e as Error).message)}`,
      );
    }

    const mounted = route ? undefined : this.mounts.find((m) => url.pathname.startsWith(m.prefix));
    if (!route && !mounted) return fail(404, `Not found: ${method} ${url.pathname}`);

    const latency = (route && this.latency[route.endpoint]) ?? this.latency["*"] ?? 0;
    if (latency > 0) await this.sleep(latency);

    // Auth runs before the handler, as E2B's middleware does.
    if (this.opts.apiKey !== undefined) {
      const key = req.headers["x-api-key"];
      if (key === undefined || key === "")
        return fail(401, "Invalid API key, please check the X-API-KEY header");
      if (key !== this.opts.apiKey) return fail(401, "Invalid API key");
    }

    if (!route) {
      res.on("finish", () => (rec.status = res.statusCode));
      this.sweep();
      await mounted!.handler(req, res, raw);
      return;
    }

    const fault = this.takeFault(route.endpoint);
    if (fault) rec.fault = fault;
    if (fault?.delayMs) await this.sleep(fault.delayMs);

    let body: Record<string, unknown> = {};
    if (raw.length > 0) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw.toString("utf8"));
      } catch (e) {
        return fail(400, `Error when parsing request: ${(e as Error).message}`);
      }
      rec.body = parsed;
      if (method === "POST") {
        if (!isPlainObject(parsed))
          return fail(400, "Error when parsing request: body must be a JSON object");
        body = parsed;
      }
    }

    // A status fault answers instead of doing the work, unless the work is applied anyway
    // (kill/pause `applied`, a create that lands later) or the status is the lost answer's.
    const worksAnyway = fault?.applied === true || fault?.landAfterMs !== undefined;
    const faultStatus = fault?.status ?? (fault?.applied ? 500 : undefined);
    if (faultStatus !== undefined && !fault!.dropResponse && !fault!.hang && !worksAnyway) {
      return fail(faultStatus, fault!.message ?? defaultFaultMessage(faultStatus), retryAfter(fault!));
    }

    let outcome: Outcome;
    try {
      this.sweep();
      outcome = this.perform(route, url, body, fault);
    } catch (e) {
      if (e instanceof HttpError)
        outcome = { status: e.status, body: { code: e.status, message: e.message } };
      else throw e;
    }

    if (fault?.hang) return; // done the work, never answer; stop() destroys the socket
    if (fault?.dropResponse) {
      req.socket.destroy(); // done the work, the answer is lost
      return;
    }
    if (faultStatus !== undefined && outcome.status < 400) {
      return fail(faultStatus, fault!.message ?? defaultFaultMessage(faultStatus), retryAfter(fault!));
    }
    if (outcome.hold) await outcome.hold;
    answer(outcome);
  }

  private takeEnvdFault(): EnvdFaultSpec | undefined {
    const head = this.envdFaults[0];
    if (!head) return undefined;
    head.remaining--;
    if (head.remaining <= 0) this.envdFaults.shift();
    return head.spec;
  }

  /** Resolves once `done()` holds, checking every few real ms (the clock may be simulated). */
  private until(done: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        this.sweep();
        if (done() || this.stopped) return resolve();
        const t = setTimeout(() => {
          this.timers.delete(t);
          check();
        }, 5);
        this.timers.add(t);
      };
      check();
    });
  }

  private takeFault(endpoint: Endpoint): FaultSpec | undefined {
    const q = this.faults.get(endpoint);
    if (!q || q.length === 0) return undefined;
    const head = q[0];
    head!.remaining--;
    if (head!.remaining <= 0) q.shift();
    return head!.spec;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }

  private perform(route: Route, url: URL, body: Record<string, unknown>, fault?: FaultSpec): Outcome {
    switch (route.endpoint) {
      case "create":
        return this.doCreate(body, fault?.landAfterMs);
      case "list":
        return this.doList(url.searchParams, fault?.ignoreMetadataKeys);
      case "kill":
        return this.doKill(route.id!, fault);
      case "getInfo":
        return this.doGetInfo(route.id!);
      case "setTimeout":
        return this.doSetTimeout(route.id!, body);
      case "connect":
        return this.doConnect(route.id!, body);
      case "pause":
        return this.doPause(route.id!, fault?.applied === true);
    }
  }

  private doCreate(body: Record<string, unknown>, landAfterMs?: number): Outcome {
    const templateID = body.templateID;
    if (typeof templateID !== "string" || templateID.trim() === "") {
      throw new HttpError(400, "Error when parsing request: templateID is required");
    }
    const metadata = stringMap(body, "metadata");
    const envVars = stringMap(body, "envVars");
    const timeoutS = secondsField(body, "timeout");
    // Only an explicit timeout is checked against the plan cap; absent means 300 s.
    if (timeoutS !== undefined && timeoutS > this.maxTimeoutS) throw new HttpError(400, this.capMessage());
    const max = this.opts.maxConcurrentSandboxes;
    if (max !== undefined) {
      let running = 0;
      for (const s of this.aliveSet.values()) if (s.state === "running") running++;
      if (running >= max) {
        throw new HttpError(
          429,
          `You have reached the maximum number of concurrent E2B sandboxes (${max}). If you need more, please contact us at 'https://e2b.dev/docs/getting-help'`,
        );
      }
    }
    const now = this.clock();
    const lifeS = Math.max(0, timeoutS ?? DEFAULT_TIMEOUT_S);
    const sbx = this.makeSandbox(templateID, {
      metadata,
      envVars,
      startedAt: now,
      endAt: now + lifeS * 1000,
      state: "running",
      autoPause: body.autoPause === true,
    });
    if (landAfterMs !== undefined && landAfterMs > 0) {
      this.pending.set(sbx.sandboxID, { box: sbx, landAt: now + landAfterMs, timeoutS: lifeS });
      const hold = this.until(() => !this.pending.has(sbx.sandboxID));
      return { status: 201, body: sandboxBody(sbx), hold };
    }
    this.publish(sbx, now);
    return { status: 201, body: sandboxBody(sbx) };
  }

  private doList(q: URLSearchParams, ignoreMetadataKeys: string[] = []): Outcome {
    // state: form style, explode=false ("running,paused"); absent = both.
    let states: Array<"running" | "paused"> = ["running", "paused"];
    const rawStates = q.getAll("state");
    if (rawStates.length > 0) {
      states = [];
      for (const part of rawStates.flatMap((s) => s.split(","))) {
        if (part !== "running" && part !== "paused") throw new HttpError(400, `Invalid state: "${part}"`);
        states.push(part);
      }
    }

    let limit = LIST_DEFAULT_LIMIT;
    const rawLimit = q.get("limit");
    if (rawLimit !== null) {
      if (!/^-?\d+$/.test(rawLimit)) throw new HttpError(400, `Invalid limit: "${rawLimit}"`);
      limit = Number(rawLimit);
      if (limit < 1) throw new HttpError(400, "limit must be at least 1"); // spec minimum: 1
      limit = Math.min(limit, LIST_MAX_LIMIT); // over the max is clipped, not refused
    }

    const order = q.get("order") ?? "desc";
    if (order !== "asc" && order !== "desc") throw new HttpError(400, `Invalid order: "${order}"`);
    const asc = order === "asc";

    let cursor: { time: number; id: string } | undefined;
    const token = q.get("nextToken");
    if (token !== null && token !== "") {
      try {
        const c = decodeCursor(token);
        if (c.asc !== asc) throw new Error("cursor was issued for a different sort order");
        cursor = c;
      } catch {
        throw new HttpError(400, "Invalid next token");
      }
    }

    let filter: Record<string, string> | undefined;
    const rawMeta = q.get("metadata");
    if (rawMeta !== null) {
      try {
        filter = parseMetadataFilter(rawMeta);
      } catch {
        throw new HttpError(400, "Error parsing metadata");
      }
    }

    let startedAfter: number | undefined;
    const rawAfter = q.get("startedAfter");
    if (rawAfter !== null && rawAfter !== "") {
      startedAfter = Date.parse(rawAfter);
      if (Number.isNaN(startedAfter)) throw new HttpError(400, `Invalid startedAfter: "${rawAfter}"`);
    }
    const template = q.get("template") || undefined;

    const matches = (s: EmulatedSandbox) =>
      states.includes(s.state) &&
      (filter === undefined ||
        Object.entries(filter).every(
          ([k, v]) => ignoreMetadataKeys.includes(k) || (Object.hasOwn(s.metadata, k) && s.metadata[k] === v),
        )) &&
      (startedAfter === undefined || s.startedAt >= startedAfter) &&
      (template === undefined || s.templateID === template || s.alias === template);

    const selected = [...this.aliveSet.values()].filter(matches);
    const headers: Record<string, string> = {};
    if (states.includes("running")) {
      headers["X-Total-Running"] = String(selected.filter((s) => s.state === "running").length);
    }

    // Newest first (or oldest first), ties broken by sandbox ID ascending, as E2B sorts.
    selected.sort((a, b) =>
      a.startedAt !== b.startedAt
        ? asc
          ? a.startedAt - b.startedAt
          : b.startedAt - a.startedAt
        : a.sandboxID < b.sandboxID
          ? -1
          : a.sandboxID > b.sandboxID
            ? 1
            : 0,
    );
    const after = cursor
      ? selected.filter(
          (s) =>
            (asc ? s.startedAt > cursor.time : s.startedAt < cursor.time) ||
            (s.startedAt === cursor.time && s.sandboxID > cursor.id),
        )
      : selected;

    const page = after.slice(0, limit);
    // X-Next-Token only when more remain; absent on the last page (the SDK stops on absence).
    if (after.length > limit) {
      const last = page[page.length - 1];
      headers["X-Next-Token"] = encodeCursor(last!.startedAt, last!.sandboxID, asc);
    }
    return { status: 200, body: page.map(listedBody), headers };
  }

  private doKill(id: string, fault?: FaultSpec): Outcome {
    const s = this.aliveSet.get(id);
    // Running or paused (kill also deletes a paused sandbox's snapshot) -> 204; else JSON 404,
    // which the SDK's kill turns into `false`.
    if (!s) throw new HttpError(404, notFoundMsg(id));
    if (fault?.fakeSuccess) return { status: 204 };
    if (fault?.applied) this.orphan(s, this.clock());
    else this.die(s, "killed", this.clock());
    return { status: 204 };
  }

  private doGetInfo(id: string): Outcome {
    const s = this.aliveSet.get(id);
    if (!s) throw new HttpError(404, notFoundMsg(id));
    return { status: 200, body: detailBody(s) };
  }

  private doSetTimeout(id: string, body: Record<string, unknown>): Outcome {
    const timeoutS = secondsField(body, "timeout");
    if (timeoutS === undefined) throw new HttpError(400, "Error when parsing request: timeout is required");
    const s = this.aliveSet.get(id);
    // Only running sandboxes have a TTL to set; a paused one is not in the orchestrator -> 404.
    if (!s || s.state !== "running") throw new HttpError(404, notFoundMsg(id));
    const now = this.clock();
    // TTL restarts from now and may shorten (allowShorter=true); it is silently clipped so the
    // sandbox never outlives startedAt + plan cap (getMaxAllowedTTL), no 400 here.
    const wanted = now + Math.max(0, timeoutS) * 1000;
    s.endAt = Math.min(wanted, s.startedAt + this.maxTimeoutS * 1000);
    this.emit("updated", s, now);
    if (now >= s.endAt) this.expire(s);
    return { status: 204 };
  }

  private doConnect(id: string, body: Record<string, unknown>): Outcome {
    const timeoutS = secondsField(body, "timeout") ?? DEFAULT_TIMEOUT_S;
    if (timeoutS > this.maxTimeoutS) throw new HttpError(400, this.capMessage());
    const s = this.aliveSet.get(id);
    if (!s) throw new HttpError(404, notFoundMsg(id));
    const now = this.clock();
    if (s.state === "running") {
      // Already running: TTL is only ever extended (allowShorter=false), clipped to the cap; 200.
      const wanted = Math.min(now + Math.max(0, timeoutS) * 1000, s.startedAt + this.maxTimeoutS * 1000);
      if (wanted > s.endAt) {
        s.endAt = wanted;
        this.emit("updated", s, now);
      }
      return { status: 200, body: sandboxBody(s) };
    }
    // Paused: resume as a fresh instance with the same ID: new start time, TTL from now; 201.
    this.resumeNow(s, now, Math.max(0, timeoutS));
    return { status: 201, body: sandboxBody(s) };
  }

  private doPause(id: string, applied: boolean): Outcome {
    const s = this.aliveSet.get(id);
    if (!s) throw new HttpError(404, notFoundMsg(id));
    if (s.state === "paused") {
      throw new HttpError(409, `Error pausing sandbox - sandbox '${id}' is already paused`);
    }
    if (applied) this.orphan(s, this.clock());
    else this.pauseNow(s, this.clock());
    return { status: 204 };
  }
}

// ------------------------------------------------------------------ wire shapes

/** components["schemas"]["Sandbox"]: create and connect responses. */
function sandboxBody(s: EmulatedSandbox) {
  return {
    sandboxID: s.sandboxID,
    templateID: s.templateID,
    clientID: s.clientID,
    ...(s.alias !== undefined ? { alias: s.alias } : {}),
    envdVersion: s.envdVersion,
    envdAccessToken: s.envdAccessToken, // v2 create is always secured
    domain: null,
    trafficAccessToken: null,
  };
}

/** components["schemas"]["ListedSandbox"]. */
function listedBody(s: EmulatedSandbox) {
  return {
    sandboxID: s.sandboxID,
    templateID: s.templateID,
    clientID: s.clientID,
    ...(s.alias !== undefined ? { alias: s.alias } : {}),
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
function detailBody(s: EmulatedSandbox) {
  return {
    ...listedBody(s),
    envdAccessToken: s.envdAccessToken,
    domain: null,
    allowInternetAccess: null,
    lifecycle: { autoResume: false, onTimeout: s.autoPause ? "pause" : "kill" },
  };
}

function retryAfter(f: FaultSpec): Record<string, string> {
  return f.retryAfterS !== undefined ? { "Retry-After": String(Math.max(0, Math.floor(f.retryAfterS))) } : {};
}

function defaultFaultMessage(status: number): string {
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

function sendJson(
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

function readBody(req: http.IncomingMessage): Promise<Buffer> {
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

/**
 * Point the `e2b` SDK at the emulator (it reads these env vars on every call). Returns a
 * function restoring the previous values. Never touches E2B_DEBUG (that makes the SDK send
 * nothing at all).
 */
export function useEmulatorEnv(emu: E2BEmulator, apiKey = "e2b_test_key"): () => void {
  const keys = ["E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY"] as const;
  const saved = keys.map((k) => [k, process.env[k]] as const);
  process.env.E2B_API_URL = emu.url;
  process.env.E2B_SANDBOX_URL = emu.url;
  process.env.E2B_API_KEY = apiKey;
  return () => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}
