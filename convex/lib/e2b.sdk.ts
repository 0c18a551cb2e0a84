// The one module that talks to E2B: every wrapper returns an outcome, none throws an E2B failure
// (failures.ts says what a failure becomes for a caller; util.ts holds the generic helpers). It imports the e2b SDK (Node built-ins), so only "use node"
// actions import it; the two dots in its name keep the Convex bundler from treating it as an
// entry point of its own (a "use node" file may export only actions).
import { env } from "../_generated/server";
import {
  AuthenticationError,
  type CommandHandle,
  CommandExitError,
  ConnectionConfig,
  NotFoundError,
  RateLimitError,
  Sandbox,
  SandboxError,
  ServiceBusyError,
  TimeoutError as E2BTimeoutError,
} from "e2b";
import { ConvexError } from "convex/values";
import { type Config, DEADLINE_SLACK_MS, TAG_KILLS_PER_ATTEMPT } from "../model/config";
import { fail, maskSecrets, sandboxErrorCode } from "../model/errors";
import type { KillOutcome } from "../model/status";
import { type E2BFailure, killFailed, summary } from "./failures";
import { BoundedOutput, drainLimitBytes } from "./util";

import { TAG_NAMESPACE, TAG_RUN_ID } from "../model/tags";

export { TAG_NAMESPACE, TAG_RUN_ID };

/**
 * Maps every E2B SDK error class once, here. The failure's message is a fixed summary (kind and
 * HTTP status), so whatever stores or returns it never carries E2B's text; an unexpected
 * failure's own text goes to the log only, with secrets masked.
 */
export function classifyE2BError(err: unknown): E2BFailure {
  if (err instanceof ConvexError) {
    // Only our own configuration check throws a ConvexError before a call: nothing was sent.
    return sandboxErrorCode(err) === "CONFIG_INVALID"
      ? { kind: "auth", message: "the deployment's E2B configuration is invalid", refused: true }
      : { kind: "other", message: summary("other", undefined), refused: false };
  }
  const status = (err as { statusCode?: number } | null)?.statusCode;
  const retryAfterMs = (err as { retryAfterMs?: number } | null)?.retryAfterMs;
  const f = (kind: E2BFailure["kind"], refused: boolean, httpStatus = status): E2BFailure => ({
    kind,
    ...(httpStatus !== undefined ? { status: httpStatus } : {}),
    message: summary(kind, httpStatus),
    refused,
  });
  if (err instanceof RateLimitError) return statusFailure(429, retryAfterMs);
  if (err instanceof AuthenticationError) return f("auth", true, status ?? 401);
  if (err instanceof NotFoundError || status === 404) return f("not_found", true, 404);
  if (err instanceof ServiceBusyError) return statusFailure(503);
  if (status !== undefined && [401, 403, 429, 503].includes(status))
    return statusFailure(status, retryAfterMs);
  if (err instanceof SandboxError && status !== undefined) {
    if (status >= 400 && status < 500) return logged(err, statusFailure(status));
    return f("unavailable", false);
  }
  const name = (err as { name?: string } | null)?.name;
  if (name === "TimeoutError" || name === "AbortError") return f("timeout", false);
  // undici's "fetch failed": connection refused or reset; the request may have been applied.
  if (err instanceof TypeError) return f("unavailable", false);
  return logged(err, f("other", false));
}

/**
 * What an HTTP status from E2B's control plane says, where no SDK error class says more: 401/403
 * auth, 429 rate limited, other 4xx invalid — all refusals (E2B did nothing); 5xx unavailable,
 * never a refusal (503 says "nothing was changed", but a proxy in front may say it after the
 * fact).
 */
function statusFailure(status: number, retryAfterMs?: number): E2BFailure {
  const kind =
    status === 401 || status === 403
      ? "auth"
      : status === 429
        ? "rate_limited"
        : status >= 500
          ? "unavailable"
          : "invalid";
  return {
    kind,
    status,
    message: summary(kind, status),
    refused: status < 500,
    ...(kind === "rate_limited" && retryAfterMs ? { retryAfterMs } : {}),
  };
}

