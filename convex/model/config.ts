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
  SANDBOX_RECONCILE_GRACE_MS: z.coerce.number().int().min(1_000).optional(),
  SANDBOX_SWEEP_PAGE_SIZE: int("SANDBOX_SWEEP_PAGE_SIZE", 100, 1, 1_000),
  SANDBOX_KILL_CONCURRENCY: int("SANDBOX_KILL_CONCURRENCY", 16, 1, 256),
  SANDBOX_SWEEP_PARALLEL_PAGES: int("SANDBOX_SWEEP_PARALLEL_PAGES", 4, 1, 32),
  // Per-request deadline for E2B control-plane calls; never confuse with a sandbox lifetime.
  E2B_REQUEST_TIMEOUT_MS: ms("E2B_REQUEST_TIMEOUT_MS", 30_000, 100),
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

/** Derive a namespace from the deployment URL ("https://happy-otter-123.convex.cloud" → "happy-otter-123"). */
export function namespaceFromUrl(url: string | undefined): string {
  if (!url) return "local";
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    return "local";
  }
  const first = host
    .split(".")[0]!
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, "-");
  return first && first !== "127" && first !== "localhost" ? first.slice(0, 63) : "local";
}

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
    throw fail("CONFIG_INVALID", "SANDBOX_MAX_LIFETIME_MS: must be at least SANDBOX_IDLE_TIMEOUT_MS");
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
    namespace: e.SANDBOX_NAMESPACE ?? namespaceFromUrl(e.CONVEX_CLOUD_URL),
    bootTimeoutMs: e.SANDBOX_BOOT_TIMEOUT_MS,
    idleTimeoutMs: e.SANDBOX_IDLE_TIMEOUT_MS,
    maxLifetimeMs: e.SANDBOX_MAX_LIFETIME_MS,
    lifetimeSlackMs: e.SANDBOX_LIFETIME_SLACK_MS,
    reconcileGraceMs: Math.max(e.SANDBOX_RECONCILE_GRACE_MS ?? 0, e.SANDBOX_BOOT_TIMEOUT_MS),
    sweepIntervalMs: SWEEP_INTERVAL_MS,
    sweepPageSize: e.SANDBOX_SWEEP_PAGE_SIZE,
    killConcurrency: e.SANDBOX_KILL_CONCURRENCY,
    sweepParallelPages: e.SANDBOX_SWEEP_PARALLEL_PAGES,
    e2bRequestTimeoutMs: e.E2B_REQUEST_TIMEOUT_MS,
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
