/** Public types of the E2B emulator (see e2bEmulator.ts for the behaviour). */
import type * as http from "node:http";

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
   * kill of a paused sandbox whose resume is in flight: answer 204 at once (its snapshot is
   * deleted), and the resume then publishes it running, to live to its timeout — E2B's open race
   * (infra issue #3636). Without it the kill waits for the resume and kills the resumed sandbox.
   */
  raceResume?: true;
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
  /**
   * the body's `error_code`. Default on create faults, as E2B's placement errors carry one
   * (O/placement_errors.go): 500 sandbox_create_failed, 503 sandbox_capacity_unavailable,
   * 504 sandbox_placement_timeout. Other endpoints send none unless given.
   */
  errorCode?: string;
}

/** Faults of envd traffic (E2B's proxy in front of the in-sandbox daemon). */
export type EnvdFaultSpec = {
  /** E2B's proxy answers 502 {"code":502,"message":"The sandbox was not found"} though it lives */
  kind: "proxy502";
  /** how many upcoming envd requests get it (default 1; Infinity allowed) */
  times?: number;
  /** only requests to this sandbox (default: any) */
  sandboxId?: string;
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
  /** create body `autoResume.enabled`: traffic to it while paused resumes it */
  autoResume: boolean;
  /** a request is moving it between states right now (E2B's transitional store states) */
  phase?: "pausing" | "killing" | "resuming";
  /** it has a snapshot row (it was paused once): only a kill removes it, a timeout leaves it paused */
  hasSnapshot: boolean;
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
  /**
   * The team's templates, alias -> template ID; a create naming neither an alias nor an ID
   * here answers 404 `template '<x>' not found`. Default: base and python (DEFAULT_TEMPLATES).
   */
  templates?: Record<string, string>;
  /**
   * E2B's concurrency limit (Hobby 20, Pro 100): creates and resumes are refused with 429 (no
   * Retry-After) while running + pausing + killing sandboxes plus pending creates and resumes
   * reach it. Default: unlimited.
   */
  maxConcurrentSandboxes?: number;
  /**
   * Real ms a create, kill, pause or resume spends in its transitional state (being created,
   * killing, pausing, resuming) before it completes; a delay fault adds to it. Default
   * DEFAULT_TRANSITION_MS (a few ms: small, but real, so concurrent requests can meet it).
   */
  transitionMs?: Partial<Record<"create" | "kill" | "pause" | "resume", number>>;
  /** real ms after which the API gives up on a create still in flight (504, no sandbox); default 70 000 */
  createDeadlineMs?: number;
  /**
   * Real ms between background sweeps (expiry, landing, reaping, with their lifecycle events),
   * as E2B's evictor runs on its own; default none: time is applied lazily, on the next request,
   * inspection or `tick()` (which suits a simulated clock).
   */
  tickEveryMs?: number;
  /** emulator-clock ms after which an orphaned VM is reaped (E2B: 60 s grace + 20 s sync); default 80 000 */
  orphanReapMs?: number;
}
