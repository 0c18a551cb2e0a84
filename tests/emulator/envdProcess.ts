/**
 * envd's processes in the emulator: event queues and their fan-out to attached streams, and the
 * process table that starts (scripted or on the host — NO ISOLATION, see envd.ts), supervises
 * and ends them.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { IncomingMessage } from "node:http";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Writable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import { endEvent, dataEvent, type EventInit, type ProcessSelector } from "./envdProtocol";

/** envd reads stdout/stderr in 32 KiB chunks (handler.go stdChunkSize) — one data event each. */
const STD_CHUNK = 32 << 10;
/** how often a running command re-checks that its sandbox still runs */
const SANDBOX_POLL_MS = 100;
/** after the main process exits, how long to wait for its stdio to drain before cutting it */
const STDIO_GRACE_MS = 200;
/** pause the child's pipes when this many events wait to be sent */
const HIGH_WATER_EVENTS = 256;

export interface ScriptedResult {
  stdout?: string;
  stderr?: string;
  /** default 0 */
  exitCode?: number;
  /** real ms the fake command "runs" before its output and end event (default 0) */
  delayMs?: number;
}

export interface Proc {
  sandboxId: string;
  pid: number;
  config: { cmd: string; args: string[]; envs: Record<string, string>; cwd?: string };
  tag?: string;
  scripted: boolean;
  stdin?: Writable;
  /** send a signal to the process (host: its whole process group) */
  signal(sig: NodeJS.Signals): void;
  /** its events, to every attached stream (Start's, and any Connect's) */
  out: Fanout;
}

/** Where a process pushes its events. */
export interface EventSink {
  push(e: EventInit): void;
  close(): void;
  flow: { pause(): void; resume(): void } | undefined;
}

/** Events of one Start stream: pushed by the process, pulled by the RPC's async generator. */
export class EventQueue {
  private items: EventInit[] = [];
  private wake: (() => void) | undefined;
  private closed = false;
  private paused = false;
  /** set by a host process: stop/restart reading its pipes while the client lags behind */
  flow: { pause(): void; resume(): void } | undefined;

  push(e: EventInit): void {
    if (this.closed) return;
    this.items.push(e);
    if (!this.paused && this.flow && this.items.length >= HIGH_WATER_EVENTS) {
      this.paused = true;
      this.flow.pause();
    }
    this.notify();
  }

  close(): void {
    this.closed = true;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Yields queued events until closed; throws the signal's reason once it aborts. */
  async *drain(signal: AbortSignal): AsyncGenerator<EventInit> {
    const onAbort = () => this.notify();
    signal.addEventListener("abort", onAbort);
    try {
      for (;;) {
        if (signal.aborted) throw signal.reason;
        const next = this.items.shift();
        if (next !== undefined) {
          if (this.paused && this.items.length <= HIGH_WATER_EVENTS / 2) {
            this.paused = false;
            this.flow?.resume();
          }
          yield next;
          continue;
        }
        if (this.closed) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }
}

/**
 * A process's events, fanned out to every attached stream. Backpressure (flow) follows the
 * Start stream only; a Connect stream sees the events from when it attached.
 */
export class Fanout implements EventSink {
  private readonly subs = new Set<EventQueue>();
  private closed = false;
  private primary: EventQueue | undefined;
  /** raw requests of the attached streams (dropped when the sandbox dies under them) */
  readonly requests = new Set<IncomingMessage>();

  get flow() {
    return this.primary?.flow;
  }
  set flow(f: { pause(): void; resume(): void } | undefined) {
    if (this.primary) this.primary.flow = f;
  }

  attach(q: EventQueue, primary = false): void {
    if (primary) this.primary = q;
    if (this.closed) q.close();
    else this.subs.add(q);
  }

  detach(q: EventQueue): void {
    this.subs.delete(q);
    if (q === this.primary) {
      // nobody reads the Start stream any more: never leave the process blocked on its pipes
      q.flow?.resume();
      this.primary = undefined;
    }
  }

  push(e: EventInit): void {
    for (const q of this.subs) q.push(e);
  }

  close(): void {
    this.closed = true;
    for (const q of this.subs) q.close();
  }
}

/** The command string a script is keyed by: the `-c` script of `/bin/bash -l -c CMD`. */
export function scriptKey(cmd: string, args: string[]): string {
  const c = args.indexOf("-c");
  if (/(^|\/)(ba)?sh$/.test(cmd) && c >= 0 && c + 1 < args.length) return args[c + 1]!;
  return [cmd, ...args].join(" ");
}

export function pushChunked(q: EventSink, stream: "stdout" | "stderr", buf: Uint8Array): void {
  for (let off = 0; off < buf.length; off += STD_CHUNK) {
    q.push(dataEvent(stream, buf.subarray(off, Math.min(off + STD_CHUNK, buf.length))));
  }
}

export function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, sig); // detached: the child leads its own process group
  } catch {
    try {
      child.kill(sig);
    } catch {
      /* already gone */
    }
  }
}

