// Orphan accounting for the chaos benchmark, the same for both strategies.
//
// A sandbox is OWNED at time t when a run that is not terminal at t
//   (a) records this sandbox's id, or
//   (b) records no sandbox id yet and is the run this sandbox is TAGGED with — only for a
//       strategy whose own code can find sandboxes by that tag (ours: `convexRunId`; the seed
//       tags nothing, so (b) never applies to it).
// An ORPHAN is a sandbox alive while nothing owns it. A run records at most one sandbox id
// (both strategies store it once), so ownership is one interval [birth, end of the owner run),
// and the orphan interval is [that end, death) — or [birth, death) when no run ever owned it.

export type SandboxLife = {
  sandboxId: string;
  /** the run this sandbox belongs to (from its metadata; see the strategy for which key) */
  runId: string | undefined;
  startedAt: number;
  diedAt: number | undefined;
  /** the fault this sandbox's story is charged to, for the per-fault breakdown ("(none)" if none) */
  fault?: string;
};

export type RunFinal = {
  runId: string;
  sandboxId: string | undefined;
  terminal: boolean;
  endedAt: number | undefined;
  /** when the run first recorded its sandbox id (strategies that log it) */
  sandboxRecordedAt?: number;
};

export type OrphanReport = {
  sandboxes: number;
  sandboxSeconds: number;
  aliveAtEnd: number;
  aliveOrphansAtEnd: number;
  orphans: number;
  longestOrphanS: number;
  orphanSandboxSeconds: number;
  nonTerminalRuns: number;
  /** sandboxes whose tagged run records a different sandbox id (never expected) */
  foreign: number;
  /**
   * Runs marked ended (stopped/failed) while their sandbox — the one they record, or (tagOwns)
   * one tagged with them — still lived: how many such sandboxes, and the longest such span.
   */
  terminalWhileAlive: number;
  longestTerminalWhileAliveS: number;
  /** the same, by the fault each sandbox is charged to */
  terminalWhileAliveByFault: Record<string, { count: number; longestS: number }>;
};

export function orphanReport(
  sandboxes: readonly SandboxLife[],
  runs: readonly RunFinal[],
  opts: { endAt: number; tagOwns: boolean },
): OrphanReport {
  const byId = new Map(runs.map((r) => [r.runId, r]));
  const r: OrphanReport = {
    sandboxes: sandboxes.length,
    sandboxSeconds: 0,
    aliveAtEnd: 0,
    aliveOrphansAtEnd: 0,
    orphans: 0,
    longestOrphanS: 0,
    orphanSandboxSeconds: 0,
    nonTerminalRuns: runs.filter((x) => !x.terminal).length,
    foreign: 0,
    terminalWhileAlive: 0,
    longestTerminalWhileAliveS: 0,
    terminalWhileAliveByFault: {},
  };
  for (const s of sandboxes) {
    const death = s.diedAt ?? opts.endAt;
    r.sandboxSeconds += Math.max(0, death - s.startedAt) / 1000;
    if (s.diedAt === undefined) r.aliveAtEnd++;
    const run = s.runId !== undefined ? byId.get(s.runId) : undefined;
    let ownedUntil = s.startedAt;
    if (run && (run.sandboxId === s.sandboxId || (run.sandboxId === undefined && opts.tagOwns))) {
      ownedUntil = run.terminal ? (run.endedAt ?? s.startedAt) : Number.POSITIVE_INFINITY;
    } else if (run && run.sandboxId !== undefined && run.sandboxId !== s.sandboxId) {
      r.foreign++;
    }
    // Its run ended while it lived: the run records it, or (tagOwns) it carries the run's tag.
    if (run?.terminal && (run.sandboxId === s.sandboxId || opts.tagOwns)) {
      const span = (death - Math.max(s.startedAt, run.endedAt ?? s.startedAt)) / 1000;
      if (span > 0) {
        r.terminalWhileAlive++;
        r.longestTerminalWhileAliveS = Math.max(r.longestTerminalWhileAliveS, span);
        const f = (r.terminalWhileAliveByFault[s.fault ?? "(none)"] ??= { count: 0, longestS: 0 });
        f.count++;
        f.longestS = Math.max(f.longestS, span);
      }
    }
    const from = Math.max(s.startedAt, ownedUntil);
    if (death > from) {
      r.orphans++;
      const life = (death - from) / 1000;
      r.orphanSandboxSeconds += life;
      r.longestOrphanS = Math.max(r.longestOrphanS, life);
      if (s.diedAt === undefined) r.aliveOrphansAtEnd++;
    }
  }
  return r;
}

/** A sandbox E2B ended on its own (the e2bKillsSandbox fault), at `at`. */
export type E2BKill = { index: number; sandboxId: string; at: number };

/** p50 / p95 / p99 (nearest rank, s) over `n` cases; a case that never happened counts as infinite. */
export type Latency = { n: number; happened: number; p50: number; p95: number; p99: number; max: number };

function latency(xs: readonly (number | undefined)[]): Latency {
  const v = xs.map((x) => x ?? Number.POSITIVE_INFINITY).sort((a, b) => a - b);
  const rank = (q: number) =>
    v.length ? v[Math.min(v.length - 1, Math.ceil(q * v.length) - 1)]! : Number.NaN;
  return {
    n: v.length,
    happened: xs.filter((x) => x !== undefined).length,
    p50: rank(0.5),
    p95: rank(0.95),
    p99: rank(0.99),
    max: v.length ? v[v.length - 1]! : Number.NaN,
  };
}

/**
 * How soon the backend knew what E2B knew (simulated seconds):
 * - a create whose response was lost: from the sandbox's creation to its id recorded on its
 *   run (never, when the run never learned it) and to the run ending;
 * - a sandbox E2B ended on its own while its run was live: from its death to the run ending.
 *   A death of a sandbox its run never recorded, or after the run had ended, is not counted.
 */
export type KnowingReport = {
  lostCreateIdRecorded: Latency;
  lostCreateRunEnded: Latency;
  e2bDeathRunEnded: Latency;
  e2bDeaths: number;
};

export function knowingReport(
  lost: readonly { sandbox: { sandboxID: string; startedAt: number }; run: RunFinal | undefined }[],
  deaths: readonly (E2BKill & { run: RunFinal | undefined })[],
  endAt: number,
): KnowingReport {
  const s = (ms: number) => ms / 1000;
  const counted = deaths.filter(
    (d) =>
      d.run !== undefined &&
      d.run.sandboxId === d.sandboxId &&
      !(d.run.terminal && (d.run.endedAt ?? 0) < d.at),
  );
  return {
    lostCreateIdRecorded: latency(
      lost.map(({ sandbox, run }) =>
        run?.sandboxId === sandbox.sandboxID && run.sandboxRecordedAt !== undefined
          ? s(run.sandboxRecordedAt - sandbox.startedAt)
          : undefined,
      ),
    ),
    lostCreateRunEnded: latency(
      lost.map(({ sandbox, run }) =>
        run?.terminal && run.endedAt !== undefined ? s(run.endedAt - sandbox.startedAt) : undefined,
      ),
    ),
    e2bDeathRunEnded: latency(
      counted.map((d) => (d.run!.terminal ? s((d.run!.endedAt ?? endAt) - d.at) : undefined)),
    ),
    e2bDeaths: deaths.length,
  };
}
