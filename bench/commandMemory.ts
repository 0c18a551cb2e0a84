// How much an action's memory grows while a command floods stdout: runCommand's streaming path
// (count bytes, keep the cap, discard the rest, stop past the drain allowance) side by side with
// the old one (the SDK's `commands.run`, which accumulates the whole output, then cap). The emulator runs in a worker
// thread, so the heap measured (V8's, this isolate's) is the action's alone.
//   npm run bench:memory                   1 GB through the new path, 120 MB through both
//   npm run bench:memory -- --gb 0.2       a smaller flood for a quick look
import { getHeapStatistics } from "node:v8";
import { Worker } from "node:worker_threads";
import { Sandbox } from "e2b";
import { runSandboxCommand } from "../convex/lib/e2b.sdk";
import { getConfig } from "../convex/model/config";

const argv = process.argv.slice(2);
const gbArg = argv.indexOf("--gb");
const bigBytes = Math.round((gbArg >= 0 ? Number(argv[gbArg + 1]) : 1) * 1e9);
const oldBytes = 120_000_000; // the figure; the old path cannot hold 1 GB in one string at all
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc (npm run bench:memory does)");

const entry = new URL("./lib/commandMemoryEmulator.ts", import.meta.url).href;
const boot = `import("tsx/esm/api").then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
const worker = new Worker(boot, { eval: true });
const { url } = await new Promise<{ url: string }>((resolve, reject) => {
  worker.once("message", resolve);
  worker.once("error", reject);
});
Object.assign(process.env, {
  E2B_API_URL: url,
  E2B_SANDBOX_URL: url,
  E2B_API_KEY: "e2b_bench_key",
  SANDBOX_NAMESPACE: "bench",
  SANDBOX_COMMAND_TIMEOUT_MS: "300000",
  E2B_REQUEST_TIMEOUT_MS: "30000",
});
const c = getConfig();
const sandbox = await Sandbox.create("base", { apiKey: c.e2bApiKey!, timeoutMs: 3_600_000 });
const flood = (bytes: number) => `head -c ${bytes} /dev/zero | tr '\\0' a`;

/**
 * Growth over a baseline taken after a full GC of V8's used heap plus the ArrayBuffers this
 * isolate holds (the SDK's transport keeps messages as Uint8Arrays, outside the V8 heap):
 * `peak` samples every 10 ms (garbage not yet collected included); `live` forces a full GC
 * every 250 ms first, so it is what the action actually holds.
 */
async function measure<T>(fn: () => Promise<T>) {
  gc!();
  const used = () => getHeapStatistics().used_heap_size + process.memoryUsage().arrayBuffers;
  const base = used();
  let peak = base;
  let live = base;
  const sample = setInterval(() => void (peak = Math.max(peak, used())), 10);
  const collect = setInterval(() => {
    gc!();
    live = Math.max(live, used());
  }, 250);
  const began = performance.now();
  const result = await fn();
  peak = Math.max(peak, used());
  clearInterval(sample);
  clearInterval(collect);
  const mb = (bytes: number) => (bytes - base) / 2 ** 20;
  return { peakMB: mb(peak), liveMB: mb(live), seconds: (performance.now() - began) / 1000, result };
}

const newPath = (bytes: number) =>
  measure(async () => {
    const r = await runSandboxCommand(c, {
      sandboxId: sandbox.sandboxId,
      command: flood(bytes),
      timeoutMs: c.commandTimeoutMs,
      lifetimeMs: 3_600_000,
    });
    if (r.outcome === "gone" || r.outcome === "failed") throw new Error(`new path: ${r.outcome}`);
    process.stderr.write(
      `  … ${r.stdoutBytes.toLocaleString("en-US")} bytes in ${(r.durationMs / 1000).toFixed(0)} s\n`,
    );
    return {
      counted: r.stdoutBytes,
      kept: Buffer.byteLength(r.stdout),
      truncated: r.stdoutTruncated,
      outcome: r.outcome as string,
    };
  });

// The old path, as runSandboxCommand was before issue 9: the SDK accumulates, then the cap.
const oldPath = (bytes: number) =>
  measure(async () => {
    let stdout = "";
    const r = await sandbox.commands.run(flood(bytes), {
      timeoutMs: c.commandTimeoutMs,
      onStdout: (d) => void (stdout.length <= c.commandOutputMaxBytes && (stdout += d)),
    });
    const buf = Buffer.from(r.stdout, "utf8");
    const kept = buf.subarray(0, c.commandOutputMaxBytes).toString("utf8");
    return {
      counted: buf.length,
      kept: Buffer.byteLength(kept),
      truncated: buf.length > kept.length,
      outcome: "finished" as string,
    };
  });

const rows: string[][] = [];
const row = (path: string, bytes: number, m: Awaited<ReturnType<typeof newPath>>) =>
  rows.push([
    path,
    `${(bytes / 1e6).toFixed(0)} MB`,
    `${m.result.counted.toLocaleString("en-US")}`,
    `${m.result.kept.toLocaleString("en-US")}${m.result.truncated ? " (truncated)" : ""}`,
    m.result.outcome,
    `${m.liveMB.toFixed(1)} MB`,
    `${m.peakMB.toFixed(1)} MB`,
    `${m.seconds.toFixed(1)} s`,
  ]);

// The new path first: the old one leaves the allocator grown, which would flatter later rows.
process.stderr.write(`new path, ${bigBytes / 1e6} MB …\n`);
row("new: streamed, bounded", bigBytes, await newPath(bigBytes));
process.stderr.write(`new path, ${oldBytes / 1e6} MB …\n`);
row("new: streamed, bounded", oldBytes, await newPath(oldBytes));
process.stderr.write(`old path, ${oldBytes / 1e6} MB …\n`);
row("old: commands.run, then cap", oldBytes, await oldPath(oldBytes));

await Sandbox.kill(sandbox.sandboxId, { apiKey: c.e2bApiKey! });
worker.postMessage("stop");

const head = [
  "path",
  "printed",
  "bytes received",
  "bytes kept",
  "outcome",
  "live growth (heap + buffers)",
  "peak incl. garbage",
  "wall",
];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => `| ${cells.map((x, i) => x.padEnd(widths[i]!)).join(" | ")} |`;
console.log(`Command output vs the action's memory (cap ${c.commandOutputMaxBytes} bytes per stream)\n`);
console.log(line(head));
console.log(`| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`);
for (const r of rows) console.log(line(r));
