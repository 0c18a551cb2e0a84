import { cronJobs } from "convex/server";
import { internal } from "./_generated/api";

const crons = cronJobs();

// Cron intervals are fixed at deploy time; SANDBOX_SWEEP_INTERVAL_MS tells the model the same
// figure (keep them equal when changing either).
crons.interval("killIdleSandboxes", { minutes: 1 }, internal.actions.killIdleSandboxes.killIdleSandboxes, {});

export default crons;
