// @vitest-environment node
/**
 * Drives the envd emulator (tests/emulator/envd.ts) with the REAL `e2b` SDK over loopback HTTP:
 * Sandbox.create against the control-plane emulator, then `sbx.commands.run(...)` speaks
 * Connect RPC (JSON) to envd through the same server. Host mode really runs /bin/bash here.
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  Sandbox,
  CommandExitError,
  TimeoutError,
  AuthenticationError,
  SandboxNotFoundError,
  NotFoundError,
} from "e2b";
import { E2BEmulator, useEmulatorEnv } from "./emulator/e2bEmulator";
import { startEmulatorWithEnvd, type EnvdHandler } from "./emulator/envd";
import { rejection } from "./helpers";

let emu: E2BEmulator & { envd: EnvdHandler };
let restoreEnv: () => void;
let tmp: string;

/** True once `pid` no longer runs (gone, or a zombie waiting for a reaper). */
function gone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state === "Z" || state === "X";
  } catch {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  }
}

async function waitFor(cond: () => boolean, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "envd-test-"));
  emu = await startEmulatorWithEnvd({
    envd: {
      script: (cmd) => (cmd === "scripted-in-host-mode" ? { stdout: "from script\n" } : undefined),
    },
  });
  restoreEnv = useEmulatorEnv(emu);
});