/** Unexpected failures are worth a log line: E2B's own words, masked, never stored. */
function logged(err: unknown, failure: E2BFailure): E2BFailure {
  const raw = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  console.warn(`E2B call failed (${failure.message}): ${maskSecrets(raw.slice(0, 500), [env.E2B_API_KEY])}`);
  return failure;
}

/** Throws CONFIG_INVALID when the key is missing; the start path checks this before any write. */
export function requireApiKey(c: Config): string {
  if (!c.e2bApiKey)
    throw fail("CONFIG_INVALID", "E2B_API_KEY: is required (npx convex env set E2B_API_KEY …)");
  return c.e2bApiKey;
}

let warnedNoApiKey = false;

/**
 * True while E2B_API_KEY is unset (a deployment pushed before its key was set): the sweeps then
 * do nothing at all — no E2B call, no write, no kill recorded as owed — and say so once per
 * process instead of failing every minute.
 */
export function sweepsIdleWithoutKey(c: Config): boolean {
  if (c.e2bApiKey) return false;
  if (!warnedNoApiKey) {
    warnedNoApiKey = true;
    console.warn(
      "E2B_API_KEY is not set: the sweep and the reconciler do nothing until it is (npx convex env set E2B_API_KEY …)",
    );
  }
  return true;
}

/**
 * Bounds a control-plane call by its request timeout even if the SDK's own deadline does not
 * fire (one slow call must never stall a sweep page). At the deadline the HTTP request itself is
 * aborted (the SDK passes `signal` to fetch), so no socket is left waiting behind us.
 */
function withDeadline<T>(c: Config, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new Error(`no answer from E2B within ${c.e2bRequestTimeoutMs} ms`);
      err.name = "TimeoutError";
      abort.abort(err);
      reject(err);
    }, c.e2bRequestTimeoutMs + DEADLINE_SLACK_MS);
  });
  return Promise.race([call(abort.signal), deadline]).finally(() => clearTimeout(timer));
}

/** E2B's list endpoint refuses a `limit` outside 1..100 with 400 (its OpenAPI paginationLimit). */
export const E2B_LIST_MAX_LIMIT = 100;

/** A lifetime E2B accepts: at least 1 s, at most the plan's maximum (above it, create and connect answer 400). */
export function lifetimeWithinPlan(c: Config, lifetimeMs: number): number {
  return Math.min(Math.max(1_000, Math.round(lifetimeMs)), c.planMaxLifetimeMs);
}

function connection(c: Config) {
  requireApiKey(c);
  // requestTimeoutMs bounds the HTTP call; the sandbox's lifetime is a separate timeoutMs.
  // retries: 0 — the SDK's 429 retry clones each request, and on Node 20 a cloned request can
  // lose its abort signal after a GC (nodejs/undici#4068), hanging far past requestTimeoutMs;
  // 429s are backed off by this backend instead (the create throttle, the kill back-off).
  return { apiKey: c.e2bApiKey!, requestTimeoutMs: c.e2bRequestTimeoutMs, retries: 0 };
}

export type CreateOutcome = { ok: true; sandboxId: string } | { ok: false; failure: E2BFailure };

/**
 * Creates a sandbox tagged with this deployment's namespace and the run's id, with a finite
 * E2B lifetime so that a sandbox nobody hears about dies on its own. Throws only CONFIG_INVALID
 * (no API key), before any call; every E2B failure is returned.
 */
export async function createTaggedSandbox(
  c: Config,
  args: { template: string; runId: string; lifetimeMs: number },
): Promise<CreateOutcome> {
  const conn = connection(c);
  try {
    const sandbox = await withDeadline(c, (signal) =>
      Sandbox.create(args.template, {
        ...conn,
        signal,
        timeoutMs: lifetimeWithinPlan(c, args.lifetimeMs),
        // Kill at the end of the lifetime, explicitly: the SDK documents kill as only the current
        // default, and this lifetime is the dead-man switch of the whole design.
        lifecycle: { onTimeout: "kill" },
        metadata: { [TAG_NAMESPACE]: c.namespace, [TAG_RUN_ID]: args.runId },
      }),
    );
    return { ok: true, sandboxId: sandbox.sandboxId };
  } catch (err) {
    const f = classifyE2BError(err);
    // A 404 to a create is about the template (E2B: "template '<x>' not found"), never a sandbox.
    return { ok: false, failure: f.kind === "not_found" ? { ...f, kind: "invalid" } : f };
  }
}

