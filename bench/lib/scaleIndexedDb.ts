// Benchmark-only instrumentation of convex-test, loaded after bench/lib/scaleConvexTestHook.mjs
// has re-exported two of its internals. Nothing here changes what a Convex function sees.
//
// 1. Transaction metrics: every top-level transaction's final usage (documents read/written,
//    index ranges) is reported to the active collector, so the benchmark can show what each
//    sweep transaction costs in Convex's own units, whatever the table size.
// 2. An optional index for the in-memory database. convex-test answers every index range by
//    visiting every document of the table and sorting the matches (DatabaseFake._iterateDocs
//    from _resolveQuerySource), so in-process, each `withIndex` query costs O(table size) in
//    wall-clock time even though it reads (and is billed for) only the documents in its range —
//    unlike Convex, where an index range costs O(log n + documents in range). With the index on,
//    an index range whose first expression is `eq(field, primitive)` visits only the documents
//    with that value (committed, kept up to date on commit) plus the transaction's own pending
//    writes; convex-test's own code then applies the full range, sort and limit as before. The
//    candidate set is a superset of the true matches, so results are unchanged (the benchmark
//    checks this against the unindexed answer before measuring).
import * as convexTestModule from "convex-test";

type Json = unknown;
type Doc = Record<string, unknown> & { _id: string };
type RangeExpr = { type: "Eq" | "Gt" | "Gte" | "Lt" | "Lte"; fieldPath: string; value: Json };
type Query = { source: { type: string; indexName?: string; range?: RangeExpr[] } };
type DatabaseFakeLike = {
  _documents: Record<string, Doc | undefined>;
  _tableIds: Map<string, Set<string>>;
  _writes: Record<string, Doc | null>[];
  get(table: string, id: string): Doc | null;
  _iterateDocs(table: string, cb: (d: Doc) => void): void;
  _resolveQuerySource(query: Query): unknown;
  commit(commitTs?: unknown): void;
};
type Metrics = {
  documentsRead: number;
  documentsWritten: number;
  databaseQueries: number;
  bytesRead: number;
  bytesWritten: number;
};
type TrackerLike = { _layers: { metrics: Metrics }[]; commit(): void; rollback(): void };

const internals = convexTestModule as unknown as {
  __scaleDatabaseFake?: { prototype: DatabaseFakeLike };
  __scaleTransactionMetricsTracker?: { prototype: TrackerLike };
};
const DatabaseFake = internals.__scaleDatabaseFake;
const Tracker = internals.__scaleTransactionMetricsTracker;
if (!DatabaseFake || !Tracker) {
  throw new Error(
    "convex-test was loaded without bench/lib/scaleConvexTestHook.mjs (register it before importing convex-test)",
  );
}

// ------------------------------------------------------------------ transaction metrics

export type TxStats = {
  transactions: number;
  maxDocumentsRead: number;
  maxDocumentsWritten: number;
  maxIndexRanges: number;
  totalDocumentsRead: number;
  totalDocumentsWritten: number;
};

let collector: TxStats | null = null;

function report(m: Metrics) {
  if (!collector) return;
  collector.transactions++;
  collector.maxDocumentsRead = Math.max(collector.maxDocumentsRead, m.documentsRead);
  collector.maxDocumentsWritten = Math.max(collector.maxDocumentsWritten, m.documentsWritten);
  collector.maxIndexRanges = Math.max(collector.maxIndexRanges, m.databaseQueries);
  collector.totalDocumentsRead += m.documentsRead;
  collector.totalDocumentsWritten += m.documentsWritten;
}

for (const method of ["commit", "rollback"] as const) {
  const original = Tracker.prototype[method];
  Tracker.prototype[method] = function (this: TrackerLike) {
    // A tracker lives for one top-level transaction; its last layer holds the total.
    if (this._layers.length === 1) report({ ...this._layers[0]!.metrics });
    return original.call(this);
  };
}

/** Collects the metrics of every top-level transaction until the returned function is called. */
export function collectTransactionStats(): () => TxStats {
  const mine: TxStats = {
    transactions: 0,
    maxDocumentsRead: 0,
    maxDocumentsWritten: 0,
    maxIndexRanges: 0,
    totalDocumentsRead: 0,
    totalDocumentsWritten: 0,
  };
  collector = mine;
  return () => {
    if (collector === mine) collector = null;
    return mine;
  };
}

/** Runs `fn` (the benchmark's own bookkeeping) without reporting its transactions. */
export async function withoutStats<R>(fn: () => Promise<R>): Promise<R> {
  const saved = collector;
  collector = null;
  try {
    return await fn();
  } finally {
    collector = saved;
  }
}