afterAll(async () => {
  restoreEnv?.();
  await emu?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("envd emulator, host mode, through the real SDK", () => {
  it("runs a command: stdout, stderr, exit code", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
    const r = await sbx.commands.run("echo hi; echo err >&2");
    expect(r).toMatchObject({ stdout: "hi\n", stderr: "err\n", exitCode: 0 });
    expect(r.error).toBeUndefined();
    // the envd call carried the sandbox headers and went through the emulator
    expect(
      emu.calls.some(
        (c) => c.sandboxID === sbx.sandboxId && c.path === "/process.Process/Start" && c.status === 200,
      ),
    ).toBe(true);
  });

  it("non-zero exit throws CommandExitError with the exit code and output", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
    const err = await rejection(sbx.commands.run("echo partial; echo oops >&2; exit 3"));
    expect(err).toBeInstanceOf(CommandExitError);
    const e = err as CommandExitError;
    expect(e.exitCode).toBe(3);
    expect(e.stdout).toBe("partial\n");
    expect(e.stderr).toBe("oops\n");
    expect(e.error).toBe("exit status 3");
  });

  it("timeoutMs kills the command: SDK TimeoutError, quickly, child gone", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
    const pidFile = path.join(tmp, "sleep.pid");
    const t0 = Date.now();
    const err = await rejection(sbx.commands.run(`sleep 5 & echo $! > ${pidFile}; wait`, { timeoutMs: 400 }));
    const took = Date.now() - t0;
    expect(err).toBeInstanceOf(TimeoutError);
    expect(took).toBeLessThan(2500);
    const sleepPid = Number(fs.readFileSync(pidFile, "utf8").trim());
    expect(sleepPid).toBeGreaterThan(0);
    expect(await waitFor(() => gone(sleepPid))).toBe(true);
    expect(await waitFor(() => emu.envd.processes().length === 0)).toBe(true);
  });

  it("streams large output intact (~230 KB, many 32 KiB data events)", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
    const chunks: string[] = [];
    const r = await sbx.commands.run("seq 1 40000", { onStdout: (d) => void chunks.push(d) });
    const expected = Array.from({ length: 40000 }, (_, i) => `${i + 1}\n`).join("");
    expect(r.stdout.length).toBe(expected.length);
    expect(r.stdout).toBe(expected);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.join("")).toBe(expected);
  });

  it("passes envs (request envs over sandbox envVars) and cwd", async () => {
    const sbx = await Sandbox.create("base", {
      timeoutMs: 60_000,
      envs: { FROM_SANDBOX: "s", BOTH: "sandbox" },
    });
    const r = await sbx.commands.run('echo "$FOO|$FROM_SANDBOX|$BOTH|$(pwd)"', {
      envs: { FOO: "bar baz", BOTH: "request" },
      cwd: tmp,
    });
    expect(r.stdout).toBe(`bar baz|s|request|${fs.realpathSync(tmp)}\n`);
    // a cwd that only exists inside a real sandbox falls back to the sandbox's home
    const home = await sbx.commands.run('pwd; echo "$HOME"', { cwd: "/home/user/definitely-not-here" });
    const [pwd, homeVar] = home.stdout.trim().split("\n");
    expect(pwd).toBe(fs.realpathSync(homeVar!));
  });

  it("a background child does not hold the command open (pipes close when bash exits)", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
    const pidFile = path.join(tmp, "orphan.pid");
    const t0 = Date.now();
    const r = await sbx.commands.run(`sleep 5 & echo $! > ${pidFile}; echo done`);
    expect(r.stdout).toBe("done\n");
    expect(Date.now() - t0).toBeLessThan(2000);
    // host hygiene: what the command left in its process group is killed
    const orphan = Number(fs.readFileSync(pidFile, "utf8").trim());
    expect(await waitFor(() => gone(orphan))).toBe(true);
  });

  it("script answers are consulted first in host mode", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
    expect((await sbx.commands.run("scripted-in-host-mode")).stdout).toBe("from script\n");
  });

  it("background command: list and kill through SendSignal", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
    const h = await sbx.commands.run("sleep 5", { background: true });
    expect((await sbx.commands.list()).map((p) => p.pid)).toContain(h.pid);
    expect(await sbx.commands.kill(h.pid)).toBe(true);
    const err = await rejection(h.wait());
    expect(err).toBeInstanceOf(CommandExitError);
    expect((err as CommandExitError).exitCode).toBe(-1);
    expect((err as CommandExitError).error).toBe("signal: killed");
    expect(await sbx.commands.kill(h.pid)).toBe(false); // NotFound -> false
  });

  it("a wrong access token is rejected (401 -> AuthenticationError); /health needs none", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
    Object.assign(sbx as unknown as { envdAccessToken: string }, { envdAccessToken: "not-the-token" });
    const err = await rejection(sbx.commands.run("echo never"));
    expect(err).toBeInstanceOf(AuthenticationError);

    const raw = await fetch(`${emu.url}/process.Process/List`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "E2b-Sandbox-Id": sbx.sandboxId,
        "X-Access-Token": "nope",
      },
      body: "{}",
    });
    expect(raw.status).toBe(401);
    expect(await raw.json()).toMatchObject({ code: 401 });
    const health = await fetch(`${emu.url}/health`, { headers: { "E2b-Sandbox-Id": sbx.sandboxId } });
    expect(health.status).toBe(204);
    expect(await sbx.isRunning()).toBe(true);
  });

  it("a command on a killed sandbox fails (the emulator answers 502)", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
    await sbx.kill();
    const err = await rejection(sbx.commands.run("echo hi"));
    expect(err).toBeInstanceOf(SandboxNotFoundError); // SDK: Unavailable (HTTP 502) on Start
    const last = emu.calls.filter((c) => c.sandboxID === sbx.sandboxId && c.endpoint === "other").at(-1);
    expect(last?.status).toBe(502);
    expect(await sbx.isRunning()).toBe(false);
  });

  it("killing the sandbox under a running command ends it with an error and kills the child", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
    const pidFile = path.join(tmp, "victim.pid");
    const h = await sbx.commands.run(`echo $$ > ${pidFile}; sleep 5`, { background: true });
    await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").trim() !== "");
    emu.killDirect(sbx.sandboxId);
    const t0 = Date.now();
    const err = await rejection(h.wait());
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(err).toBeInstanceOf(TimeoutError); // SDK: connection dropped + /health 502
    expect(await waitFor(() => gone(h.pid))).toBe(true);
  });

  it("proxy502 fault: E2B's proxy says 'sandbox not found' for a live sandbox; the next call works", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
    emu.envdFault({ kind: "proxy502" });
    const err = await rejection(sbx.commands.run("echo hi"));
    expect(err).toBeInstanceOf(SandboxNotFoundError);
    const last = emu.calls.filter((c) => c.sandboxID === sbx.sandboxId && c.endpoint === "other").at(-1);
    expect(last?.status).toBe(502);
    expect((await Sandbox.getInfo(sbx.sandboxId)).state).toBe("running");
    expect((await sbx.commands.run("echo hi")).stdout).toBe("hi\n");

    const other = await Sandbox.create("base", { timeoutMs: 60_000 });
    emu.envdFault({ kind: "proxy502", sandboxId: other.sandboxId });
    expect((await sbx.commands.run("echo mine")).stdout).toBe("mine\n"); // not its target
    expect(await rejection(other.commands.run("echo hi"))).toBeInstanceOf(SandboxNotFoundError);
  });

  it("killEnvd: every envd call fails (closed port 502) and running commands die, while the control plane says running", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
    const pidFile = path.join(tmp, "envd-victim.pid");
    const h = await sbx.commands.run(`echo $$ > ${pidFile}; sleep 5`, { background: true });
    await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").trim() !== "");
    emu.killEnvd(sbx.sandboxId);
    await rejection(h.wait());
    expect(await waitFor(() => gone(h.pid))).toBe(true);
    expect(await rejection(sbx.commands.run("echo hi"))).toBeInstanceOf(SandboxNotFoundError);
    const health = await fetch(`${emu.url}/health`, { headers: { "E2b-Sandbox-Id": sbx.sandboxId } });
    expect(health.status).toBe(502);
    expect(await health.json()).toMatchObject({ message: "The sandbox is running but port is not open" });
    expect(await sbx.isRunning()).toBe(false); // the SDK's own probe reads the data plane
    expect((await Sandbox.getInfo(sbx.sandboxId)).state).toBe("running");
    expect(emu.isAlive(sbx.sandboxId)).toBe(true);
  });

  it("commands.connect re-attaches to a running command after the first stream went away; unknown pid → NotFound", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
    const marker = path.join(tmp, "connect-go");
    const h = await sbx.commands.run(`while [ ! -e ${marker} ]; do sleep 0.05; done; echo after; exit 3`, {
      background: true,
    });
    await h.disconnect(); // the client leaves; envd keeps the process (services/process/start.go)
    expect(emu.envd.processes().map((p) => p.pid)).toContain(h.pid);
    const again = await sbx.commands.connect(h.pid);
    expect(again.pid).toBe(h.pid);
    fs.writeFileSync(marker, "");
    const err = await rejection(again.wait());
    expect(err).toBeInstanceOf(CommandExitError);
    expect(err).toMatchObject({ exitCode: 3, stdout: "after\n" });
    expect(await rejection(sbx.commands.connect(987654))).toBeInstanceOf(NotFoundError);
  });

  it("autoResume: a command sent to the paused sandbox resumes it first; without it the call fails", async () => {
    const auto = await Sandbox.create("base", { lifecycle: { onTimeout: "pause", autoResume: true } });
    await auto.pause();
    expect((await auto.commands.run("echo woke")).stdout).toBe("woke\n");
    expect(emu.get(auto.sandboxId)!.state).toBe("running");
    const plain = await Sandbox.create("base", { lifecycle: { onTimeout: "pause" } });
    await plain.pause();
    expect(await rejection(plain.commands.run("echo no"))).toBeInstanceOf(SandboxNotFoundError);
    expect(emu.get(plain.sandboxId)!.state).toBe("paused");
  });

  it("Sandbox.connect(id) then commands work", async () => {
    const created = await Sandbox.create("base", { timeoutMs: 60_000 });
    const sbx = await Sandbox.connect(created.sandboxId);
    expect((await sbx.commands.run("echo connected")).stdout).toBe("connected\n");
  });
});