export function selectProc(procs: Map<number, Proc>, sel: ProcessSelector | undefined): Proc {
  const s = sel?.selector;
  if (s?.case === "pid") {
    const p = procs.get(s.value);
    if (p) return p;
    throw new ConnectError(`process with pid ${s.value} not found`, Code.NotFound);
  }
  if (s?.case === "tag") {
    for (const p of procs.values()) if (p.tag === s.value) return p;
    throw new ConnectError(`process with tag ${s.value} not found`, Code.NotFound);
  }
  throw new ConnectError("invalid process selector", Code.InvalidArgument);
}

function procOf(spec: StartSpec, pid: number, scripted: boolean, signal: Proc["signal"]): Proc {
  const tag = spec.tag !== undefined ? { tag: spec.tag } : {};
  return { sandboxId: spec.sandboxId, pid, config: spec.config, ...tag, scripted, signal, out: spec.out };
}

/** What starting a process needs to know. */
export interface StartSpec {
  sandboxId: string;
  config: Proc["config"];
  tag: string | undefined;
  out: Fanout;
}

/**
 * Every sandbox's running processes. `isLive(sandboxId)` answers whether the sandbox still runs
 * (with envd up): once it does not, its processes are killed and their streams dropped.
 */
export class ProcessTable {
  /** sandboxId -> pid -> running process */
  private readonly running = new Map<string, Map<number, Proc>>();
  /** sandboxId -> private HOME directory (host mode) */
  private readonly homes = new Map<string, string>();
  private nextFakePid = 1000;

  constructor(private readonly isLive: (sandboxId: string) => boolean) {}

  of(sandboxId: string): Map<number, Proc> {
    let m = this.running.get(sandboxId);
    if (!m) this.running.set(sandboxId, (m = new Map()));
    return m;
  }

  all(): Proc[] {
    return [...this.running.values()].flatMap((m) => [...m.values()]);
  }

  private isRunning(p: Proc): boolean {
    return this.running.get(p.sandboxId)?.get(p.pid) === p;
  }

  private homeOf(sandboxId: string): string {
    let h = this.homes.get(sandboxId);
    if (!h) {
      h = fs.mkdtempSync(path.join(os.tmpdir(), "e2b-envd-home-"));
      this.homes.set(sandboxId, h);
    }
    return h;
  }

