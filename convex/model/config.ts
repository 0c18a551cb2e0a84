import { z } from "zod";
import { env } from "../_generated/server";
import { fail } from "./errors";

// Every knob this backend reads, validated once per distinct environment. Convex fixes a
// deployment's env for the life of a process, so in production this parses exactly once;
// tests that change env get a fresh parse.

/**
 * How often both sweeps run. The one source for convex/crons.ts and every lifetime derived from
 * it: a cron's interval is fixed at deploy time, so this is code, not env.
 */
export const SWEEP_INTERVAL_MS = 60_000;

/** Convex's limit on one document, and on one Node action's run time. */
export const DOCUMENT_LIMIT_BYTES = 1024 * 1024;
export const ACTION_LIMIT_MS = 10 * 60_000;
/** Time an action keeps for itself besides E2B calls (mutations, scheduling). */
const ACTION_MARGIN_MS = 30_000;
/** E2B calls a command makes besides running: connect, kill on timeout or cap, and its wait for the end. */
export const COMMAND_OVERHEAD_REQUESTS = 3;
/** Bytes a command record holds besides its output: the command (10,000 chars, ≤ 4 bytes each) and fields. */
const COMMAND_RECORD_OVERHEAD_BYTES = 4 * 10_000 + 16 * 1024;
/** stdout and stderr at their caps plus everything else must fit one document. */
export const MAX_COMMAND_OUTPUT_BYTES_LIMIT = Math.floor(
  (DOCUMENT_LIMIT_BYTES - COMMAND_RECORD_OVERHEAD_BYTES) / 2,
);

const ms = (name: string, def: number, min = 1_000) =>
  z.coerce
    .number({ error: `${name} must be a number of milliseconds` })
    .int(`${name} must be a whole number of milliseconds`)
    .min(min, `${name} must be at least ${min} ms`)
    .max(24 * 3_600_000, `${name} must be at most 24 h (E2B's longest plan lifetime)`)
    .default(def);

const int = (name: string, def: number, min: number, max: number) =>
  z.coerce
    .number({ error: `${name} must be a number` })
    .int(`${name} must be a whole number`)
    .min(min, `${name} must be at least ${min}`)
    .max(max, `${name} must be at most ${max}`)
    .default(def);