/**
 * Kills one sandbox by id and reports what happened; never throws. Uses the static kill:
 * `connect` would resume a paused sandbox and reset its lifetime first.
 */
export async function killSandboxSafely(c: Config, sandboxId: string): Promise<KillOutcome> {
  try {
    const existed = await withDeadline(c, (signal) => Sandbox.kill(sandboxId, { ...connection(c), signal }));
    return { outcome: existed ? "killed" : "gone" };
  } catch (err) {
    const f = classifyE2BError(err);
    return f.kind === "not_found" ? { outcome: "gone" } : killFailed(f);
  }
}

export type ListedSandbox = {
  sandboxId: string;
  runIdTag: string | undefined;
  startedAt: number; // ms
  state: "running" | "paused";
};

/**
 * One page of this namespace's sandboxes (running and paused), optionally narrowed to a run. The
 * server filters by metadata; every tag is checked again here (namespace and run id), so that
 * a filter E2B applies only in part can never make us touch another deployment's or run's sandbox.
 */
export async function listTaggedSandboxes(
  c: Config,
  opts: { runId?: string; nextToken?: string; limit?: number },
): Promise<{ ok: true; items: ListedSandbox[]; nextToken?: string } | { ok: false; failure: E2BFailure }> {
  try {
    const metadata: Record<string, string> = { [TAG_NAMESPACE]: c.namespace };
    if (opts.runId) metadata[TAG_RUN_ID] = opts.runId;
    const paginator = Sandbox.list({
      ...connection(c),
      query: { metadata, state: ["running", "paused"] },
      limit: Math.min(Math.max(1, Math.floor(opts.limit ?? E2B_LIST_MAX_LIMIT)), E2B_LIST_MAX_LIMIT),
      ...(opts.nextToken ? { nextToken: opts.nextToken } : {}),
    });
    const page = await withDeadline(c, (signal) => paginator.nextItems({ ...connection(c), signal }));
    const items = page
      .filter(
        (s) =>
          s.metadata?.[TAG_NAMESPACE] === c.namespace &&
          (opts.runId === undefined || s.metadata?.[TAG_RUN_ID] === opts.runId),
      )
      .map((s) => ({
        sandboxId: s.sandboxId,
        runIdTag: s.metadata?.[TAG_RUN_ID],
        startedAt: s.startedAt.getTime(),
        state: s.state as "running" | "paused",
      }));
    return { ok: true, items, ...(paginator.nextToken ? { nextToken: paginator.nextToken } : {}) };
  } catch (err) {
    return { ok: false, failure: classifyE2BError(err) };
  }
}

/**
 * Kills every sandbox tagged with this run (for runs whose sandboxId was never learned).
 * "killed" means the list succeeded, was complete, and every match is dead; `ids` are the
 * matches (both tags checked here). Bounded so that it fits any action's time budget: one list page and at most
 * TAG_KILLS_PER_ATTEMPT kills, one after another (TAG_KILL_CALLS calls in all). Anything beyond
 * (more matches, another page) is reported as a failure, so the kill stays owed and is retried.
 */
export async function killSandboxesByTag(
  c: Config,
  runId: string,
): Promise<{ kill: KillOutcome; ids: string[] }> {
  const page = await listTaggedSandboxes(c, { runId });
  if (!page.ok) return { kill: killFailed(page.failure), ids: [] };
  const ids = page.items.map((s) => s.sandboxId);
  const outcomes: KillOutcome[] = [];
  for (const id of ids.slice(0, TAG_KILLS_PER_ATTEMPT)) outcomes.push(await killSandboxSafely(c, id));
  const firstFailure = outcomes.find((o) => o.outcome === "failed");
  if (firstFailure) return { kill: firstFailure, ids };
  if (ids.length > TAG_KILLS_PER_ATTEMPT || page.nextToken !== undefined) {
    const more: KillOutcome = {
      outcome: "failed",
      kind: "other",
      message: "more sandboxes may carry this run's tag than one attempt kills; retrying",
    };
    return { kill: more, ids };
  }
  return { kill: { outcome: ids.length ? "killed" : "gone" }, ids };
}