  /** A scripted (fake) process: its output and end after `answer.delayMs`. */
  startScripted(spec: StartSpec, answer: ScriptedResult): Proc {
    const { sandboxId, out } = spec;
    const pid = this.nextFakePid++;
    let timer: NodeJS.Timeout | undefined;
    const finish = (code: number | null, sig: NodeJS.Signals | null) => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      this.running.get(sandboxId)?.delete(pid);
      out.push(endEvent(code, sig));
      out.close();
    };
    const proc = procOf(spec, pid, true, (sig) => {
      if (this.isRunning(proc)) finish(null, sig);
    });
    this.of(sandboxId).set(pid, proc);
    out.push({ event: { event: { case: "start", value: { pid } } } });
    timer = setTimeout(() => {
      timer = undefined;
      if (answer.stdout) pushChunked(out, "stdout", Buffer.from(answer.stdout));
      if (answer.stderr) pushChunked(out, "stderr", Buffer.from(answer.stderr));
      finish(answer.exitCode ?? 0, null);
    }, answer.delayMs ?? 0);
    return proc;
  }

  /** The working directory: the requested one if it exists on the host, else the sandbox home. */
  private cwdOf(home: string, wanted: string | undefined): string {
    if (!wanted) return home;
    const dir =
      wanted === "~"
        ? home
        : wanted.startsWith("~/")
          ? path.join(home, wanted.slice(2))
          : path.resolve(home, wanted);
    try {
      return fs.statSync(dir).isDirectory() ? dir : home;
    } catch {
      return home; // not on this host: keep the sandbox home
    }
  }

  /** Spawn a real host process (argv exactly as requested). Resolves once it has a pid. */
  startHost(spec: StartSpec, stdinEnabled: boolean, envVars: Record<string, string>): Promise<Proc> {
    const { config: cfg } = spec;
    const home = this.homeOf(spec.sandboxId);
    const user = os.userInfo().username;
    // envd: PATH from its own env, the user's HOME/USER/LOGNAME, sandbox env vars, request envs.
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
      HOME: home,
      USER: user,
      LOGNAME: user,
      ...envVars,
      ...cfg.envs,
    };
    const child = spawn(cfg.cmd, cfg.args, {
      cwd: this.cwdOf(home, cfg.cwd),
      env,
      stdio: [stdinEnabled ? "pipe" : "ignore", "pipe", "pipe"],
      detached: true, // own process group, so a kill reaches bash's children too
    });
    return new Promise<Proc>((resolve, reject) => {
      child.once("error", (err) => {
        if (child.pid !== undefined) return;
        const userCmd = [cfg.cmd, ...cfg.args].join(" ");
        reject(new ConnectError(`error starting process '${userCmd}': ${err.message}`, Code.InvalidArgument));
      });
      child.once("spawn", () => resolve(this.track(spec, child)));
    });
  }

  /** A spawned child: its start event, output chunks with backpressure, and its end. */
  private track(spec: StartSpec, child: ChildProcess): Proc {
    const { sandboxId, out } = spec;
    const pid = child.pid as number;
    let ended = false;
    const proc = procOf(spec, pid, false, (sig) => {
      if (!ended) killGroup(child, sig);
    });
    if (child.stdin) proc.stdin = child.stdin;
    child.stdin?.on("error", () => undefined); // EPIPE when the process is gone
    this.of(sandboxId).set(pid, proc);
    out.push({ event: { event: { case: "start", value: { pid } } } });

    const pipes = [child.stdout!, child.stderr!];
    child.stdout!.on("data", (b: Buffer) => pushChunked(out, "stdout", b));
    child.stderr!.on("data", (b: Buffer) => pushChunked(out, "stderr", b));
    out.flow = {
      pause: () => pipes.forEach((p) => p.pause()),
      resume: () => pipes.forEach((p) => p.resume()),
    };
    let graceTimer: NodeJS.Timeout | undefined;
    child.once("exit", () => {
      // like envd's cmd.Wait(): once the process exits its pipes are closed, even if a
      // background child still holds them open
      out.flow?.resume();
      out.flow = undefined;
      graceTimer = setTimeout(() => pipes.forEach((p) => p.destroy()), STDIO_GRACE_MS);
    });
    child.once("close", (code, sig) => {
      if (graceTimer) clearTimeout(graceTimer);
      this.running.get(sandboxId)?.delete(pid);
      killGroup(child, "SIGKILL"); // leftovers in the group (host hygiene; see envd.ts)
      ended = true; // from now on the pid may be reused: never signal it again
      out.push(endEvent(code, sig));
      out.close();
    });
    return proc;
  }

  /**
   * The process's own life, independent of any stream: its deadline (Connect-Timeout-Ms of the
   * Start; 0 or absent = none) kills it, as does its sandbox no longer running — which also
   * drops every attached stream, as a dying VM drops them. A client going away only detaches.
   */
  supervise(proc: Proc, timeoutMs: number): void {
    const deadline = timeoutMs > 0 ? setTimeout(() => proc.signal("SIGKILL"), timeoutMs) : undefined;
    const poll = setInterval(() => {
      if (!this.isRunning(proc)) {
        clearInterval(poll);
        if (deadline) clearTimeout(deadline);
        return;
      }
      if (this.isLive(proc.sandboxId)) return;
      proc.signal("SIGKILL");
      for (const r of proc.out.requests) r.socket.destroy();
    }, SANDBOX_POLL_MS);
  }

  /** Kill every running process (SIGKILL to its group) and remove the temp homes. */
  dispose(): void {
    for (const p of this.all()) p.signal("SIGKILL");
    for (const dir of this.homes.values()) fs.rmSync(dir, { recursive: true, force: true });
    this.homes.clear();
  }
}