const envSchema = z.object({
  E2B_API_KEY: z.string().optional(),
  SANDBOX_TEMPLATES: z
    .string()
    .default("base")
    .transform((s) =>
      s
        .split(",")
        .map((t) => t.trim())
        .filter(Boolean),
    )
    .pipe(
      z
        .array(z.string().regex(/^[\w./:-]{1,128}$/, "SANDBOX_TEMPLATES holds an invalid template name"))
        .min(1, "SANDBOX_TEMPLATES must name at least one template"),
    ),
  SANDBOX_NAMESPACE: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "SANDBOX_NAMESPACE must be 1-63 chars of a-z, 0-9, _ or -")
    .optional(),
  CONVEX_CLOUD_URL: z.string().optional(),
  SANDBOX_BOOT_TIMEOUT_MS: ms("SANDBOX_BOOT_TIMEOUT_MS", 60_000),
  SANDBOX_IDLE_TIMEOUT_MS: ms("SANDBOX_IDLE_TIMEOUT_MS", 10 * 60_000),
  SANDBOX_MAX_LIFETIME_MS: ms("SANDBOX_MAX_LIFETIME_MS", 60 * 60_000),
  // How long after a sandbox's last sign of life E2B may keep it beyond the idle timeout.
  SANDBOX_LIFETIME_SLACK_MS: ms("SANDBOX_LIFETIME_SLACK_MS", 2 * 60_000),
  // A list can lag an in-flight create: untracked sandboxes younger than this are spared.
  SANDBOX_RECONCILE_GRACE_MS: z.coerce
    .number({ error: "SANDBOX_RECONCILE_GRACE_MS must be a number of milliseconds" })
    .int("SANDBOX_RECONCILE_GRACE_MS must be a whole number of milliseconds")
    .min(1_000, "SANDBOX_RECONCILE_GRACE_MS must be at least 1000 ms")
    .optional(),
  SANDBOX_SWEEP_PAGE_SIZE: int("SANDBOX_SWEEP_PAGE_SIZE", 100, 1, 1_000),
  SANDBOX_KILL_CONCURRENCY: int("SANDBOX_KILL_CONCURRENCY", 16, 1, 256),
  SANDBOX_SWEEP_PARALLEL_PAGES: int("SANDBOX_SWEEP_PARALLEL_PAGES", 4, 1, 32),
  // Per-request deadline for E2B control-plane calls; never confuse with a sandbox lifetime.
  // E2B itself works on a request for at most 70 s: waiting longer buys nothing.
  E2B_REQUEST_TIMEOUT_MS: int("E2B_REQUEST_TIMEOUT_MS", 30_000, 100, 70_000),
  // The longest lifetime E2B's plan allows a sandbox (Hobby 1 h, Pro 24 h): no value sent exceeds it.
  E2B_PLAN_MAX_LIFETIME_MS: ms("E2B_PLAN_MAX_LIFETIME_MS", 60 * 60_000, 60_000),
  SANDBOX_MAX_ACTIVE_PER_USER: int("SANDBOX_MAX_ACTIVE_PER_USER", 3, 1, 1_000),
  SANDBOX_STARTS_PER_MINUTE_PER_USER: int("SANDBOX_STARTS_PER_MINUTE_PER_USER", 10, 1, 10_000),
  E2B_CREATES_PER_SECOND: z.coerce
    .number({ error: "E2B_CREATES_PER_SECOND must be a number" })
    .positive("E2B_CREATES_PER_SECOND must be > 0")
    .max(1_000)
    .default(1),
  SANDBOX_HEARTBEAT_WRITE_INTERVAL_MS: ms("SANDBOX_HEARTBEAT_WRITE_INTERVAL_MS", 15_000, 0),
  SANDBOX_COMMAND_TIMEOUT_MS: ms("SANDBOX_COMMAND_TIMEOUT_MS", 60_000),
  SANDBOX_COMMAND_OUTPUT_MAX_BYTES: int(
    "SANDBOX_COMMAND_OUTPUT_MAX_BYTES",
    64 * 1024,
    1,
    MAX_COMMAND_OUTPUT_BYTES_LIMIT,
  ),
  SANDBOX_MAX_QUEUED_STARTS_PER_USER: int("SANDBOX_MAX_QUEUED_STARTS_PER_USER", 1, 1, 100),
  SANDBOX_RETENTION_DAYS: int("SANDBOX_RETENTION_DAYS", 30, 1, 3_650),
  SANDBOX_IDLE_ACTION: z
    .enum(["kill", "pause"], { error: "SANDBOX_IDLE_ACTION must be kill or pause" })
    .default("kill"),
  SANDBOX_PAUSE_AFTER_IDLE_MS: ms("SANDBOX_PAUSE_AFTER_IDLE_MS", 5 * 60_000),
  SANDBOX_PAUSED_RETENTION_MS: z.coerce
    .number({ error: "SANDBOX_PAUSED_RETENTION_MS must be a number of milliseconds" })
    .int("SANDBOX_PAUSED_RETENTION_MS must be a whole number of milliseconds")
    .min(60_000, "SANDBOX_PAUSED_RETENTION_MS must be at least 60000 ms")
    .max(30 * 24 * 3_600_000, "SANDBOX_PAUSED_RETENTION_MS must be at most 30 days")
    .default(24 * 3_600_000),
});

export type Config = {
  e2bApiKey: string | undefined;
  templates: string[];
  namespace: string;
  bootTimeoutMs: number;
  idleTimeoutMs: number;
  maxLifetimeMs: number;
  lifetimeSlackMs: number;
  reconcileGraceMs: number;
  sweepIntervalMs: number;
  sweepPageSize: number;
  killConcurrency: number;
  sweepParallelPages: number;
  e2bRequestTimeoutMs: number;
  planMaxLifetimeMs: number;
  maxActivePerUser: number;
  startsPerMinutePerUser: number;
  createsPerSecond: number;
  heartbeatWriteIntervalMs: number;
  commandTimeoutMs: number;
  commandOutputMaxBytes: number;
  maxQueuedStartsPerUser: number;
  retentionMs: number;
  idleAction: "kill" | "pause";
  pauseAfterIdleMs: number;
  pausedRetentionMs: number;
};

