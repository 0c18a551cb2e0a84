// Seeding and checking large sandboxRuns tables, shared by tests/scale.test.ts and
// bench/scale.ts. Documents have the shape the real transitions leave behind (convex/model/runs.ts):
// terminal runs have endedAt = deadlineAt, an endReason and no renewAt; running runs have what
// markRunning sets (startedAt, deadlineAt = startedAt + max lifetime, sandboxExpiresAt, renewAt).
//
// convex-test applies `transactionLimits` to `t.run` too (each call is one top-level
// transaction with the instance's limits, and a separate instance cannot share the database),
// so every helper here works in batches no larger than the caller's limits allow.
import type { TestConvexForDataModel } from "convex-test";
import type { DataModel, Doc, Id } from "../../convex/_generated/dataModel";
import type { E2BEmulator } from "../../tests/emulator/e2bEmulator";

export type Convex = Pick<TestConvexForDataModel<DataModel>, "run">;
type Run = Doc<"sandboxRuns">;
export type RunFields = Omit<Run, "_id" | "_creationTime">;

const MIN = 60_000;
const DAY = 24 * 60 * MIN;
const STOP_REASONS = ["user", "idle", "max_lifetime", "sandbox_gone"] as const;

/**
 * The i-th finished run, deterministic in (i, now): 80 % stopped (user, idle, max lifetime,
 * gone), 10 % failed at boot (boot timeout, had a sandbox), 10 % refused at create (none).
 * All ended within the last 30 days (the default retention).
 */
export function finishedRun(i: number, now: number): RunFields {
  const endedAt = now - MIN - ((i * 25_919) % (30 * DAY));
  const ownerId = `user|${i % 1_000}`;
  const template = i % 3 === 0 ? "python" : "base";
  const kind = i % 10;
  if (kind === 0) {
    const createdAt = endedAt - MIN;
    return {
      ownerId,
      template,
      status: "failed",
      endReason: "boot_timeout",
      sandboxId: `fin${i}`,
      createdAt,
      lastActivityAt: createdAt,
      deadlineAt: endedAt,
      endedAt,
      sandboxExpiresAt: createdAt + 2 * MIN,
      killAttempts: 0,
    };
  }
  if (kind === 1) {
    const createdAt = endedAt - 1_500;
    return {
      ownerId,
      template,
      status: "failed",
      endReason: "start_failed",
      error: "E2B: 400: bad request",
      createdAt,
      lastActivityAt: createdAt,
      deadlineAt: endedAt,
      endedAt,
      killAttempts: 0,
    };
  }
  const endReason = STOP_REASONS[i % STOP_REASONS.length]!;
  const createdAt = endedAt - 30 * MIN;
  const lastActivityAt = endReason === "idle" ? endedAt - 10 * MIN : endedAt - 2_000;
  return {
    ownerId,
    template,
    status: "stopped",
    endReason,
    sandboxId: `fin${i}`,
    createdAt,
    startedAt: createdAt + 4_000,
    lastActivityAt,
    deadlineAt: endedAt,
    endedAt,
    sandboxExpiresAt: lastActivityAt + 12 * MIN,
    killAttempts: 0,
  };
}

/** Runs `fn` with cheap exceptions: convex-test validates union fields by catching throws. */
async function withCheapErrors<T>(fn: () => Promise<T>): Promise<T> {
  const saved = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return await fn();
  } finally {
    Error.stackTraceLimit = saved;
  }
}

/** Inserts `count` finished runs in transactions of `batch` inserts; returns their ids in order. */
export async function seedFinishedRuns(
  t: Convex,
  count: number,
  opts: { now: number; batch: number; firstIndex?: number; onProgress?: (done: number) => void },
): Promise<Id<"sandboxRuns">[]> {
  const ids: Id<"sandboxRuns">[] = [];
  const first = opts.firstIndex ?? 0;
  await withCheapErrors(async () => {
    for (let from = 0; from < count; from += opts.batch) {
      const to = Math.min(count, from + opts.batch);
      const got = await t.run(async (ctx) => {
        const out: Id<"sandboxRuns">[] = [];
        for (let i = from; i < to; i++)
          out.push(await ctx.db.insert("sandboxRuns", finishedRun(first + i, opts.now)));
        return out;
      });
      ids.push(...got);
      opts.onProgress?.(to);
    }
  });
  return ids;
}

