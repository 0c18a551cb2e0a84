// Every shape passed between layers (action ↔ internal mutation ↔ model helper), defined once as
// a validator; each type is derived from it with Infer, so a field changes in one place.
import { v, type Infer } from "convex/values";
import { endReason, killOutcome, runStatus } from "./status";

const runId = v.id("sandboxRuns");

/** A sandbox a run learned at create or resume, with the E2B lifetime it was given (ms epoch). */
export const sandboxRecord = v.object({ runId, sandboxId: v.string(), sandboxExpiresAt: v.number() });
export type SandboxRecord = Infer<typeof sandboxRecord>;

/** A kill the sweep claimed; no sandboxId means the run never learned one (kill by tag). */
export const killClaim = v.object({ runId, sandboxId: v.optional(v.string()) });
export type KillClaim = Infer<typeof killClaim>;

/** A running sandbox whose E2B lifetime the sweep extends to `lifetimeMs` from now. */
export const extendClaim = v.object({
  runId,
  sandboxId: v.string(),
  lifetimeMs: v.number(),
  expiresAt: v.number(),
});
export type ExtendClaim = Infer<typeof extendClaim>;

/**
 * One page of sweep work, claimed in one transaction. `more` says the page filled up and the
 * caller should continue.
 */
export const sweepPage = v.object({
  kills: v.array(killClaim),
  extends: v.array(extendClaim),
  more: v.boolean(),
});
export type SweepPage = Infer<typeof sweepPage>;

/**
 * A sweep lane: the right to work sweep pages, one action at a time. At most
 * SANDBOX_SWEEP_PARALLEL_PAGES lanes are leased at any moment, whichever cron tick or
 * continuation holds them, so sweep kills in flight never exceed lanes × SANDBOX_KILL_CONCURRENCY.
 * The generation tells a lane's current holder from a stale continuation of an earlier one.
 */
export const laneTicket = v.object({ lane: v.number(), generation: v.number() });
export type LaneTicket = Infer<typeof laneTicket>;

/** A sweep page claimed in a lane, with the lanes this tick opened beside it. */
export const lanePage = v.object({
  ...sweepPage.fields,
  lane: v.union(laneTicket, v.null()),
  opened: v.array(laneTicket),
});
export type LanePage = Infer<typeof lanePage>;

/** A kill's result as recorded (by the sweep, the pause lane and a user's stop). */
export const killResult = v.object({
  runId,
  sandboxId: v.optional(v.string()),
  reason: v.optional(endReason),
  kill: killOutcome,
  error: v.optional(v.string()),
});
export type KillResult = Infer<typeof killResult>;

/** What an extension of a sandbox's E2B lifetime came to, as the sweep records it. */
export const extendResult = v.object({
  runId,
  sandboxId: v.string(),
  outcome: v.union(v.literal("extended"), v.literal("gone"), v.literal("paused"), v.literal("failed")),
  expiresAt: v.number(),
  error: v.optional(v.string()),
});
export type ExtendResult = Infer<typeof extendResult>;

/** What one sweep invocation did (the cron target's return). */
export const sweepResult = v.object({
  killed: v.number(),
  failed: v.number(),
  extended: v.number(),
  more: v.boolean(),
});
export type SweepResult = Infer<typeof sweepResult>;

/** A user's stop: the run already ended ("done"), or the caller owes the kill. */
export const stopClaim = v.union(
  v.object({ action: v.literal("done"), runId, status: runStatus }),
  v.object({ action: v.literal("kill"), runId, sandboxId: v.optional(v.string()) }),
);
export type StopClaim = Infer<typeof stopClaim>;

/** Why the reconciling pass kills a listed sandbox. */
export const orphanReason = v.union(
  v.literal("run_missing"),
  v.literal("run_ended"),
  v.literal("not_the_runs_sandbox"),
);
export type OrphanReason = Infer<typeof orphanReason>;

const orphanFields = {
  sandboxId: v.string(),
  runId: v.optional(runId),
  taggedRunId: v.optional(v.string()),
  reason: orphanReason,
};
export const orphan = v.object(orphanFields);
export type Orphan = Infer<typeof orphan>;
export const orphanKill = v.object({ ...orphanFields, kill: killOutcome });
export type OrphanKill = Infer<typeof orphanKill>;

/** A running run the pause lane claimed to pause. */
export const pauseClaim = v.object({ runId, sandboxId: v.string() });
export type PauseClaim = Infer<typeof pauseClaim>;

/** A lookup of a resume that never answered; `leaseUntil` tells whether a new resume took over since. */
export const checkClaim = v.object({ runId, sandboxId: v.string(), leaseUntil: v.number() });
export type CheckClaim = Infer<typeof checkClaim>;

/** One page of pause-lane work, claimed in one transaction. */
export const pausePage = v.object({
  kills: v.array(killClaim),
  pauses: v.array(pauseClaim),
  checks: v.array(checkClaim),
  more: v.boolean(),
});
export type PausePage = Infer<typeof pausePage>;

/** A resume whose answer was not a success: "refused" means E2B certainly did not resume it. */
export const resumeFailure = v.object({
  runId,
  sandboxId: v.string(),
  outcome: v.union(v.literal("gone"), v.literal("refused"), v.literal("failed"), v.literal("unknown")),
  error: v.string(),
});
export type ResumeFailure = Infer<typeof resumeFailure>;

/** Where a resume left the run; `killNow` when a stop waited for this resume to answer. */
export const resumeSettled = v.object({ status: runStatus, killNow: v.boolean() });
export type ResumeSettled = Infer<typeof resumeSettled>;

/** What one reconciling pass did (the cron target's return). */
export const reconcileResult = v.object({
  listed: v.number(),
  orphansKilled: v.number(),
  killFailures: v.number(),
  listFailed: v.boolean(),
  sandboxesGone: v.number(),
  more: v.boolean(),
});
export type ReconcileResult = Infer<typeof reconcileResult>;

/** What one catch-up on E2B's events API did (the catch-up cron's return). */
export const catchUpResult = v.object({
  read: v.number(), // events read, every namespace
  handled: v.number(), // this namespace's events no delivery had brought
  complete: v.boolean(), // false: more events since the cursor than one catch-up reads
  failed: v.boolean(), // the events API did not answer
});
export type CatchUpResult = Infer<typeof catchUpResult>;
