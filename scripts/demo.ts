// `npm run demo`: the real Convex functions in-process (convex-test), driving the real e2b SDK
// against the project's local E2B emulator on 127.0.0.1, on a simulated clock. No cloud, no keys.
// Reads top to bottom as a story; every number it prints is measured, none is scripted.
import { api } from "../convex/_generated/api";
import * as lifecycle from "../convex/lifecycle";
import { getConfig, SWEEP_INTERVAL_MS } from "../convex/model/config";
import { failNextCall, runReconcile, runSweep } from "../tests/drivers";
import { useEmulatorEnv } from "../tests/emulator/e2bEmulator";
import { startEmulatorWithEnvd } from "../tests/emulator/envd";
import { installSimulatedClock, newInProcessConvex } from "./lib/inProcess";

const t0 = Date.UTC(2026, 10, 28, 12, 0, 0);
const clock = installSimulatedClock(t0);
// The emulator's envd runs commands on this machine (loopback only, demo use only).
const emu = await startEmulatorWithEnvd({ apiKey: "e2b_demo_key", clock: () => Date.now() });
const restoreEnv = useEmulatorEnv(emu, "e2b_demo_key");
process.env.SANDBOX_NAMESPACE = "demo";

const t = newInProcessConvex();
const alice = t.withIdentity({ subject: "alice", name: "Alice" });
const sweep = () => runSweep(t);
const reconcile = () => runReconcile(t);
const runs = () => t.run((ctx) => ctx.db.query("sandboxRuns").collect());

const at = () => {
  const s = Math.round((Date.now() - t0) / 1_000);
  return `${String(Math.floor(s / 60)).padStart(2)}:${String(s % 60).padStart(2, "0")}`;
};
const step = (msg: string) => console.log(`\n[${at()}] ${msg}`);
const line = (msg: string) => console.log(`        ${msg}`);
const runNames = new Map<string, string>();
const runName = (id: string) => {
  if (!runNames.has(id)) runNames.set(id, `run ${runNames.size + 1}`);
  return runNames.get(id)!;
};
const sandboxNames = new Map<string, string>();
const sandboxName = (id: string) => {
  if (!sandboxNames.has(id)) sandboxNames.set(id, `sandbox ${String.fromCharCode(65 + sandboxNames.size)}`);
  return sandboxNames.get(id)!;
};
const state = async () => {
  for (const r of await runs()) {
    const sb = r.sandboxId ? sandboxName(r.sandboxId) : "no sandbox id";
    line(
      `  ${runName(r._id).padEnd(6)} ${r.status.padEnd(9)} ${sb}${r.endReason ? `, reason: ${r.endReason}` : ""}`,
    );
  }
  const alive = emu.alive().map((s) => sandboxName(s.sandboxID));
  line(`  E2B: ${alive.length} alive${alive.length ? ` (${alive.join(", ")})` : ""}`);
};

/** Runs `fn` with console.warn captured; prints what it caught, labelled as expected. */
async function expectingWarnings<T>(fn: () => Promise<T>): Promise<T> {
  const original = console.warn;
  const caught: string[] = [];
  console.warn = (...args: unknown[]) => void caught.push(args.map(String).join(" "));
  try {
    return await fn();
  } finally {
    console.warn = original;
    for (const w of caught) line(`expected warning from the backend: "${w}"`);
  }
}

const sweepEveryMin = SWEEP_INTERVAL_MS / 60_000;
console.log(
  "A Convex backend that runs E2B cloud sandboxes and never leaks one (a sandbox bills every second).",
);
console.log(
  "Re-enacted here: E2B creates a sandbox, then the database fails before its id is saved. The system",
);
console.log("this project replaces lost track of such sandboxes and paid for each until E2B's own 5-minute");
console.log(
  "timeout; here the run was recorded first and the sandbox tagged with it, so the sweep finds it.",
);
console.log(
  `The sweep and the reconciler (two of the crons) run every ${sweepEveryMin} min; this demo calls them by hand on a simulated clock.`,
);