/** Kills a run's sandbox: by id when the run learned it, else every sandbox tagged with the run. */
export async function killRunSandbox(
  c: Config,
  run: { runId: string; sandboxId?: string },
): Promise<KillOutcome> {
  return run.sandboxId !== undefined
    ? await killSandboxSafely(c, run.sandboxId)
    : (await killSandboxesByTag(c, run.runId)).kill;
}

export type ExtendOutcome =
  | { outcome: "extended" }
  | { outcome: "gone" }
  | { outcome: "paused" } // E2B answered 404 to setTimeout, but getInfo says it is paused
  | (KillOutcome & { outcome: "failed" });

/**
 * Sets the sandbox's remaining E2B lifetime to `lifetimeMs` from now (the dead-man switch).
 * E2B answers 404 to a paused sandbox too (a snapshot has no lifetime), so a 404 is only "gone"
 * once `confirmSandboxGone` says so; a paused one reports a failed extension, retried later.
 */
export async function setSandboxLifetime(
  c: Config,
  sandboxId: string,
  lifetimeMs: number,
): Promise<ExtendOutcome> {
  try {
    const ms = lifetimeWithinPlan(c, lifetimeMs);
    await withDeadline(c, (signal) => Sandbox.setTimeout(sandboxId, ms, { ...connection(c), signal }));
    return { outcome: "extended" };
  } catch (err) {
    const f = classifyE2BError(err);
    if (f.kind !== "not_found") return killFailed(f) as ExtendOutcome;
    const seen = await confirmSandboxGone(c, sandboxId);
    if (seen === "gone") return { outcome: "gone" };
    return seen === "alive"
      ? { outcome: "paused" }
      : { outcome: "failed", kind: "other", message: f.message };
  }
}

/**
 * Whether a sandbox is certainly gone, on the control plane's word only. getInfo 200 (running or
 * paused): "alive". getInfo 404 — missing, or being killed — is then confirmed by a kill of our
 * own (kill first, then record): 204 or 404 is "gone" (a kill that E2B accepted ends the VM, or
 * its orphan reaper does within about 80 s). Anything else: "unknown", and nothing is recorded.
 * Never touches the sandbox's lifetime (unlike connect). For sandboxes whose create returned:
 * a create still in flight also answers 404.
 */
export async function confirmSandboxGone(
  c: Config,
  sandboxId: string,
): Promise<"alive" | "gone" | "unknown"> {
  try {
    await withDeadline(c, (signal) => Sandbox.getInfo(sandboxId, { ...connection(c), signal }));
    return "alive";
  } catch (err) {
    if (classifyE2BError(err).kind !== "not_found") return "unknown";
  }
  const kill = await killSandboxSafely(c, sandboxId);
  return kill.outcome === "failed" ? "unknown" : "gone";
}

export type CommandOutcome =
  | {
      /** finished: exited on its own; timed_out / output_limit: killed by us for that reason. */
      outcome: "finished" | "timed_out" | "output_limit";
      exitCode?: number;
      stdout: string;
      stderr: string;
      stdoutTruncated: boolean;
      stderrTruncated: boolean;
      /** Bytes the command printed on each stream, kept or not. */
      stdoutBytes: number;
      stderrBytes: number;
      durationMs: number;
      sandboxExpiresAt: number; // ms: connecting gave the sandbox this lifetime (never shortens it)
    }
  // "not found" from connect or from the data plane (envd, E2B's proxy): a suspicion, never proof.
  // A proxy's intermittent 502 or a user killing envd says it while the sandbox lives on; the
  // caller asks the control plane (confirmSandboxGone) before it records anything.
  | { outcome: "gone" }
  | { outcome: "failed"; failure: E2BFailure };

/**
 * The SDK's command handle appends every chunk to its own `stdout`/`stderr` strings as well as
 * calling onStdout/onStderr, so a flood would grow memory however little we keep. Turning those
 * two fields into sinks bounds it. Returns false if this SDK version keeps them differently; the
 * caller then stops the command as soon as either stream passes its cap.
 */
function discardHandleBuffers(handle: CommandHandle): boolean {
  const fields = ["_stdout", "_stderr"] as const;
  const ok = fields.every((f) => {
    const d = Object.getOwnPropertyDescriptor(handle, f);
    return d !== undefined && d.configurable === true && typeof d.value === "string";
  });
  if (!ok) return false;
  for (const f of fields)
    Object.defineProperty(handle, f, { get: () => "", set: () => {}, configurable: true });
  return true;
}

