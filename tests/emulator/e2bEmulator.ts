/**
 * A local emulator of E2B's control-plane HTTP API, for tests and benchmarks.
 *
 * It speaks the wire protocol the real `e2b` JS SDK (2.51.x) uses, so tests drive it with the
 * real SDK over HTTP (point the SDK at it with `useEmulatorEnv`). Behaviour follows the SDK's
 * own dist and E2B's public server source (e2b-dev/infra, packages/api): paths, status codes,
 * JSON error bodies, pagination cursors, the triple-encoded metadata filter, TTL semantics.
 * Deliberate deviations are listed at the bottom of this comment block.
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
 * States, as E2B's server has them (paths in ../shared/notes/e2b-semantics.md: H/ handlers,
 * O/ orchestrator, R/ redis store of e2b-dev/infra packages/api/internal):
 *  - Being created: a create is only a reservation (store.go Reserve) for its request's hold
 *    (`transitionMs.create` + a delay fault): list omits it; get, kill, pause, connect and
 *    timeout answer 404; a kill changes nothing. It then publishes with a fresh startedAt, even if
 *    the client left; a hold past `createDeadlineMs` (70 s, main.go) ends in 504, no sandbox.
 *    `landAfterMs` makes the landing follow the emulator clock instead.
 *  - Running -> killing (kill's hold): get 404, list omits, connect/timeout 409 `is being killed`,
 *    pause 404, a second kill joins. Running -> pausing (pause's hold): get/list say paused,
 *    timeout 409 `is being paused`, pause joins, kill and connect wait for it (R/state_change.go).
 *    Paused -> resuming (connect's hold): still its snapshot to get/list; other connects join.
 *  - Snapshot rows: a pause upserts one; resume and timeout keep it; only DELETE removes it
 *    (H/sandbox_kill.go). So paused -> resumed -> timed out comes back `paused` with its old
 *    snapshot (endAt = the last pause), and connect resumes it.
 *  - Concurrency (`maxConcurrentSandboxes`): running + pausing + killing + pending creates and
 *    resumes; paused ones are free. Create and resume answer 429 without Retry-After.
 *  - List order: desc = startedAt DESC, id ASC; asc = startedAt ASC, id DESC (sandboxes_list.go).
 *  - autoResume: envd traffic to a paused sandbox created with it resumes it (create timeout).
 *  - Timeout eviction is lazy (every request, inspection and `tick()` applies it first, with the
 *    time it happened), or also periodic with `tickEveryMs`; a sandbox mid-transition is not
 *    evicted, as the evictor takes running only.
 *
 * Strict as E2B (its OpenAPI validator runs before the handlers; 400 `validation error: ...`):
 * list `limit` outside 1..100, unknown `state`, create/connect `timeout` < 1 (v2 schemas) or above
 * the plan cap (`Timeout cannot be greater than N hours`), setTimeout `timeout` < 0 or missing
 * (the sandbox is left untouched), metadata/envVars that are not string maps, a missing
 * templateID. Path ids other than `<id>` / `<id>-<clientID>` of [a-z0-9] -> 400 `Invalid
 * sandbox ID`. Unknown templates -> 404 `template '<x>' not found` (`templates` option; default
 * base and python). Create faults carry E2B's placement `error_code`.
 *
 * Faults beyond status/delay/drop/hang (FaultSpec): a kill or pause 500 that was `applied` (the
 * store entry dropped, the VM an orphan for ~80 s), `fakeSuccess` kills, `raceResume` (kill vs an
 * in-flight resume: E2B's open race, infra #3636; by default the kill waits for the resume),
 * `ignoreMetadataKeys` lists, `landAfterMs` creates; envd: `envdFault` proxy502 (any sandbox, or
 * one), `killEnvd`.
 *
 * Deliberate deviations from the real service, each for a reason:
 *  - Template references are simplified: `<alias or ID>[:tag]`, the only tag being "default";
 *    team namespaces are not modelled (no test needs them; E2B's parser is not in the notes).
 *  - The first list page has no time bound (the real API bounds it by time.Now(), which with a
 *    frozen, simulated clock would hide sandboxes started "now").
 *  - Paused sandboxes never expire — as at E2B, where nothing but DELETE removes a snapshot row
 *    (H/sandbox_kill.go deleteSnapshot); whoever pauses must reap.
 *  - Rate limits are not enforced unless injected with `fault()`, and concurrency is unlimited
 *    unless `maxConcurrentSandboxes` is set: each test picks its plan (Hobby would be 20).
 *  - Transitions take real ms (DEFAULT_TRANSITION_MS, a few ms) where E2B takes seconds: enough
 *    for concurrent requests to meet them, cheap for suites; tests lengthen them with a delay
 *    fault or `transitionMs`. Snapshotting (the checkpoint API) is not modelled: the SDK 2.51
 *    lifecycle never calls it.
 *  - A kill or pause carries on when its client disconnects (E2B's cancelled context may stop it
 *    midway); "may or may not have happened" is what the faults `applied` and plain `status` model.
 *  - Deleting a paused sandbox emits `killed` (E2B's node publishes events; for a snapshot-only
 *    delete the source does not show one), so listeners see every end.
 *  - A resume of a paused sandbox never fails on placement (503/504) unless injected.

 * Bind is loopback only; nothing here reaches the network.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import type {
  CallRecord,
  E2BEmulatorOptions,
  EmulatedSandbox,
  Endpoint,
  EnvdFaultSpec,
  FaultSpec,
  LifecycleEvent,
  MountHandler,
} from "./e2bTypes";
import {
  CLIENT_ID,
  DEFAULT_TEMPLATES,
  DEFAULT_TIMEOUT_S,
  DEFAULT_TRANSITION_MS,
  Hold,
  HttpError,
  PLACEMENT_TIMEOUT_MESSAGE,
  bodyError,
  concurrencyMessage,
  detailBody,
  ENVD_PORT,
  Reply,
  errorOutcome,
  isPlainObject,
  parseJsonBody,
  listMatches,
  listedBody,
  matchRoute,
  newSandboxID,
  notFoundMsg,
  pageOf,
  parseListQuery,
  readBody,
  sandboxBody,
  secondsField,
  sendJson,
  stringMap,
  transitionalError,
  validSandboxRef,
  type Outcome,
  type QueuedFault,
  type Route,
} from "./e2bWire";

export * from "./e2bTypes";
export { DEFAULT_TEMPLATES, DEFAULT_TRANSITION_MS, parseMetadataFilter } from "./e2bWire";

/** A state change in flight: other requests join it, wait for it, or answer 409. */
interface Op {
  kind: "pausing" | "killing" | "resuming";
  /** emulator clock when it began */
  beganAt: number;
  done: Promise<void>;
  finish(): void;
}