export type IdleRunOpts = {
  now: number;
  namespace: string;
  idleTimeoutMs: number;
  maxLifetimeMs: number;
  /** E2B lifetime left on each sandbox (and recorded as sandboxExpiresAt) */
  sandboxLifetimeMs: number;
  /** renewAt already due (the lifetime extension backlog of a sweep outage) or a minute ahead */
  renewDue: boolean;
  /** inserts (and, separately, patches) per transaction */
  batch: number;
};

export type IdleRun = { runId: Id<"sandboxRuns">; sandboxId: string };

/**
 * Inserts `count` running runs idle past the idle timeout (and within their max lifetime), each
 * with a live sandbox in the emulator tagged exactly as createTaggedSandbox tags one.
 */
export async function seedIdleRuns(
  t: Convex,
  emu: E2BEmulator,
  count: number,
  o: IdleRunOpts,
): Promise<IdleRun[]> {
  const out: IdleRun[] = [];
  await withCheapErrors(async () => {
    for (let from = 0; from < count; from += o.batch) {
      const to = Math.min(count, from + o.batch);
      const fields = Array.from({ length: to - from }, (_, k) => {
        const lastActivityAt = o.now - o.idleTimeoutMs - MIN - (from + k);
        const startedAt = lastActivityAt - 5 * MIN;
        return {
          ownerId: `user|${(from + k) % 1_000}`,
          template: "base",
          status: "running" as const,
          createdAt: startedAt - 3_000,
          startedAt,
          lastActivityAt,
          deadlineAt: startedAt + o.maxLifetimeMs,
          renewAt: o.renewDue ? lastActivityAt + Math.floor(o.idleTimeoutMs / 2) : o.now + MIN,
          killAttempts: 0,
        };
      });
      const runIds = await t.run(async (ctx) =>
        Promise.all(fields.map((f) => ctx.db.insert("sandboxRuns", f))),
      );
      const sandboxes = runIds.map((runId) =>
        emu.seed({
          metadata: { convexNamespace: o.namespace, convexRunId: runId },
          timeoutMs: o.sandboxLifetimeMs,
        }),
      );
      await t.run(async (ctx) => {
        for (let k = 0; k < runIds.length; k++) {
          await ctx.db.patch(runIds[k]!, {
            sandboxId: sandboxes[k]!.sandboxID,
            sandboxExpiresAt: sandboxes[k]!.endAt,
          });
        }
      });
      runIds.forEach((runId, k) => out.push({ runId, sandboxId: sandboxes[k]!.sandboxID }));
    }
  });
  return out;
}

/** Reads runs by id (`ctx.db.get`: no scan), `batch` per transaction, in order. */
export async function getRuns(
  t: Convex,
  ids: readonly Id<"sandboxRuns">[],
  batch: number,
): Promise<(Run | null)[]> {
  const out: (Run | null)[] = [];
  for (let from = 0; from < ids.length; from += batch) {
    const slice = ids.slice(from, from + batch);
    out.push(...(await t.run((ctx) => Promise.all(slice.map((id) => ctx.db.get(id))))));
  }
  return out;
}

/** Ids of the given runs that are not yet terminal. */
export async function openRuns(
  t: Convex,
  ids: readonly Id<"sandboxRuns">[],
  batch: number,
): Promise<Id<"sandboxRuns">[]> {
  const runs = await getRuns(t, ids, batch);
  return ids.filter((_, k) => {
    const r = runs[k];
    return !r || (r.status !== "stopped" && r.status !== "failed");
  });
}

/**
 * Checks that the finished runs seeded with `seedFinishedRuns(…, { now })` are exactly as
 * seeded (every field, no extra field). Returns a description of the first few differences.
 */
export async function diffFinishedRuns(
  t: Convex,
  ids: readonly Id<"sandboxRuns">[],
  now: number,
  batch: number,
  firstIndex = 0,
) {
  const problems: string[] = [];
  let checked = 0;
  for (let from = 0; from < ids.length && problems.length < 5; from += batch) {
    const docs = await getRuns(t, ids.slice(from, from + batch), batch);
    docs.forEach((doc, k) => {
      checked++;
      if (problems.length >= 5) return;
      const i = from + k;
      if (!doc) return void problems.push(`run #${i} ${ids[i]} is missing`);
      const { _id, _creationTime, ...fields } = doc;
      const want = finishedRun(firstIndex + i, now) as Record<string, unknown>;
      const got = fields as Record<string, unknown>;
      for (const key of new Set([...Object.keys(want), ...Object.keys(got)])) {
        if (got[key] !== want[key])
          problems.push(
            `run #${i} ${_id}: ${key} is ${JSON.stringify(got[key])}, seeded ${JSON.stringify(want[key])}`,
          );
      }
    });
  }
  return { checked, problems };
}
