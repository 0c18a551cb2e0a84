// `npm run demo`: the real Convex functions, in-process (convex-test), driving the real e2b SDK
// against the project's local E2B emulator on 127.0.0.1. No cloud, no keys. Walks through a
// start, the seed's failure (database down right after the sandbox was created), and sweeps.
import { api, internal } from "../convex/_generated/api";
import * as lifecycle from "../convex/lifecycle";
import { useEmulatorEnv } from "../tests/emulator/e2bEmulator";
import { startEmulatorWithEnvd } from "../tests/emulator/envd";
import { installSimulatedClock, newInProcessConvex } from "./lib/inProcess";

const clock = installSimulatedClock(Date.UTC(2026, 10, 28, 12, 0, 0));
// The emulator's envd runs commands on this machine (loopback only, demo use only).
const emu = await startEmulatorWithEnvd({ apiKey: "e2b_demo_key", clock: () => Date.now() });
const restoreEnv = useEmulatorEnv(emu, "e2b_demo_key");
process.env.SANDBOX_NAMESPACE = "demo";

const t = newInProcessConvex();
const alice = t.withIdentity({ subject: "alice", name: "Alice" });
const sweep = () => t.action(internal.actions.killIdleSandboxes.killIdleSandboxes, {});
const runs = () => t.run((ctx) => ctx.db.query("sandboxRuns").collect());
let minute = 0;
const say = (msg: string) => console.log(`[t+${minute.toFixed(1).padStart(4)}m] ${msg}`);
const advance = (mins: number) => {
  clock.advance(mins * 60_000);
  minute += mins;
};
const show = async () => {
  for (const r of await runs()) {
    say(
      `   run #${parseInt(r._id, 10)} ${r.status.padEnd(8)} sandbox=${r.sandboxId ?? "(none)"} ${r.endReason ? `reason=${r.endReason}` : ""}`,
    );
  }
  say(
    `   E2B: ${emu.alive().length} sandbox(es) alive: ${
      emu
        .alive()
        .map((s) => s.sandboxID)
        .join(", ") || "-"
    }`,
  );
};

/** Makes one registered function throw on its next call, as if the database were down. */
function failOnce(fn: unknown) {
  const f = fn as { _handler: (...a: unknown[]) => unknown };
  const original = f._handler;
  f._handler = async () => {
    f._handler = original;
    throw new Error("simulated: database unavailable");
  };
}

try {
  say("1. Alice starts a sandbox run.");
  const ok = await alice.action(api.actions.startSandboxRun.startSandboxRun, {});
  say(
    `   -> run #${parseInt(ok.sandboxRunId, 10)}, sandbox ${ok.sandboxId} (tagged convexNamespace=demo, convexRunId=<run>)`,
  );
  await show();
  const cmd = await alice.action(api.actions.runCommand.runCommand, {
    sandboxRunId: ok.sandboxRunId,
    command: "echo $((6 * 7)); exit 3",
  });
  say(
    `   Alice runs a command: status=${cmd.status} exit=${cmd.exitCode} stdout=${JSON.stringify(cmd.stdout)} (${cmd.durationMs} ms; counts as activity)`,
  );

  say("2. The seed's failure: E2B creates the sandbox, then the database goes down,");
  say("   so storing the sandboxId fails, the failure path's kill fails (E2B 500) and its record fails.");
  clock.advance(1_000); // the next free create slot (E2B_CREATES_PER_SECOND = 1, one queued start per user)
  failOnce(lifecycle.storeSandboxId);
  failOnce(lifecycle.recordKill);
  emu.fault("kill", { status: 500 });
  try {
    await alice.action(api.actions.startSandboxRun.startSandboxRun, {});
  } catch (err) {
    const data = (err as { data?: { code: string; message: string } }).data;
    say(`   -> the caller sees ConvexError ${data?.code}: ${data?.message}`);
  }
  say("   The old system is stuck here for good: a booting run with no sandboxId, a paid sandbox running.");
  await show();

  advance(1.5);
  say("3. 90 s later the cron sweeps: the run is past its boot deadline, has no id,");
  say("   so the sweep lists E2B sandboxes by the run's tag and kills every match.");
  const s1 = await sweep();
  say(`   -> sweep: killed=${s1.killed} failed=${s1.failed} extended=${s1.extended}`);
  await show();

  advance(9.5);
  say("4. Alice has been idle for 11 minutes (idle timeout 10 min): the sweep stops her first run.");
  emu.fault("kill", { status: 503 });
  const s2 = await sweep();
  say(
    `   -> sweep: killed=${s2.killed} failed=${s2.failed}: E2B answered 503, so the kill stays owed (run 'stopping').`,
  );
  await show();
  advance(0.5);
  say("   Thirty seconds later the next sweep retries the owed kill.");
  const s3 = await sweep();
  say(`   -> next sweep: killed=${s3.killed} failed=${s3.failed}`);
  await show();

  say("   (Had Convex been down the whole time, E2B's own lifetime — idle timeout + 2 min slack,");
  say("   extended only while the run is active — would have ended it at t+12m.)");
  const stats = await t.action(internal.admin.stats, {});
  say(`Stats: runs ${JSON.stringify(stats.runsByStatus)}, kills ${JSON.stringify(stats.killsByOutcome)}`);
  const leaked = emu.alive().length;
  const open = (await runs()).filter((r) => r.status !== "stopped" && r.status !== "failed").length;
  say(`Done: ${leaked} sandbox(es) alive at E2B, ${open} run(s) not terminal.`);
  process.exitCode = leaked === 0 && open === 0 ? 0 : 1;
} finally {
  restoreEnv();
  await emu.stop();
  clock.restore();
}
