// Module-loader hook for `npm run bench:scale` only (registered by bench/scale.ts before
// convex-test is first imported). It re-exports two internals of convex-test's dist/index.js so
// that the benchmark can (1) read each transaction's metrics and (2) optionally give the
// in-memory database an index (see bench/lib/scaleIndexedDb.ts). convex-test's code is
// otherwise loaded unchanged. Tests never load this.
const TARGET = /\/node_modules\/convex-test\/dist\/index\.js$/;

export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context);
  if (!TARGET.test(url) || result.source == null) return result;
  const source = String(result.source);
  if (
    !/^class DatabaseFake \{/m.test(source) ||
    !/import \{ TransactionMetricsTracker, \} from/.test(source)
  ) {
    throw new Error(
      `bench/lib/scaleConvexTestHook.mjs: ${url} no longer has DatabaseFake/TransactionMetricsTracker; update the hook`,
    );
  }
  return {
    ...result,
    source: `${source}\nexport { DatabaseFake as __scaleDatabaseFake, TransactionMetricsTracker as __scaleTransactionMetricsTracker };\n`,
  };
}