describe("envd emulator, scripted mode", () => {
  let s: E2BEmulator & { envd: EnvdHandler };
  let restore: () => void;
  const activity: string[] = [];

  beforeAll(async () => {
    s = await startEmulatorWithEnvd({
      envd: {
        runMode: "scripted",
        onActivity: (id) => void activity.push(id),
        script: (cmd) => {
          if (cmd === "whoami") return { stdout: "user\n" };
          if (cmd === "false") return { stderr: "nope\n", exitCode: 1 };
          if (cmd === "slow") return { stdout: "late\n", delayMs: 5000 };
          return undefined;
        },
      },
    });
  });
  afterAll(async () => {
    await s?.stop();
  });

  it("answers from the script without running anything", async () => {
    restore = useEmulatorEnv(s);
    try {
      const sbx = await Sandbox.create("base", { timeoutMs: 60_000 });
      expect(await sbx.commands.run("whoami")).toMatchObject({ stdout: "user\n", stderr: "", exitCode: 0 });
      const err = await rejection(sbx.commands.run("false"));
      expect(err).toBeInstanceOf(CommandExitError);
      expect(err).toMatchObject({ exitCode: 1, stderr: "nope\n" });
      const unknown = await rejection(sbx.commands.run("rm -rf /"));
      expect(unknown).toMatchObject({ exitCode: 127 });
      expect((unknown as CommandExitError).stderr).toContain("command not found");
      const t0 = Date.now();
      expect(await rejection(sbx.commands.run("slow", { timeoutMs: 300 }))).toBeInstanceOf(TimeoutError);
      expect(Date.now() - t0).toBeLessThan(2000);
      expect(await waitFor(() => s.envd.processes().length === 0)).toBe(true);
      expect(activity.length).toBeGreaterThanOrEqual(4);
      expect(new Set(activity)).toEqual(new Set([sbx.sandboxId]));
    } finally {
      restore();
    }
  });
});