/** Connects to a running sandbox for a command; "not found" stays a suspicion (see CommandOutcome). */
async function connectForCommand(
  c: Config,
  sandboxId: string,
  lifetimeMs: number,
): Promise<{ sandbox: Sandbox } | { outcome: "gone" } | { outcome: "failed"; failure: E2BFailure }> {
  try {
    const sandbox = await withDeadline(c, (signal) =>
      Sandbox.connect(sandboxId, { ...connection(c), signal, timeoutMs: lifetimeWithinPlan(c, lifetimeMs) }),
    );
    return { sandbox };
  } catch (err) {
    const f = classifyE2BError(err);
    return f.kind === "not_found" ? { outcome: "gone" } : { outcome: "failed", failure: f };
  }
}

/** What a command's own failure (not one we caused by stopping it) says about the command. */
function commandFailure(
  err: unknown,
): "timed_out" | { outcome: "gone" } | { outcome: "failed"; failure: E2BFailure } {
  if (err instanceof E2BTimeoutError && !/killed|not found/i.test(err.message)) return "timed_out";
  const f = classifyE2BError(err);
  const gone =
    f.kind === "not_found" || (err instanceof Error && /sandbox was killed|not found/i.test(err.message));
  return gone ? { outcome: "gone" } : { outcome: "failed", failure: f };
}

/**
 * Output of one command, kept bounded: at most `maxBytes` of each stream, and a stop once both
 * streams are past their caps, or once either is when the SDK's own buffers cannot be turned
 * off, or once the two together pass the drain allowance (the SDK's transport holds each message
 * it has read until the stream ends: ~140 MB of buffers measured 20 s into a 300 MB flood).
 */
function boundedStreams(maxBytes: number, stop: () => void) {
  const stdout = new BoundedOutput(maxBytes);
  const stderr = new BoundedOutput(maxBytes);
  let bounded = true;
  const check = () => {
    if (stdout.overCap && stderr.overCap) stop();
    else if (!bounded && (stdout.overCap || stderr.overCap)) stop();
    else if (stdout.bytes + stderr.bytes > drainLimitBytes(maxBytes)) stop();
  };
  return {
    stdout,
    stderr,
    check,
    onStdout: (d: string) => {
      stdout.push(d);
      check();
    },
    onStderr: (d: string) => {
      stderr.push(d);
      check();
    },
    setBounded: (b: boolean) => void (bounded = b),
  };
}

/**
 * Runs a shell command in a running sandbox. Connecting counts as activity: it extends the
 * sandbox's lifetime to `lifetimeMs` from now if that is longer (E2B never shortens it here).
 * Memory stays bounded whatever the command prints (boundedStreams): the process is killed once
 * the output is past its caps (`output_limit`) or the time is up (`timed_out`).
 * The access token that connect returns stays in memory; it is never stored or returned.
 */