// ------------------------------------------------------------------ optional index

let enabled = false;
let indexedQueries = 0;

/** Turns the in-memory index on or off (process-wide; affects every convex-test instance). */
export function setIndexed(on: boolean) {
  enabled = on;
}
export function indexedQueryCount() {
  return indexedQueries;
}

type Bucket = { table: string; field: string; byKey: Map<string, Set<string>>; keyOf: Map<string, string> };
type State = { buckets: Map<string, Bucket>; hint?: { bucket: Bucket; key: string } };
const states = new WeakMap<DatabaseFakeLike, State>();

function tableOf(id: string): string | null {
  const m = /^[0-9]+/.exec(id);
  return m && m[0].length < id.length ? id.slice(m[0].length) : null;
}

/** Equal keys for values convex-test's compareValues could call equal (a superset is fine). */
function keyOf(v: unknown): string | undefined {
  if (typeof v === "string") return `s:${v}`;
  if (typeof v === "number") return `n:${v}`;
  if (typeof v === "boolean") return `b:${v}`;
  return undefined;
}

function stateOf(db: DatabaseFakeLike): State {
  let s = states.get(db);
  if (!s) {
    s = { buckets: new Map() };
    states.set(db, s);
  }
  return s;
}

function bucketFor(db: DatabaseFakeLike, table: string, field: string): Bucket {
  const st = stateOf(db);
  const name = `${table}\u0000${field}`;
  let b = st.buckets.get(name);
  if (!b) {
    b = { table, field, byKey: new Map(), keyOf: new Map() };
    for (const id of db._tableIds.get(table) ?? []) place(b, id, db._documents[id]);
    st.buckets.set(name, b);
  }
  return b;
}

function place(b: Bucket, id: string, doc: Doc | null | undefined) {
  const before = b.keyOf.get(id);
  const after = doc ? keyOf(doc[b.field]) : undefined;
  if (before === after) return;
  if (before !== undefined) {
    b.byKey.get(before)?.delete(id);
    b.keyOf.delete(id);
  }
  if (after !== undefined) {
    let set = b.byKey.get(after);
    if (!set) b.byKey.set(after, (set = new Set()));
    set.add(id);
    b.keyOf.set(id, after);
  }
}

const proto = DatabaseFake.prototype;
const originalResolve = proto._resolveQuerySource;
const originalIterate = proto._iterateDocs;
const originalCommit = proto.commit;

proto._resolveQuerySource = function (this: DatabaseFakeLike, query: Query) {
  const src = query.source;
  const first = src.range?.[0];
  if (
    !enabled ||
    src.type !== "IndexRange" ||
    !src.indexName ||
    !first ||
    first.type !== "Eq" ||
    first.fieldPath.includes(".")
  ) {
    return originalResolve.call(this, query);
  }
  const [table, index] = src.indexName.split(".");
  const key = keyOf(first.value); // JSON form: strings, finite numbers and booleans are themselves
  if (!table || index === "by_creation_time" || index === "by_id" || key === undefined) {
    return originalResolve.call(this, query);
  }
  const st = stateOf(this);
  st.hint = { bucket: bucketFor(this, table, first.fieldPath), key };
  try {
    indexedQueries++;
    return originalResolve.call(this, query);
  } finally {
    st.hint = undefined;
  }
};

proto._iterateDocs = function (this: DatabaseFakeLike, table: string, cb: (d: Doc) => void) {
  const hint = states.get(this)?.hint;
  if (!hint || hint.bucket.table !== table) return originalIterate.call(this, table, cb);
  // Committed candidates, plus everything this transaction wrote to the table (its pending
  // version is what `get` returns, whichever bucket the committed version is in).
  const ids = new Set(hint.bucket.byKey.get(hint.key));
  for (const layer of this._writes)
    for (const id of Object.keys(layer)) if (tableOf(id) === table) ids.add(id);
  for (const id of ids) {
    const doc = this.get(table, id);
    if (doc !== null) cb(doc);
  }
};

proto.commit = function (this: DatabaseFakeLike, commitTs?: unknown) {
  const outermost = this._writes.length === 1 ? this._writes[0] : undefined;
  originalCommit.call(this, commitTs);
  const st = states.get(this);
  if (!outermost || !st || st.buckets.size === 0) return;
  for (const id of Object.keys(outermost)) {
    const table = tableOf(id);
    for (const b of st.buckets.values()) if (b.table === table) place(b, id, this._documents[id]);
  }
};