try {
  step("1. Alice starts a sandbox and runs a command in it.");
  const first = await alice.action(api.actions.startSandboxRun.startSandboxRun, {
    idempotencyKey: "alice-1",
  });
  line(
    `${runName(first.sandboxRunId)} → ${sandboxName(first.sandboxId)}, tagged with its run and namespace "demo"`,
  );
  const command = "echo $((6 * 7))";
  line(`$ ${command}`);
  const cmd = await alice.action(api.actions.runCommand.runCommand, {
    sandboxRunId: first.sandboxRunId,
    command,
  });
  line(`${cmd.stdout.trimEnd()}`);
  line(`(exit code ${cmd.exitCode}; a command counts as activity)`);

  clock.advance(1_000); // the next free create slot (E2B_CREATES_PER_SECOND = 1, one queued start per user)
  step("2. The failure: Alice starts another; E2B creates its sandbox, then the database goes down —");
  line("storing the sandbox id fails, the failure path's kill gets E2B 500, and recording that fails too.");
  failNextCall(lifecycle.recordSandboxId);
  failNextCall(lifecycle.settleKill);
  emu.fault("kill", { status: 500 });
  await expectingWarnings(async () => {
    try {
      await alice.action(api.actions.startSandboxRun.startSandboxRun, {});
    } catch (err) {
      const data = (err as { data?: { code: string; message: string } }).data;
      line(`Alice sees ConvexError ${data?.code}: "${data?.message}"`);
    }
  });
  line("A run with no sandbox id and a paid sandbox nobody knows the id of — where the old system stopped:");
  await state();

  clock.advance(90_000);
  step("3. The sweep: the run is past its 60 s boot deadline and has no sandbox id, so the sweep asks");
  line("E2B for sandboxes tagged with that run and kills them; only then is the run marked ended.");
  const s1 = await sweep();
  line(`sweep: ${s1.killed} killed, ${s1.failed} failed`);
  await state();

  step("4. The reconciler: a sandbox whose run record was deleted (by hand, a restore, a bug) has no");
  line("run to sweep. The reconciler lists what exists at E2B under this namespace and kills every");
  line("sandbox no live run owns (after a grace window, since a list can lag a create).");
  const third = await alice.action(api.actions.startSandboxRun.startSandboxRun, {});
  runName(third.sandboxRunId);
  sandboxName(third.sandboxId);
  await t.run((ctx) => ctx.db.delete("sandboxRuns", third.sandboxRunId));
  line(`${runName(third.sandboxRunId)} started on ${sandboxName(third.sandboxId)}, then its record deleted.`);
  // The grace window covers the longest a create can still land (E2B works on one for 70 s).
  const graceMs = getConfig().reconcileGraceMs;
  line(`Its grace window is ${Math.round(graceMs / 1000)} s; the first reconcile pass after it:`);
  clock.advance(graceMs + 1_000);
  const r1 = await reconcile();
  line(`[${at()}] reconciler: ${r1.listed} listed, ${r1.orphansKilled} orphan killed`);
  await state();

  clock.advance(t0 + 11 * 60_000 - Date.now());
  step("5. Alice has been idle 11 minutes (idle timeout 10 min): the sweep stops her first run.");
  line("E2B answers the kill with 503, so the run stays 'stopping' (a kill owed), never 'stopped'.");
  emu.fault("kill", { status: 503 });
  const s2 = await sweep();
  line(`sweep: ${s2.killed} killed, ${s2.failed} failed`);
  await state();
  clock.advance(SWEEP_INTERVAL_MS);
  const s3 = await sweep();
  line(`[${at()}] next sweep retries the owed kill: ${s3.killed} killed, ${s3.failed} failed`);
  await state();

  const all = emu.all();
  const sandboxSeconds = all.reduce((sum, s) => sum + s.runningMs, 0) / 1_000;
  const lost = all.find((s) => sandboxNames.get(s.sandboxID) === "sandbox B");
  const open = (await runs()).filter((r) => r.status !== "stopped" && r.status !== "failed").length;
  const alive = emu.alive().length;
  step("Summary");
  line(`${all.length} sandboxes created, ${Math.round(sandboxSeconds)} sandbox-seconds billed in all:`);
  for (const s of all) line(`  ${sandboxName(s.sandboxID)}: ${Math.round(s.runningMs / 1_000)} s`);
  if (lost)
    line(
      `The lost one (sandbox B) ran ${Math.round(lost.runningMs / 1_000)} s; the old system paid up to 300 s for each.`,
    );
  line(`${alive} sandboxes alive at E2B, ${open} runs not ended.`);
  process.exitCode = alive === 0 && open === 0 ? 0 : 1;
} finally {
  restoreEnv();
  await emu.stop();
  clock.restore();
}