const KEYS = Object.keys(envSchema.shape) as (keyof typeof envSchema.shape)[];

let cached: { key: string; config: Config } | undefined;

/**
 * The default namespace, derived from the WHOLE deployment URL so that no two deployments share
 * one: a `*.convex.cloud` deployment keeps its (globally unique) name, "happy-otter-123"; any
 * other public host keeps host and port ("convex-a-com", "10-1-2-3-3210" is refused, see below).
 * Loopback, private, link-local and single-label hosts, or no URL at all, name no unique
 * deployment (two developers' `127.0.0.1:3210` share one E2B key): `undefined`, and getConfig
 * then refuses to run until SANDBOX_NAMESPACE is set.
 */
export function namespaceFromUrl(url: string | undefined): string | undefined {
  if (!url) return undefined;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  const host = u.hostname.toLowerCase().replace(/^\[|\]$/g, "");
  const cloud = /^([a-z0-9-]+)\.(?:[a-z0-9-]+\.)*convex\.cloud$/.exec(host);
  if (cloud) return cloud[1]!.slice(0, 63);
  if (!host.includes(".") && !host.includes(":")) return undefined; // "localhost", a container name
  if (isNonUniqueAddress(host) || host.endsWith(".local") || host.endsWith(".localhost")) return undefined;
  const full = (u.port ? `${host}-${u.port}` : host).replace(/[^a-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "");
  if (full.length <= 63) return full;
  // Too long for a tag value we accept: a readable prefix and a hash of the whole.
  return `${full.slice(0, 54)}-${fnv1a(full)}`;
}

/** IPv4/IPv6 addresses that many unrelated machines use: loopback, private, link-local, unspecified. */
function isNonUniqueAddress(host: string): boolean {
  const v4 = /^(\d+)\.(\d+)\.\d+\.\d+$/.exec(host);
  if (v4) {
    const a = Number(v4[1]);
    const b = Number(v4[2]);
    return (
      a === 0 ||
      a === 10 ||
      a === 127 ||
      (a === 100 && b >= 64 && b < 128) ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b < 32) ||
      (a === 192 && b === 168)
    );
  }
  if (host.includes(":")) return host === "::" || host === "::1" || /^(fc|fd|fe8|fe9|fea|feb)/.test(host);
  return false;
}

/** 8 hex chars of FNV-1a: a stable, dependency-free hash (not a security boundary). */
function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/**
 * How long E2B may keep working on a create after receiving it (its API's request deadline):
 * a create we gave up on can still land this late.
 */
export const E2B_CREATE_DEADLINE_MS = 70_000;
/** A start waits at most this long for a global create slot; beyond it, it is refused (ms). */
export const MAX_CREATE_WAIT_MS = 5_000;
/** `withDeadline` stops waiting this long after the SDK's own request timeout should have fired. */
export const DEADLINE_SLACK_MS = 5_000;
/** What a Node action may spend on E2B calls: its 10 minutes less room for its own mutations. */
export const ACTION_BUDGET_MS = 8 * 60_000;
/** A kill by tag: one list call, then at most this many kills, one after another. */
export const TAG_KILLS_PER_ATTEMPT = 2;
/** The longest one by-tag kill can take, in E2B calls. */
export const TAG_KILL_CALLS = 1 + TAG_KILLS_PER_ATTEMPT;

/** The longest one E2B call can hold an action: its request timeout plus our deadline's slack. */
export function callBoundMs(c: Pick<Config, "e2bRequestTimeoutMs">): number {
  return c.e2bRequestTimeoutMs + DEADLINE_SLACK_MS;
}

/**
 * The shortest safe grace window: a run without a sandbox id may be confirmed empty only once
 * every create it made has certainly landed or died — its wait for a create slot, plus E2B's
 * server-side create deadline (it keeps working after we gave up), plus our own request
 * deadline (a create can reach E2B as late as our timeout).
 */
export function graceFloorMs(c: Pick<Config, "e2bRequestTimeoutMs">): number {
  return MAX_CREATE_WAIT_MS + E2B_CREATE_DEADLINE_MS + callBoundMs(c);
}

