import { cronJobs } from "convex/server";
import { internal } from "./_generated/api";
import { SWEEP_INTERVAL_MS } from "./model/config";

const crons = cronJobs();

// Both sweeps run every SWEEP_INTERVAL_MS, the figure the model derives lifetimes from.
const every = { minutes: SWEEP_INTERVAL_MS / 60_000 };
crons.interval("killIdleSandboxes", every, internal.actions.killIdleSandboxes.killIdleSandboxes, {});
// Reconciles what exists at E2B with the runs table; its own cron so that an E2B list outage
// never delays the per-run sweep.
crons.interval("reconcileSandboxes", every, internal.actions.reconcileSandboxes.reconcileSandboxes, {});

// Pauses idle runs under the pause policy and kills runs paused past their retention; its own
// cron so that the kill sweep's pages are never spent on pauses (SANDBOX_SWEEP_INTERVAL_MS too).
crons.interval(
  "pauseIdleSandboxes",
  { minutes: 1 },
  internal.actions.pauseIdleSandboxes.pauseIdleSandboxes,
  {},
);

// With webhooks on: reads E2B's events API for events whose delivery never arrived (deliveries
// also ring for this between crons, see CATCH_UP_MIN_INTERVAL_MS); does nothing with them off.
crons.interval(
  "catchUpLifecycleEvents",
  every,
  internal.actions.catchUpLifecycleEvents.catchUpLifecycleEvents,
  {},
);

// Deletes finished runs (and their events and commands) past SANDBOX_RETENTION_DAYS.
crons.daily("purgeOldRuns", { hourUTC: 3, minuteUTC: 17 }, internal.retention.purgeOldRuns, {});

export default crons;
