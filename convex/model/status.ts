import { v, type Infer } from "convex/values";

/**
 * booting  — run recorded; the sandbox may or may not exist yet (sandboxId once known).
 * running  — sandbox up and handed to the user.
 * stopping — a kill is owed and not yet confirmed (the sweep retries it).
 * stopped / failed — terminal: the sandbox is confirmed killed or gone.
 * pausing  — a pause was asked of E2B and not yet confirmed (the sweep asks again: 204 or 409
 *            both mean paused). Any run that ever entered it may have a snapshot at E2B.
 * paused   — E2B confirmed the pause; the sandbox bills no compute and has no E2B lifetime.
 * resuming — a resume (connect) may be in flight: no kill until it answered or its lease passed.
 */
export const runStatus = v.union(
  v.literal("booting"),
  v.literal("running"),
  v.literal("stopping"),
  v.literal("stopped"),
  v.literal("failed"),
  v.literal("pausing"),
  v.literal("paused"),
  v.literal("resuming"),
);
export type RunStatus = Infer<typeof runStatus>;

export const endReason = v.union(
  v.literal("user"),
  v.literal("idle"),
  v.literal("boot_timeout"),
  v.literal("max_lifetime"),
  v.literal("start_failed"),
  v.literal("sandbox_gone"),
  v.literal("run_missing"),
  v.literal("paused_expired"),
);
export type EndReason = Infer<typeof endReason>;

/** What an idle running run gets (SANDBOX_IDLE_ACTION, or startSandboxRun's onIdle). */
export const idleAction = v.union(v.literal("kill"), v.literal("pause"));
export type IdleAction = Infer<typeof idleAction>;

/** The one table of legal transitions. Anything else is a late or duplicate call: a no-op. */
export const TRANSITIONS: Record<RunStatus, readonly RunStatus[]> = {
  booting: ["running", "stopping", "failed"],
  running: ["stopping", "stopped", "failed", "pausing"],
  stopping: ["stopped", "failed"],
  stopped: [],
  failed: [],
  // A run that ever paused ends only through "stopping" (a confirmed kill): E2B keeps its
  // snapshot until a DELETE, whatever its lifetime does.
  pausing: ["paused", "stopping", "resuming"],
  paused: ["resuming", "stopping"],
  resuming: ["running", "paused", "stopping"],
};

export const TERMINAL: readonly RunStatus[] = ["stopped", "failed"];

export function isTerminal(s: RunStatus): boolean {
  return TERMINAL.includes(s);
}

export function canTransition(from: RunStatus, to: RunStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** A run that never reached "running" ends "failed"; one that did ends "stopped". */
export function terminalStatusFor(reason: EndReason): "stopped" | "failed" {
  return reason === "start_failed" || reason === "boot_timeout" ? "failed" : "stopped";
}

/** What killSandboxSafely reports. Only "killed" and "gone" may make a run terminal. */
export const killFailureKind = v.union(
  v.literal("rate_limited"),
  v.literal("unavailable"),
  v.literal("auth"),
  v.literal("timeout"),
  v.literal("other"),
);
export type KillFailureKind = Infer<typeof killFailureKind>;

export const killOutcome = v.union(
  v.object({ outcome: v.literal("killed") }),
  v.object({ outcome: v.literal("gone") }),
  v.object({
    outcome: v.literal("failed"),
    kind: killFailureKind,
    message: v.string(),
    retryAfterMs: v.optional(v.number()),
  }),
);
export type KillOutcome = Infer<typeof killOutcome>;