/** E2B's snapshot row (Postgres): written at pause, kept on resume and timeout, deleted by kill. */
interface Snapshot {
  startedAt: number;
  pausedAt: number;
  metadata: Record<string, string>;
}

/** Internal record: the public shape plus the meter's running segments and the state machine. */
interface Box extends EmulatedSandbox {
  /** emulator clock when the VM started running (undefined: no VM) */
  vmSince?: number;
  /** emulator clock when it became paused (undefined: not paused) */
  pausedSince?: number;
  op?: Op;
  snapshot?: Snapshot;
  /** the create's timeout, s: an auto-resume runs for this long */
  createTimeoutS: number;
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
  private readonly orphans = new Map<string, { box: Box; since: number; reapAt: number }>();
  /**
   * creates still in flight (reservations), invisible: they land when the clock passes landAt
   * (landAfterMs fault), or when their request's hold ends (landAt undefined)
   */
  private readonly pending = new Map<string, { box: Box; landAt?: number }>();
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
    this.templates = opts.templates ?? { ...DEFAULT_TEMPLATES };
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
    if (opts.tickEveryMs !== undefined && opts.tickEveryMs > 0) {
      const ticker = setInterval(() => emu.sweep(), opts.tickEveryMs);
      ticker.unref();
      server.once("close", () => clearInterval(ticker));
    }
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
    return s !== undefined && s.state === "running" && s.op?.kind !== "killing" && !this.envdDead.has(id);
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
    autoResume?: boolean;
  }): EmulatedSandbox {
    const now = this.clock();
    const startedAt = s.startedAt ?? now;
    const state = s.state ?? "running";
    const name = s.templateID ?? "base";
    const timeoutMs = s.timeoutMs ?? DEFAULT_TIMEOUT_S * 1000;
    const sbx = this.makeSandbox(this.lookupTemplate(name) ?? { templateID: name }, {
      metadata: s.metadata ?? {},
      envVars: s.envVars ?? {},
      startedAt,
      endAt: state === "paused" ? now : startedAt + timeoutMs,
      state,
      autoPause: s.autoPause ?? false,
      autoResume: s.autoResume ?? false,
      createTimeoutS: Math.ceil(timeoutMs / 1000),
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
    template: { templateID: string; alias?: string },
    f: Pick<
      EmulatedSandbox,
      "metadata" | "envVars" | "startedAt" | "endAt" | "state" | "autoPause" | "autoResume"
    > & { createTimeoutS: number },
  ): Box {
    return {
      sandboxID: newSandboxID(),
      templateID: template.templateID,
      clientID: CLIENT_ID,
      ...(template.alias !== undefined ? { alias: template.alias } : {}),
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
      autoResume: f.autoResume,
      hasSnapshot: false,
      runningMs: 0,
      pausedMs: 0,
      createTimeoutS: f.createTimeoutS,
    };
  }

  /** The sandbox becomes live at `at`: listed, metered, and announced (`created`). */
  private publish(s: Box, at: number): void {
    this.sandboxes.set(s.sandboxID, s);
    this.aliveSet.set(s.sandboxID, s);
    if (s.state === "running") s.vmSince = at;
    else {
      s.snapshot = { startedAt: s.startedAt, pausedAt: s.endAt, metadata: { ...s.metadata } };
      s.pausedSince = at;
    }
    this.emit("created", s, at);
  }

  /**
   * Lazy time: every request and inspection first lands due reservations, retires running
   * sandboxes past endAt (E2B's evictor polls every 50 ms; a sandbox mid-transition is not
   * evicted), and reaps due orphans.
   */
  private sweep(): void {
    const now = this.clock();
    for (const [id, p] of this.pending) {
      if (p.landAt === undefined || now < p.landAt) continue;
      this.pending.delete(id);
      p.box.startedAt = p.landAt;
      p.box.endAt = p.landAt + p.box.createTimeoutS * 1000;
      this.publish(p.box, p.landAt);
    }
    for (const s of this.aliveSet.values()) {
      if (s.state === "running" && !s.op && now >= s.endAt) this.expire(s);
    }
    for (const [id, o] of this.orphans) {
      if (now < o.reapAt) continue;
      this.orphans.delete(id);
      o.box.orphaned = false;
      o.box.runningMs += Math.max(0, o.reapAt - o.since);
      if (!this.aliveSet.has(id) && !this.pendingResume(o.box)) {
        o.box.diedAt = o.reapAt;
        o.box.diedBy = "reaped";
      }
      this.emit("killed", o.box, o.reapAt, "orphaned");
    }
  }

  /** Its TTL ran out: pause (autoPause), else the VM is killed — back to its snapshot if it has one. */
  private expire(s: Box): void {
    if (s.autoPause) {
      this.pauseNow(s, s.endAt); // the snapshot time is when the TTL ran out
    } else if (s.snapshot) {
      // Only DELETE removes a snapshot row (H/sandbox_kill.go): the evictor's kill leaves it, so
      // a paused-then-resumed sandbox whose timeout ends it comes back as `paused`, stale.
      this.stopVm(s, s.endAt);
      this.emit("killed", s, s.endAt, "timeout");
      this.restoreSnapshot(s, s.endAt);
    } else {
      this.die(s, "expired", s.endAt);
    }
  }

  /** Back to its snapshot row: listed and reported paused as of the last pause. */
  private restoreSnapshot(s: Box, at: number): void {
    const snap = s.snapshot!;
    s.state = "paused";
    s.startedAt = snap.startedAt;
    s.endAt = snap.pausedAt;
    s.metadata = { ...snap.metadata };
    s.pausedSince = at;
    this.aliveSet.set(s.sandboxID, s);
  }

  private pauseNow(s: Box, at: number): void {
    s.state = "paused";
    s.endAt = at; // listed paused sandboxes report the snapshot time as endAt
    this.stopVm(s, at);
    // pausing again upserts the row (create_new_snapshot.sql)
    s.snapshot = { startedAt: s.startedAt, pausedAt: at, metadata: { ...s.metadata } };
    s.pausedSince = at;
    this.emit("paused", s, at);
  }

  private resumeNow(s: Box, at: number, timeoutS: number): void {
    this.stopPaused(s, at);
    s.state = "running";
    s.startedAt = at;
    s.endAt = at + timeoutS * 1000;
    s.vmSince = at;
    this.aliveSet.set(s.sandboxID, s);
    this.emit("resumed", s, at);
  }

  /** Killed: VM and snapshot row gone, for good. */
  private die(s: Box, by: "killed" | "expired", at: number): void {
    s.diedAt = at;
    s.diedBy = by;
    s.snapshot = undefined;
    this.stopVm(s, at);
    this.stopPaused(s, at);
    this.aliveSet.delete(s.sandboxID);
    this.envdDead.delete(s.sandboxID);
    this.emit("killed", s, at, by === "expired" ? "timeout" : "request");
  }

  /**
   * A kill or pause whose node call failed after E2B dropped the store entry (O/delete_instance.go):
   * the control plane forgets the running sandbox — 404, or its previous snapshot if it had one —
   * while the VM runs on (and bills) as an orphan until the reaper. A paused one has no VM: the
   * failed kill took its snapshot row with it.
   */
  private orphan(s: Box, at: number): void {
    if (s.state === "paused") {
      this.die(s, "killed", at);
      return;
    }
    this.stopVm(s, at);
    s.orphaned = true;
    this.orphans.set(s.sandboxID, { box: s, since: at, reapAt: at + this.orphanReapMs });
    if (s.snapshot) this.restoreSnapshot(s, at);
    else this.aliveSet.delete(s.sandboxID); // gone as far as the API can tell, but not dead: no diedAt
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

  /** Still the live record of its sandbox (not killed directly or reset under a request). */
  private isCurrent(s: Box): boolean {
    return this.aliveSet.get(s.sandboxID) === s;
  }

  private pendingResume(s: Box): boolean {
    return s.op?.kind === "resuming";
  }

  /** Mark a state change in flight; `finish()` releases whoever waits on it. */
  private beginOp(s: Box, kind: Op["kind"]): Op {
    let release!: () => void;
    const done = new Promise<void>((r) => (release = r));
    const op: Op = {
      kind,
      beganAt: this.clock(),
      done,
      finish: () => {
        if (s.op === op) s.op = undefined;
        release();
      },
    };
    s.op = op;
    return op;
  }

  /** E2B's concurrency count: store entries (running, pausing, killing) + pending creates and resumes. */
  private concurrencyInUse(): number {
    let n = this.pending.size;
    for (const s of this.aliveSet.values()) if (s.state === "running" || this.pendingResume(s)) n++;
    return n;
  }

  private checkConcurrency(): void {
    const max = this.opts.maxConcurrentSandboxes;
    if (max !== undefined && this.concurrencyInUse() >= max)
      throw new HttpError(429, concurrencyMessage(max));
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
    const { vmSince, pausedSince, op, snapshot, createTimeoutS: _t, ...pub } = s;
    const orphan = this.orphans.get(s.sandboxID);
    return {
      ...pub,
      metadata: { ...s.metadata },
      envVars: { ...s.envVars },
      runningMs:
        s.runningMs +
        (vmSince !== undefined ? Math.max(0, now - vmSince) : 0) +
        (orphan ? Math.max(0, now - orphan.since) : 0),
      pausedMs: s.pausedMs + (pausedSince !== undefined ? Math.max(0, now - pausedSince) : 0),
      hasSnapshot: snapshot !== undefined,
      ...(op ? { phase: op.kind } : {}),
    };
  }

  /** An alias or template ID of this team's, without tag; undefined when unknown. */
  private lookupTemplate(name: string): { templateID: string; alias?: string } | undefined {
    const id = this.templates[name];
    if (id !== undefined) return { templateID: id, alias: name };
    for (const [alias, tid] of Object.entries(this.templates))
      if (tid === name) return { templateID: tid, alias };
    return undefined;
  }

  /**
   * A create's `templateID` as E2B resolves it: `<alias or ID>[:<tag>]`; only the "default" tag
   * exists here. Unknown -> 404 `template '<x>' not found`, unknown tag -> 404
   * (packages/api/internal/cache/templates/errors.go); not a reference at all -> 400.
   */
  private resolveTemplate(ref: string): { templateID: string; alias?: string } {
    const m = /^([a-z0-9][a-z0-9._/-]*)(?::([a-z0-9][a-z0-9._-]*))?$/.exec(ref.trim().toLowerCase());
    if (!m) throw new HttpError(400, `Invalid template reference: ${JSON.stringify(ref)}`);
    const name = m[1]!;
    const found = this.lookupTemplate(name);
    if (!found) throw new HttpError(404, `template '${name}' not found`);
    if (m[2] !== undefined && m[2] !== "default")
      throw new HttpError(404, `tag '${m[2]}' does not exist for template '${name}'`);
    return found;
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
    // envd traffic: the SDK sends it to E2B_SANDBOX_URL with the sandbox in a header.
    if (headerId !== undefined) return this.handleEnvd(req, res, url, [headerId].flat()[0] ?? "");

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
    const reply = new Reply(res, rec);

    // Read the whole body first so keep-alive sockets stay in a clean state whatever we answer.
    let raw: Buffer;
    try {
      raw = await readBody(req);
    } catch (e) {
      const status = e instanceof HttpError ? e.status : 400;
      return reply.fail(status, `Error when reading request: ${String((e as Error).message)}`);
    }
    const mounted = route ? undefined : this.mounts.find((m) => url.pathname.startsWith(m.prefix));
    if (!route && !mounted) return reply.fail(404, `Not found: ${method} ${url.pathname}`);

    const latency = (route && this.latency[route.endpoint]) ?? this.latency["*"] ?? 0;
    if (latency > 0) await this.sleep(latency);
    const authError = this.authError(req); // auth runs before the handler, as E2B's middleware does
    if (authError) return reply.fail(401, authError);

    if (route) return this.serveRoute(route, url, raw, req, reply);
    res.on("finish", () => (rec.status = res.statusCode));
    this.sweep();
    await mounted!.handler(req, res, raw);
  }

  private authError(req: http.IncomingMessage): string | undefined {
    if (this.opts.apiKey === undefined) return undefined;
    const key = req.headers["x-api-key"];
    if (key === undefined || key === "") return "Invalid API key, please check the X-API-KEY header";
    return key === this.opts.apiKey ? undefined : "Invalid API key";
  }

  /** A control-plane route: its fault, the work (held in its transitional state), the answer. */
  private async serveRoute(route: Route, url: URL, raw: Buffer, req: http.IncomingMessage, reply: Reply) {
    const fault = this.takeFault(route.endpoint);
    if (fault) reply.rec.fault = fault;
    const hold = new Hold((ms) => this.sleep(ms), fault?.delayMs ?? 0);

    let body: Record<string, unknown>;
    try {
      body = parseJsonBody(raw, reply.rec);
    } catch (e) {
      await hold.run();
      return reply.error(e);
    }
    // A status fault answers instead of doing the work, unless the work is applied anyway
    // (kill/pause `applied`, a create that lands later) or the status is the lost answer's.
    const worksAnyway = fault?.applied === true || fault?.landAfterMs !== undefined;
    const faultStatus = fault?.status ?? (fault?.applied ? 500 : undefined);
    const lostAnswer = fault?.dropResponse === true || fault?.hang === true;
    if (faultStatus !== undefined && !lostAnswer && !worksAnyway) {
      await hold.run();
      return reply.faulted(fault!, faultStatus);
    }

    let outcome: Outcome;
    try {
      this.sweep();
      outcome = await this.perform(route, url, body, hold, fault);
    } catch (e) {
      outcome = errorOutcome(e);
    }
    await hold.run(); // a request refused early is still delayed by its fault

    if (fault?.hang) return; // done the work, never answer; stop() destroys the socket
    if (fault?.dropResponse) return void req.socket.destroy(); // done the work, the answer is lost
    if (faultStatus !== undefined && outcome.status < 400) return reply.faulted(fault!, faultStatus);
    if (outcome.hold) await outcome.hold;
    reply.answer(outcome);
  }

  /** envd traffic, as E2B's proxy routes it. */
  private handleEnvd(req: http.IncomingMessage, res: http.ServerResponse, url: URL, id: string): void {
    const method = req.method ?? "GET";
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
    // Traffic to a paused sandbox created with autoResume resumes it first.
    if (s && s.state === "paused" && s.autoResume && !s.op) this.autoResume(s);
    // E2B's proxy answers 502 JSON for unknown, dead, being-killed (and not-resumed paused)
    // sandboxes, and, under the proxy502 fault, for a live one too.
    const routable = s !== undefined && s.state === "running" && s.op?.kind !== "killing";
    if (!this.opts.envdHandler || !routable || this.takeEnvdFault(id)) {
      return sendJson(res, 502, { code: 502, message: "The sandbox was not found" });
    }
    if (this.envdDead.has(id)) {
      // The proxy reaches the VM but nothing listens on envd's port (its closed-port answer).
      const closed = "The sandbox is running but port is not open";
      return sendJson(res, 502, { code: 502, message: closed, sandboxId: id, port: ENVD_PORT });
    }
    this.opts.envdHandler(req, res);
  }

  /** The first queued envd fault for this sandbox, consumed. */
  private takeEnvdFault(sandboxId: string): EnvdFaultSpec | undefined {
    const i = this.envdFaults.findIndex(
      (f) => f.spec.sandboxId === undefined || f.spec.sandboxId === sandboxId,
    );
    const f = this.envdFaults[i];
    if (!f) return undefined;
    if (--f.remaining <= 0) this.envdFaults.splice(i, 1);
    return f.spec;
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

  private async perform(
    route: Route,
    url: URL,
    body: Record<string, unknown>,
    hold: Hold,
    fault?: FaultSpec,
  ): Promise<Outcome> {
    if (route.rawId !== undefined && !validSandboxRef(route.rawId))
      throw new HttpError(400, "Invalid sandbox ID");
    switch (route.endpoint) {
      case "create":
        return this.doCreate(body, hold, fault?.landAfterMs);
      case "list":
        await hold.run();
        return this.doList(url.searchParams, fault?.ignoreMetadataKeys);
      case "kill":
        return this.doKill(route.id!, hold, fault);
      case "getInfo":
        await hold.run();
        return this.doGetInfo(route.id!);
      case "setTimeout":
        await hold.run();
        return this.doSetTimeout(route.id!, body);
      case "connect":
        return this.doConnect(route.id!, body, hold);
      case "pause":
        return this.doPause(route.id!, hold, fault?.applied === true);
    }
  }

  private transition(kind: keyof typeof DEFAULT_TRANSITION_MS): number {
    return this.opts.transitionMs?.[kind] ?? DEFAULT_TRANSITION_MS[kind];
  }

  /**
   * Create (H/sandbox_create.go, O/create_instance.go): validate, reserve, then the sandbox is
   * "being created" — only a reservation, invisible to every endpoint and counted against the
   * concurrency limit — for the request's hold; it then publishes with a fresh startedAt, even if
   * the client went away meanwhile. A hold past the API's 70 s deadline ends in 504, no sandbox.
   */
  private async doCreate(body: Record<string, unknown>, hold: Hold, landAfterMs?: number): Promise<Outcome> {
    const { template, metadata, envVars, timeoutS, autoPause, autoResume } = this.parseCreate(body);
    this.checkConcurrency();
    const now = this.clock();
    const lifeS = timeoutS ?? DEFAULT_TIMEOUT_S;
    const sbx = this.makeSandbox(template, {
      metadata,
      envVars,
      startedAt: now,
      endAt: now + lifeS * 1000,
      state: "running",
      autoPause,
      autoResume,
      createTimeoutS: lifeS,
    });
    if (landAfterMs !== undefined && landAfterMs > 0) {
      this.pending.set(sbx.sandboxID, { box: sbx, landAt: now + landAfterMs });
      const landed = this.until(() => !this.pending.has(sbx.sandboxID));
      return { status: 201, body: sandboxBody(sbx), hold: landed };
    }
    this.pending.set(sbx.sandboxID, { box: sbx });
    const deadlineMs = this.opts.createDeadlineMs ?? 70_000;
    const workMs = hold.delayMs + this.transition("create");
    if (workMs >= deadlineMs) {
      await this.sleep(deadlineMs);
      this.pending.delete(sbx.sandboxID);
      await hold.run(0, deadlineMs); // the client still waits out the rest of its delay
      throw new HttpError(504, PLACEMENT_TIMEOUT_MESSAGE, "sandbox_placement_timeout");
    }
    await hold.run(this.transition("create"));
    if (!this.pending.delete(sbx.sandboxID) || this.stopped) throw new HttpError(500, "emulator reset");
    // startedAt/endAt are reset once the VM is up (O/create_instance.go)
    sbx.startedAt = this.clock();
    sbx.endAt = sbx.startedAt + lifeS * 1000;
    this.publish(sbx, sbx.startedAt);
    return { status: 201, body: sandboxBody(sbx) };
  }

  /** The create body, checked in E2B's order: validator, template, timeout against the plan. */
  private parseCreate(body: Record<string, unknown>) {
    const templateID = body.templateID;
    if (templateID === undefined)
      throw bodyError("NewSandboxV2", "/templateID", 'property "templateID" is missing');
    if (typeof templateID !== "string")
      throw bodyError("NewSandboxV2", "/templateID", "value must be a string");
    const metadata = stringMap(body, "metadata", "NewSandboxV2");
    const envVars = stringMap(body, "envVars", "NewSandboxV2");
    const timeoutS = secondsField(body, "timeout", "NewSandboxV2", 1); // v2 schema: minimum 1
    const autoResume = body.autoResume;
    if (autoResume !== undefined && (!isPlainObject(autoResume) || typeof autoResume.enabled !== "boolean"))
      throw bodyError("NewSandboxV2", "/autoResume", "value must be an object with a boolean enabled");
    const template = this.resolveTemplate(templateID);
    // Only an explicit timeout is checked against the plan cap; absent means 300 s.
    if (timeoutS !== undefined && timeoutS > this.maxTimeoutS) throw new HttpError(400, this.capMessage());
    return {
      template,
      metadata,
      envVars,
      timeoutS,
      autoPause: body.autoPause === true,
      autoResume: isPlainObject(autoResume) && autoResume.enabled === true,
    };
  }

  /** GET /v2/sandboxes (H/sandboxes_list.go): what the API shows, filtered, sorted, one page. */
  private doList(q: URLSearchParams, ignoreMetadataKeys: string[] = []): Outcome {
    const query = parseListQuery(q);
    const selected: EmulatedSandbox[] = [];
    for (const s of this.aliveSet.values()) {
      const view = this.apiView(s);
      if (view && listMatches(view, query, ignoreMetadataKeys)) selected.push(view);
    }
    const headers: Record<string, string> = {};
    if (query.states.includes("running")) {
      headers["X-Total-Running"] = String(selected.filter((s) => s.state === "running").length);
    }
    const { page, nextToken } = pageOf(selected, query);
    if (nextToken !== undefined) headers["X-Next-Token"] = nextToken;
    return { status: 200, body: page.map(listedBody), headers };
  }

  /**
   * Kill (H/sandbox_kill.go, O/delete_instance.go, R/state_change.go): a running sandbox is
   * "killing" for the request's hold (get 404, list omits it, connect/timeout 409), then dead with
   * its snapshot row; a paused one loses its row; a concurrent kill joins; a pausing one is
   * killed once paused; a resuming one once resumed (or at once, under `raceResume`).
   */
  private async doKill(id: string, hold: Hold, fault?: FaultSpec): Promise<Outcome> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const s = this.aliveSet.get(id);
      if (!s) break;
      const op = s.op;
      if (op?.kind === "killing") {
        await op.done; // joins the kill in flight and gets its result
        return { status: 204 };
      }
      if (op?.kind === "resuming" && fault?.raceResume) {
        this.raceResumeKill(s);
        return { status: 204 };
      }
      if (op) {
        await op.done; // another target: wait for it, then retry
        continue;
      }
      if (fault?.fakeSuccess) return { status: 204 };
      await this.killNow(s, hold, fault?.applied === true);
      return { status: 204 };
    }
    throw new HttpError(404, notFoundMsg(id));
  }

  private async killNow(s: Box, hold: Hold, applied: boolean): Promise<void> {
    if (s.state === "paused") {
      await hold.run(this.transition("kill")); // deleting the snapshot row
      if (this.aliveSet.get(s.sandboxID) !== s) return;
      if (s.op?.kind === "resuming")
        this.raceResumeKill(s); // a connect began meanwhile: E2B's race
      else if (applied) this.orphan(s, this.clock());
      else this.die(s, "killed", this.clock());
      return;
    }
    const op = this.beginOp(s, "killing");
    try {
      await hold.run(this.transition("kill"));
      if (!this.isCurrent(s)) return; // ended meanwhile (killDirect, reset)
      if (applied) this.orphan(s, this.clock());
      else this.die(s, "killed", this.clock());
    } finally {
      op.finish();
    }
  }

  /** infra #3636: the kill deletes the snapshot row of a sandbox mid-resume; the resume publishes anyway. */
  private raceResumeKill(s: Box): void {
    s.snapshot = undefined;
    this.aliveSet.delete(s.sandboxID);
    this.emit("killed", s, this.clock(), "request");
  }

  /** How E2B's API presents a live sandbox: killing ones are hidden, pausing ones look paused. */
  private apiView(s: Box): EmulatedSandbox | undefined {
    if (s.op?.kind === "killing") return undefined; // H/sandbox_get.go, H/sandboxes_list.go
    if (s.op?.kind === "pausing") return { ...s, state: "paused", endAt: s.op.beganAt };
    return s;
  }

  private doGetInfo(id: string): Outcome {
    const s = this.aliveSet.get(id);
    const view = s && this.apiView(s);
    if (!view) throw new HttpError(404, notFoundMsg(id));
    return { status: 200, body: detailBody(view) };
  }

  /** O/keep_alive.go KeepAliveFor(allowShorter=true): running only; transitional -> 409. */
  private doSetTimeout(id: string, body: Record<string, unknown>): Outcome {
    // SandboxTimeoutRequest: {timeout: int32 >= 0} required; refused before the sandbox is touched
    const timeoutS = secondsField(body, "timeout", "SandboxTimeoutRequest", 0);
    if (timeoutS === undefined)
      throw bodyError("SandboxTimeoutRequest", "/timeout", 'property "timeout" is missing');
    const s = this.aliveSet.get(id);
    if (s?.op?.kind === "killing" || s?.op?.kind === "pausing") throw transitionalError(id, s.op.kind);
    // a paused (or resuming) one is not in the orchestrator -> 404
    if (!s || s.state !== "running") throw new HttpError(404, notFoundMsg(id));
    const now = this.clock();
    // TTL restarts from now and may shorten; silently clipped to startedAt + plan cap (getMaxAllowedTTL).
    s.endAt = Math.min(now + timeoutS * 1000, s.startedAt + this.maxTimeoutS * 1000);
    this.emit("updated", s, now);
    if (now >= s.endAt) this.expire(s);
    return { status: 204 };
  }

  /**
   * Connect (H/sandbox_connect.go): running -> 200, the TTL only extended; paused -> resumed through
   * the create path (concurrency-checked, "resuming" for the hold; concurrent connects join) ->
   * 201; pausing -> waits, then resumes; killing -> 409.
   */
  private async doConnect(id: string, body: Record<string, unknown>, hold: Hold): Promise<Outcome> {
    // ConnectSandboxV2: optional {timeout >= 1, default 300}; above the plan cap -> 400
    const timeoutS = secondsField(body, "timeout", "ConnectSandboxV2", 1) ?? DEFAULT_TIMEOUT_S;
    if (timeoutS > this.maxTimeoutS) throw new HttpError(400, this.capMessage());
    for (let attempt = 0; attempt < 3; attempt++) {
      const s = this.aliveSet.get(id);
      if (!s) break;
      const op = s.op;
      if (op?.kind === "killing") throw transitionalError(id, "killing");
      if (op?.kind === "resuming") {
        await op.done; // joins the same start
        if (s.state === "running" && this.aliveSet.get(id) === s)
          return { status: 201, body: sandboxBody(s) };
        continue;
      }
      if (op?.kind === "pausing") {
        await op.done;
        continue;
      }
      if (s.state === "running") {
        await hold.run();
        return { status: 200, body: sandboxBody(this.extend(s, timeoutS)) };
      }
      await this.resume(s, hold, timeoutS);
      return { status: 201, body: sandboxBody(s) };
    }
    throw new HttpError(404, notFoundMsg(id));
  }

  /** A running sandbox's TTL, only ever extended (allowShorter=false), clipped to the plan cap. */
  private extend(s: Box, timeoutS: number): Box {
    const now = this.clock();
    const wanted = Math.min(now + timeoutS * 1000, s.startedAt + this.maxTimeoutS * 1000);
    if (wanted > s.endAt) {
      s.endAt = wanted;
      this.emit("updated", s, now);
    }
    return s;
  }

  private async resume(s: Box, hold: Hold, timeoutS: number): Promise<void> {
    this.checkConcurrency(); // a resume takes a reservation too (429, no Retry-After)
    const op = this.beginOp(s, "resuming");
    try {
      await hold.run(this.transition("resume"));
      // published even if a racing kill deleted its snapshot meanwhile (infra #3636)
      if (!this.stopped && s.diedAt === undefined && this.sandboxes.get(s.sandboxID) === s)
        this.resumeNow(s, this.clock(), timeoutS);
    } finally {
      op.finish();
    }
  }

  /**
   * Pause (H/sandbox_pause.go, O/pause_instance.go): running -> "pausing" for the hold (get and
   * list say paused, timeout 409), then paused with its snapshot row upserted -> 204. Paused or
   * resuming -> 409 already paused; pausing -> joins; killing -> 404, or 409 with an old snapshot.
   */
  private async doPause(id: string, hold: Hold, applied: boolean): Promise<Outcome> {
    const s = this.aliveSet.get(id);
    if (!s) throw new HttpError(404, notFoundMsg(id));
    const op = s.op;
    if (op?.kind === "pausing") {
      await op.done;
      return { status: 204 };
    }
    if (op?.kind === "killing" && !s.snapshot) throw new HttpError(404, notFoundMsg(id));
    if (s.state === "paused" || op) {
      throw new HttpError(409, `Error pausing sandbox - sandbox '${id}' is already paused`);
    }
    const pausing = this.beginOp(s, "pausing");
    try {
      await hold.run(this.transition("pause"));
      if (!this.isCurrent(s)) return { status: 204 }; // ended meanwhile (killDirect, reset)
      if (applied) this.orphan(s, this.clock());
      else this.pauseNow(s, this.clock());
    } finally {
      pausing.finish();
    }
    return { status: 204 };
  }

  /** Traffic to a paused sandbox created with autoResume resumes it (policy "any"). */
  private autoResume(s: Box): void {
    const timeoutS = Math.min(Math.max(1, s.createTimeoutS), this.maxTimeoutS);
    this.resumeNow(s, this.clock(), timeoutS);
  }
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