export async function runSandboxCommand(
  c: Config,
  args: { sandboxId: string; command: string; timeoutMs: number; lifetimeMs: number },
): Promise<CommandOutcome> {
  const started = Date.now();
  const startedReal = performance.now();
  const connected = await connectForCommand(c, args.sandboxId, args.lifetimeMs);
  if (!("sandbox" in connected)) return connected;
  let stoppedBy: "timed_out" | "output_limit" | undefined;
  let handle: CommandHandle | undefined;
  let killing: Promise<unknown> | undefined;
  const stop = (why: "timed_out" | "output_limit") => {
    if (stoppedBy !== undefined || handle === undefined) return;
    stoppedBy = why;
    // Kill the process, and stop reading at once: whatever the transport has queued is released.
    killing = handle.kill().catch(() => undefined);
    void handle.disconnect();
  };
  const streams = boundedStreams(c.commandOutputMaxBytes, () => stop("output_limit"));
  let timer: ReturnType<typeof setTimeout> | undefined;
  let exitCode: number | undefined;
  try {
    handle = await connected.sandbox.commands.run(args.command, {
      background: true,
      // Our own timer kills at timeoutMs; the stream's deadline is only the backstop.
      timeoutMs: args.timeoutMs + c.e2bRequestTimeoutMs,
      requestTimeoutMs: c.e2bRequestTimeoutMs,
      onStdout: streams.onStdout,
      onStderr: streams.onStderr,
    });
    streams.setBounded(discardHandleBuffers(handle));
    timer = setTimeout(
      () => stop("timed_out"),
      Math.max(0, args.timeoutMs - (performance.now() - startedReal)),
    );
    streams.check();
    exitCode = (await handle.wait()).exitCode;
  } catch (err) {
    if (err instanceof CommandExitError) exitCode = err.exitCode;
    else if (stoppedBy === undefined) {
      const f = commandFailure(err);
      if (f !== "timed_out") return f;
      stoppedBy = f;
    }
  } finally {
    clearTimeout(timer);
    await killing; // bounded by the request timeout; never left dangling past the action
  }
  const { stdout, stderr } = streams;
  return {
    outcome: stoppedBy ?? "finished",
    // A process we killed has no exit code of its own.
    ...(stoppedBy === undefined && exitCode !== undefined ? { exitCode } : {}),
    stdout: stdout.text,
    stderr: stderr.text,
    stdoutTruncated: stdout.overCap,
    stderrTruncated: stderr.overCap,
    stdoutBytes: stdout.bytes,
    stderrBytes: stderr.bytes,
    durationMs: Math.round(performance.now() - startedReal),
    sandboxExpiresAt: started + args.lifetimeMs,
  };
}

export type PauseOutcome =
  | { outcome: "paused" } // 204
  | { outcome: "already_paused" } // 409: E2B holds it paused
  | { outcome: "gone" } // 404: missing or being killed (not proof of death once it ever paused)
  | (KillOutcome & { outcome: "failed" }); // no answer, or an answer that says nothing about its state

/** Asks E2B to pause a sandbox (POST /sandboxes/{id}/pause); never throws. */
export async function pauseSandbox(c: Config, sandboxId: string): Promise<PauseOutcome> {
  try {
    const paused = await withDeadline(c, (signal) => Sandbox.pause(sandboxId, { ...connection(c), signal }));
    return { outcome: paused ? "paused" : "already_paused" };
  } catch (err) {
    const f = classifyE2BError(err);
    return f.kind === "not_found" ? { outcome: "gone" } : (killFailed(f) as PauseOutcome);
  }
}

export type ResumeOutcome =
  | { outcome: "resumed" } // 200 (was running) or 201 (resumed): running, billing, lifetime set
  | { outcome: "gone" } // 404, or 409 "being killed"
  | { outcome: "refused"; failure: E2BFailure } // E2B certainly did not resume it (429, 4xx)
  // E2B's API itself answered 500: its handler returned, so no resume of ours is at work any more
  // (a resume that failed after starting is cleaned up by E2B); it may be paused or running.
  | { outcome: "failed"; failure: E2BFailure }
  // A gateway's 502/503/504, a timeout, a lost answer: E2B may still be resuming it.
  | { outcome: "unknown"; failure: E2BFailure };

/**
 * Resumes a paused sandbox, or extends a running one (POST /v2/sandboxes/{id}/connect with the
 * running lifetime). Safe to repeat: concurrent resumes join one start at E2B.
 */
export async function resumeSandbox(
  c: Config,
  sandboxId: string,
  lifetimeMs: number,
): Promise<ResumeOutcome> {
  try {
    await withDeadline(c, (signal) =>
      Sandbox.connect(sandboxId, { ...connection(c), signal, timeoutMs: lifetimeWithinPlan(c, lifetimeMs) }),
    );
    return { outcome: "resumed" };
  } catch (err) {
    const f = classifyE2BError(err);
    if (f.kind === "not_found" || f.status === 409) return { outcome: "gone" };
    if (f.refused) return { outcome: "refused", failure: f };
    return f.status === 500 ? { outcome: "failed", failure: f } : { outcome: "unknown", failure: f };
  }
}

/** What E2B's control plane says a sandbox is, without touching it (GET /sandboxes/{id}). */
export async function sandboxState(
  c: Config,
  sandboxId: string,
): Promise<"running" | "paused" | "gone" | "unknown"> {
  try {
    const info = await withDeadline(c, (signal) => Sandbox.getInfo(sandboxId, { ...connection(c), signal }));
    return info.state === "paused" ? "paused" : "running";
  } catch (err) {
    return classifyE2BError(err).kind === "not_found" ? "gone" : "unknown";
  }
}