/**
 * The lifecycle behaviours e2b's own JS SDK tests assert against the real service
 * (e2b-dev/E2B packages/js-sdk/tests/sandbox/{create,connect,kill,pause,timeout}.test.ts),
 * checked here against the emulator, on its clock instead of real waits.
 */
describe("the SDK's own lifecycle expectations hold against the emulator", () => {
  let s: E2BEmulator & { envd: EnvdHandler };
  let restore: () => void;
  let now = Date.parse("2030-01-01T00:00:00Z");

  beforeAll(async () => {
    s = await startEmulatorWithEnvd({ clock: () => now, envd: { runMode: "scripted" } });
    restore = useEmulatorEnv(s);
  });
  afterAll(async () => {
    restore?.();
    await s?.stop();
  });

  it("create: running, envd version known; its metadata is listed", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 5_000, metadata: { "test-key": "test-value" } });
    expect(await sbx.isRunning()).toBe(true);
    const listed = (await Sandbox.list().nextItems()).find((x) => x.sandboxId === sbx.sandboxId);
    expect(listed?.metadata).toEqual({ "test-key": "test-value" });
    expect(await sbx.kill()).toBe(true);
  });

  it("kill: true, and a running-state list no longer has it", async () => {
    const sbx = await Sandbox.create("base", { metadata: { t: "kill" } });
    expect(await sbx.kill()).toBe(true);
    const items = await Sandbox.list({ query: { state: ["running"], metadata: { t: "kill" } } }).nextItems();
    expect(items.map((x) => x.sandboxId)).not.toContain(sbx.sandboxId);
  });

  it("connect: to a running one; resumes a paused one; a killed one → SandboxNotFoundError", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 10_000 });
    expect(await (await Sandbox.connect(sbx.sandboxId)).isRunning()).toBe(true);
    await sbx.pause();
    expect(await sbx.isRunning()).toBe(false);
    expect(await (await Sandbox.connect(sbx.sandboxId)).isRunning()).toBe(true);
    await sbx.kill();
    await expect(Sandbox.connect(sbx.sandboxId)).rejects.toMatchObject({ name: "SandboxNotFoundError" });
  });

  it("connect never shortens a running sandbox's timeout, and extends it when asked for more", async () => {
    const sbx = await Sandbox.create("base", { timeoutMs: 300_000 });
    const before = (await Sandbox.getInfo(sbx.sandboxId)).endAt.getTime();
    await Sandbox.connect(sbx.sandboxId, { timeoutMs: 10_000 });
    expect((await sbx.getInfo()).endAt.getTime()).toBe(before);
    await sbx.connect({ timeoutMs: 600_000 });
    expect((await sbx.getInfo()).endAt.getTime()).toBeGreaterThan(before);
  });

  it("pause: true, then false when already paused; a connected handle pauses too", async () => {
    const sbx = await Sandbox.create("base");
    const connected = await Sandbox.connect(sbx.sandboxId);
    expect(await connected.pause()).toBe(true);
    expect(await connected.isRunning()).toBe(false);
    expect(await sbx.pause()).toBe(false);
  });

  it("setTimeout: shortened to 5 s it is gone 6 s later; shortened then lengthened it still runs", async () => {
    const a = await Sandbox.create("base");
    await a.setTimeout(5_000);
    now += 6_000;
    expect(await a.isRunning()).toBe(false);
    const b = await Sandbox.create("base");
    await b.setTimeout(5_000);
    now += 1_000;
    await b.setTimeout(10_000);
    now += 6_000;
    expect(await b.isRunning()).toBe(true);
    expect((await b.getInfo()).endAt).toBeInstanceOf(Date);
  });
});