const invalid = (message: string) => fail("CONFIG_INVALID", message);

export function getConfig(): Config {
  const raw: Record<string, string | undefined> = {};
  for (const k of KEYS) raw[k] = env[k] === "" ? undefined : env[k];
  const key = JSON.stringify(raw);
  if (cached?.key === key) return cached.config;

  const parsed = envSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? "environment");
    // Names the variable, never echoes its value (it could be a secret).
    throw fail("CONFIG_INVALID", `${variable}: ${issue.message}`);
  }
  const e = parsed.data;
  if (e.SANDBOX_MAX_LIFETIME_MS < e.SANDBOX_IDLE_TIMEOUT_MS) {
    throw invalid("SANDBOX_MAX_LIFETIME_MS: must be at least SANDBOX_IDLE_TIMEOUT_MS");
  }
  const namespace = e.SANDBOX_NAMESPACE ?? namespaceFromUrl(e.CONVEX_CLOUD_URL);
  if (namespace === undefined) {
    throw invalid(
      "SANDBOX_NAMESPACE: must be set: no namespace unique to this deployment can be derived from its URL " +
        "(local, private or missing); deployments sharing a namespace and an E2B key kill each other's sandboxes",
    );
  }
  const floor = graceFloorMs({ e2bRequestTimeoutMs: e.E2B_REQUEST_TIMEOUT_MS });
  if (e.SANDBOX_RECONCILE_GRACE_MS !== undefined && e.SANDBOX_RECONCILE_GRACE_MS < floor) {
    throw invalid(
      `SANDBOX_RECONCILE_GRACE_MS: must be at least ${floor} ms (E2B's ${E2B_CREATE_DEADLINE_MS} ms create ` +
        `deadline + the ${MAX_CREATE_WAIT_MS} ms create-slot wait + E2B_REQUEST_TIMEOUT_MS + ${DEADLINE_SLACK_MS} ms)`,
    );
  }
  // Every lifetime we send E2B must be one its plan accepts (above it, create and connect answer 400).
  const plan = e.E2B_PLAN_MAX_LIFETIME_MS;
  for (const [name, value] of [
    ["SANDBOX_MAX_LIFETIME_MS", e.SANDBOX_MAX_LIFETIME_MS],
    ["SANDBOX_IDLE_TIMEOUT_MS", e.SANDBOX_IDLE_TIMEOUT_MS + e.SANDBOX_LIFETIME_SLACK_MS],
    ["SANDBOX_BOOT_TIMEOUT_MS", e.SANDBOX_BOOT_TIMEOUT_MS + SWEEP_INTERVAL_MS],
  ] as const) {
    if (value > plan) {
      throw invalid(`${name}: the E2B lifetime it implies (${value} ms) exceeds E2B_PLAN_MAX_LIFETIME_MS`);
    }
  }
  // Every action must finish inside a Node action's 10 minutes even if every E2B call hangs.
  const call = callBoundMs({ e2bRequestTimeoutMs: e.E2B_REQUEST_TIMEOUT_MS });
  const startCalls = MAX_CREATE_WAIT_MS + (1 + TAG_KILL_CALLS + 2) * call; // create, by-tag kill, extend, kill
  if (startCalls > ACTION_BUDGET_MS) {
    throw invalid(`E2B_REQUEST_TIMEOUT_MS: a start's E2B calls could outlast an action's time limit`);
  }
  // A command (connect, run, kill, record) must fit one Node action.
  const commandBudgetMs = e.SANDBOX_COMMAND_TIMEOUT_MS + COMMAND_OVERHEAD_REQUESTS * e.E2B_REQUEST_TIMEOUT_MS;
  if (commandBudgetMs > ACTION_LIMIT_MS - ACTION_MARGIN_MS) {
    throw fail(
      "CONFIG_INVALID",
      `SANDBOX_COMMAND_TIMEOUT_MS: plus ${COMMAND_OVERHEAD_REQUESTS} × E2B_REQUEST_TIMEOUT_MS must be at most ${
        ACTION_LIMIT_MS - ACTION_MARGIN_MS
      } ms (a Node action runs at most 10 minutes)`,
    );
  }
  // And when the command path says "not found": a probe and a kill, each up to its call bound.
  if (e.SANDBOX_COMMAND_TIMEOUT_MS + 4 * call > ACTION_BUDGET_MS) {
    throw invalid(
      `SANDBOX_COMMAND_TIMEOUT_MS: with E2B_REQUEST_TIMEOUT_MS, a command could outlast an action's time limit ` +
        `(at most ${ACTION_BUDGET_MS - 4 * call} ms)`,
    );
  }
  // The pause must come before the idle kill and before E2B's own lifetime (idle timeout + slack).
  // Under the kill policy with a short idle timeout and no explicit setting, the default yields.
  let pauseAfterIdleMs = e.SANDBOX_PAUSE_AFTER_IDLE_MS;
  const pauseConfigured = raw.SANDBOX_PAUSE_AFTER_IDLE_MS !== undefined || e.SANDBOX_IDLE_ACTION === "pause";
  if (!pauseConfigured)
    pauseAfterIdleMs = Math.min(pauseAfterIdleMs, Math.floor(e.SANDBOX_IDLE_TIMEOUT_MS / 2));
  if (pauseAfterIdleMs >= e.SANDBOX_IDLE_TIMEOUT_MS) {
    throw fail("CONFIG_INVALID", "SANDBOX_PAUSE_AFTER_IDLE_MS: must be less than SANDBOX_IDLE_TIMEOUT_MS");
  }
  const config: Config = {
    e2bApiKey: e.E2B_API_KEY,
    templates: e.SANDBOX_TEMPLATES,
    namespace,
    bootTimeoutMs: e.SANDBOX_BOOT_TIMEOUT_MS,
    idleTimeoutMs: e.SANDBOX_IDLE_TIMEOUT_MS,
    maxLifetimeMs: e.SANDBOX_MAX_LIFETIME_MS,
    lifetimeSlackMs: e.SANDBOX_LIFETIME_SLACK_MS,
    reconcileGraceMs: Math.max(e.SANDBOX_RECONCILE_GRACE_MS ?? floor, e.SANDBOX_BOOT_TIMEOUT_MS),
    sweepIntervalMs: SWEEP_INTERVAL_MS,
    sweepPageSize: e.SANDBOX_SWEEP_PAGE_SIZE,
    killConcurrency: e.SANDBOX_KILL_CONCURRENCY,
    sweepParallelPages: e.SANDBOX_SWEEP_PARALLEL_PAGES,
    e2bRequestTimeoutMs: e.E2B_REQUEST_TIMEOUT_MS,
    planMaxLifetimeMs: plan,
    maxActivePerUser: e.SANDBOX_MAX_ACTIVE_PER_USER,
    startsPerMinutePerUser: e.SANDBOX_STARTS_PER_MINUTE_PER_USER,
    createsPerSecond: e.E2B_CREATES_PER_SECOND,
    heartbeatWriteIntervalMs: e.SANDBOX_HEARTBEAT_WRITE_INTERVAL_MS,
    commandTimeoutMs: e.SANDBOX_COMMAND_TIMEOUT_MS,
    commandOutputMaxBytes: e.SANDBOX_COMMAND_OUTPUT_MAX_BYTES,
    maxQueuedStartsPerUser: e.SANDBOX_MAX_QUEUED_STARTS_PER_USER,
    retentionMs: e.SANDBOX_RETENTION_DAYS * 24 * 3_600_000,
    idleAction: e.SANDBOX_IDLE_ACTION,
    pauseAfterIdleMs,
    pausedRetentionMs: e.SANDBOX_PAUSED_RETENTION_MS,
  };
  cached = { key, config };
  return config;
}

/** E2B lifetime a sandbox gets at creation: enough to boot, short enough that a lost one dies soon. */
export function bootLifetimeMs(c: Config): number {
  return c.bootTimeoutMs + c.sweepIntervalMs;
}

/** E2B lifetime of a running sandbox, counted from its last sign of life. */
export function runningLifetimeMs(c: Config): number {
  return c.idleTimeoutMs + c.lifetimeSlackMs;
}
