import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
import { endReason, idleAction, killOutcome, runStatus } from "./model/status";

export const commandStatus = v.union(
  v.literal("running"),
  v.literal("finished"),
  v.literal("timed_out"),
  // Killed by us once both stdout and stderr were past their caps.
  v.literal("output_limit"),
  v.literal("failed"),
);

/** What a finished command reports; stored, and returned by runCommand. */
export const commandOutput = {
  exitCode: v.optional(v.number()),
  stdout: v.string(),
  stderr: v.string(),
  stdoutTruncated: v.boolean(),
  stderrTruncated: v.boolean(),
  // Bytes printed on each stream, kept or not (absent on records written before they were counted).
  stdoutBytes: v.optional(v.number()),
  stderrBytes: v.optional(v.number()),
};

export const eventKind = v.union(
  v.literal("transition"),
  v.literal("sandbox_recorded"),
  v.literal("kill"),
  v.literal("extend"),
  v.literal("reconcile_kill"),
  v.literal("quota_refused"),
  v.literal("command"),
  v.literal("pause"),
  v.literal("resume"),
);

/** An event's fields besides its owner (what its owner may read). */
export const runEventFields = {
  runId: v.optional(v.id("sandboxRuns")),
  at: v.number(), // ms
  kind: eventKind,
  from: v.optional(runStatus),
  to: v.optional(runStatus),
  reason: v.optional(v.string()),
  sandboxId: v.optional(v.string()),
  kill: v.optional(killOutcome),
  detail: v.optional(v.string()),
};

/** A command's fields besides its owner (what its owner may read). */
export const commandFields = {
  runId: v.id("sandboxRuns"),
  command: v.string(),
  status: commandStatus,
  ...commandOutput,
  startedAt: v.number(), // ms
  durationMs: v.optional(v.number()),
  error: v.optional(v.string()),
};

export default defineSchema({
  sandboxRuns: defineTable({
    ownerId: v.string(), // identity.tokenIdentifier of the caller who started it
    template: v.string(),
    status: runStatus,
    sandboxId: v.optional(v.string()),
    idempotencyKey: v.optional(v.string()),
    createdAt: v.number(), // ms
    // When the global create throttle lets this run's create go (fair queue: see admission).
    createSlotAt: v.optional(v.number()), // ms
    startedAt: v.optional(v.number()), // ms, when it became "running"
    lastActivityAt: v.number(), // ms
    // The next time the sweep must act on this run whatever its activity: boot deadline while
    // booting, max-lifetime deadline while running, next kill attempt while stopping, end time
    // once terminal (retention).
    deadlineAt: v.number(), // ms
    // When E2B will expire the sandbox on its own (our last create/setTimeout), and when the
    // sweep next looks at extending it.
    sandboxExpiresAt: v.optional(v.number()), // ms
    renewAt: v.optional(v.number()), // ms
    endedAt: v.optional(v.number()), // ms
    endReason: v.optional(endReason),
    error: v.optional(v.string()),
    killAttempts: v.number(),
    lastKillError: v.optional(v.string()),
    // What an idle run gets: killed (absent = "kill", runs from before the pause policy) or paused.
    onIdle: v.optional(idleAction),
    // Set when a pause is first asked: from then on E2B may hold a snapshot, which only a kill removes.
    everPaused: v.optional(v.boolean()),
    pausedAt: v.optional(v.number()), // ms, when E2B confirmed the last pause
    // Max lifetime counts running time only: what was left of it when the run paused (ms).
    lifetimeLeftMs: v.optional(v.number()),
    pauseAttempts: v.optional(v.number()), // unanswered pause/resume checks, for back-off
    // A stop that landed while a resume may be in flight: no kill before this (ms).
    killNotBeforeAt: v.optional(v.number()),
  })
    .index("by_status_and_deadlineAt", ["status", "deadlineAt"])
    .index("by_status_and_lastActivityAt", ["status", "lastActivityAt"])
    .index("by_status_and_renewAt", ["status", "renewAt"])
    .index("by_status_and_onIdle_and_lastActivityAt", ["status", "onIdle", "lastActivityAt"])
    .index("by_ownerId_and_createdAt", ["ownerId", "createdAt"])
    .index("by_ownerId_and_endedAt", ["ownerId", "endedAt"])
    .index("by_ownerId_and_idempotencyKey", ["ownerId", "idempotencyKey"]),

  runEvents: defineTable({ ownerId: v.optional(v.string()), ...runEventFields })
    .index("by_runId_and_at", ["runId", "at"])
    .index("by_kind_and_at", ["kind", "at"]),

  // Commands run in a run's sandbox: what ran, how it ended, its (capped) output.
  commands: defineTable({ ownerId: v.string(), ...commandFields }).index("by_runId_and_startedAt", [
    "runId",
    "startedAt",
  ]),

  // Global E2B create throttle (one document): the next free create slot, and a back-off
  // window after E2B answered 429.
  createThrottle: defineTable({
    nextSlotAt: v.number(), // ms
    blockedUntil: v.number(), // ms
  }),

  // Sweep lanes (convex/model/sweep.ts): at most SANDBOX_SWEEP_PARALLEL_PAGES leased at once.
  sweepLanes: defineTable({
    lane: v.number(),
    generation: v.number(), // bumped on every lease: a stale continuation holds an older one
    leasedUntil: v.number(), // ms; 0 once released
  }).index("by_lane", ["lane"]),

  // Sandboxes the reconciler killed that no run pointed at (record deleted, duplicate, foreign id).
  orphanSandboxes: defineTable({
    sandboxId: v.string(),
    taggedRunId: v.optional(v.string()),
    reason: v.string(),
    kill: killOutcome,
    at: v.number(), // ms
  }).index("by_at", ["at"]),

  // E2B lifecycle webhook deliveries handled, one per event id: a replayed or retried delivery
  // of the same event finds its row and changes nothing. Purged by retention.
  webhookEvents: defineTable({
    eventId: v.string(),
    type: v.string(),
    sandboxId: v.string(),
    at: v.number(), // ms, when it was handled
    outcome: v.string(), // what the handler did, for operators
    // how it reached us: a delivery, or a catch-up read of E2B's events API (absent: webhook)
    via: v.optional(v.union(v.literal("webhook"), v.literal("catch_up"))),
  })
    .index("by_eventId", ["eventId"])
    .index("by_at", ["at"]),

  // One row: where catching up on E2B's events API stands (convex/model/webhooks.ts).
  eventCatchUp: defineTable({
    requestedAt: v.number(), // ms, when the last catch-up was scheduled
    readThroughAt: v.number(), // ms, the newest event timestamp a catch-up has read
  }),
});