/** This deployment's lifecycle webhook at E2B, as registered. */
export type LifecycleWebhook = {
  name: string;
  url: string;
  events: string[];
  enabled: boolean;
  signatureSecret: string;
};

type ApiCall = { ok: true; json: unknown } | { ok: false; failure: E2BFailure };

/**
 * One call to an E2B control-plane path the SDK does not wrap (`/events/...`): plain fetch to
 * the API URL the SDK itself uses (E2B_API_URL, else E2B's), bounded by the request timeout.
 */
async function apiCall(c: Config, method: string, path: string, body?: unknown): Promise<ApiCall> {
  const apiKey = requireApiKey(c);
  const base = new ConnectionConfig({ apiKey }).apiUrl.replace(/\/+$/, "");
  let res: Response;
  let text: string;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers: {
        "X-API-Key": apiKey,
        ...(body !== undefined ? { "Content-Type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(c.e2bRequestTimeoutMs),
    });
    text = await res.text();
  } catch (err) {
    return { ok: false, failure: classifyE2BError(err) };
  }
  if (!res.ok) return { ok: false, failure: statusFailure(res.status) };
  try {
    return { ok: true, json: text === "" ? null : (JSON.parse(text) as unknown) };
  } catch {
    return {
      ok: false,
      failure: { kind: "other", message: "E2B answered with a body that is not JSON", refused: false },
    };
  }
}

/** E2B's events API pages at most this many events. */
export const E2B_EVENTS_MAX_LIMIT = 100;

/**
 * The team's lifecycle events from the newest back to `since` (ms; with E2B's timestamps), at
 * most `maxPages` pages of E2B's largest size (`GET /events/sandboxes`, newest first). `complete`
 * says whether the read reached `since`; raw objects, parsed by the caller.
 */
export async function readLifecycleEventsSince(
  c: Config,
  since: number,
  maxPages: number,
): Promise<{ ok: true; events: unknown[]; complete: boolean } | { ok: false; failure: E2BFailure }> {
  const events: unknown[] = [];
  for (let page = 0; page < maxPages; page++) {
    const q = `limit=${E2B_EVENTS_MAX_LIMIT}&offset=${page * E2B_EVENTS_MAX_LIMIT}&orderAsc=false`;
    const r = await apiCall(c, "GET", `/events/sandboxes?${q}`);
    if (!r.ok) return r;
    const items = Array.isArray(r.json) ? (r.json as unknown[]) : [];
    events.push(...items);
    const oldest = items.at(-1) as { timestamp?: unknown } | undefined;
    const oldestAt = typeof oldest?.timestamp === "string" ? Date.parse(oldest.timestamp) : Number.NaN;
    if (items.length < E2B_EVENTS_MAX_LIMIT || oldestAt < since) return { ok: true, events, complete: true };
  }
  return { ok: true, events, complete: false };
}

/** Registers the webhook, or updates the one of the same name (or URL): idempotent. */
export async function upsertLifecycleWebhook(
  c: Config,
  want: LifecycleWebhook,
): Promise<{ ok: true; action: "created" | "updated"; id: string } | { ok: false; failure: E2BFailure }> {
  const call = (method: string, path: string, body?: unknown) => apiCall(c, method, path, body);
  const listed = await call("GET", "/events/webhooks");
  if (!listed.ok) return listed;
  const hooks = (Array.isArray(listed.json) ? listed.json : []) as {
    id?: unknown;
    name?: unknown;
    url?: unknown;
  }[];
  const mine = hooks.find((h) => h.name === want.name) ?? hooks.find((h) => h.url === want.url);
  if (mine && typeof mine.id === "string") {
    const patched = await call("PATCH", `/events/webhooks/${encodeURIComponent(mine.id)}`, want);
    return patched.ok ? { ok: true, action: "updated", id: mine.id } : patched;
  }
  const made = await call("POST", "/events/webhooks", want);
  if (!made.ok) return made;
  const id = (made.json as { id?: unknown } | null)?.id;
  return { ok: true, action: "created", id: typeof id === "string" ? id : "" };
}
