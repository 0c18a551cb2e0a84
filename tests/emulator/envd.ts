/**
 * A local emulator of envd, the daemon inside every E2B sandbox, for tests and the local demo.
 *
 * !! WARNING: in the default "host" run mode this RUNS THE REQUESTED COMMANDS ON THIS MACHINE,
 * !! as the current user, with NO ISOLATION of any kind (no VM, no container, no chroot, no
 * !! user switch). It exists only for tests and the local demo. Mount it only into the
 * !! E2B emulator's server, which binds 127.0.0.1; never expose it on a network. Use
 * !! `runMode: "scripted"` when the commands need not really run.
 *
 * Wire protocol (what the real `e2b` JS SDK 2.51.x sends, see its dist):
 *  - Connect RPC, JSON codec (`application/connect+json`), HTTP/1.1, on E2B_SANDBOX_URL; the
 *    sandbox is named by the `E2b-Sandbox-Id` header (plus `E2b-Sandbox-Port: 49983`), the
 *    create/connect response's `envdAccessToken` travels in `X-Access-Token`.
 *  - `process.Process/Start` (server streaming): `commands.run(cmd, opts)` sends
 *    `{process: {cmd: "/bin/bash", args: ["-l", "-c", cmd], envs, cwd}, stdin: false}` with headers
 *    `Connect-Timeout-Ms` (opts.timeoutMs, default 60 000; 0 = none), `Keepalive-Ping-Interval: 50`
 *    and, only with `opts.user`, `Authorization: Basic base64(user:)`. Answer: start{pid}, then
 *    data{stdout|stderr} chunks (<= 32 KiB each, as envd reads them), then end{exitCode, exited,
 *    status: "exit status N" | "signal: killed", error?}; keepalive{} after each idle interval.
 *  - REST `GET /health` -> 204 (no token needed, as in envd).
 * Layout: envdProtocol.ts (descriptors, message types, event shapes), envdProcess.ts (event
 * queues, fan-out to attached streams, the process table: start, supervise, end), this file
 * (the Connect routes, the HTTP front with its token check, the emulator glue).
 * Behaviour follows e2b-dev/infra packages/envd (services/process/start.go, handler/handler.go,
 * api/auth.go): a wrong/missing token answers 401 JSON; the deadline kills the process; env is
 * PATH, HOME, USER, LOGNAME, then the sandbox's envVars, then the request's envs (last wins).
 *
 *  - `process.Process/Connect` (SDK `commands.connect(pid)`): start{pid}, then the process's
 *    events from then on; an unknown or finished pid answers NotFound. As in envd, a client going
 *    away only detaches: the process runs on until it ends or its Start deadline passes.
 *
 * Deliberate deviations from the real envd:
 *  - Processes are killed when the sandbox stops being running (killed, expired, paused, envd
 *    killed) — their streams are then dropped, as a dying VM drops them. Whatever the command
 *    left running in its process group is killed when it ends (real envd leaves background
 *    children alive). Both keep the host clean.
 *  - No users: `Authorization`/`opts.user` is ignored; everything runs as the host user. HOME is
 *    a private temp dir per sandbox (so host dotfiles do not run), also the default cwd. A `cwd`
 *    that does not exist on the host is ignored (real envd answers InvalidArgument).
 *  - No PTY (Start with `pty` -> Unimplemented), no Update/StreamInput (Unimplemented),
 *    no `/files` REST and no `filesystem.Filesystem` service (both answer 501 JSON).
 *  - Scripted mode fakes pids from 1000 up; an unscripted command answers like bash would for an
 *    unknown command (stderr "...: command not found", exit 127).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { timingSafeEqual } from "node:crypto";
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type ConnectRouter,
  type HandlerContext,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { E2BEmulator, type E2BEmulatorOptions } from "./e2bEmulator";
import {
  ProcessService,
  type CloseStdinRequest,
  type ConnectRequest,
  type SendInputRequest,
  type SendSignalRequest,
  type StartRequest,
} from "./envdProtocol";
import {
  EventQueue,
  Fanout,
  ProcessTable,
  scriptKey,
  selectProc,
  type Proc,
  type ScriptedResult,
} from "./envdProcess";

export type { ScriptedResult } from "./envdProcess";
export * from "./envdProtocol";

// ------------------------------------------------------------------ public API

export interface EnvdOptions {
  /**
   * The sandbox if it is running, else undefined. `envVars` (the create body's envVars) are
   * exported to every command, as envd does after /init. Consulted on every request and
   * polled while a command runs: once it answers undefined, the command is killed.
   */
  lookup: (sandboxId: string) => { envdAccessToken?: string; envVars?: Record<string, string> } | undefined;
  /** called once per envd request that reaches a running sandbox */
  onActivity?: (sandboxId: string) => void;
  /**
   * "host" (default): really run the command with /bin/bash on this machine — NO ISOLATION,
   * loopback test use only. "scripted": answer from `script` without running anything.
   */
  runMode?: "host" | "scripted";
  /**
   * Canned answers, keyed by the command string (`commands.run`'s argument, i.e. the `-c` script
   * of `/bin/bash -l -c ...`; for other argv, cmd and args joined by spaces). Used in "scripted"
   * mode, and consulted first in "host" mode too (undefined -> really run it).
   */
  script?: (cmd: string) => ScriptedResult | undefined;
}

export interface EnvdProcessInfo {
  sandboxId: string;
  pid: number;
  cmd: string;
  args: string[];
  tag?: string;
  scripted: boolean;
}

/** The request handler, plus inspection and cleanup for tests. */
export type EnvdHandler = ((req: IncomingMessage, res: ServerResponse) => void) & {
  /** processes currently running (started and not yet ended) */
  processes(): EnvdProcessInfo[];
  /** kill every running process (SIGKILL to its process group) and remove the temp homes */
  dispose(): void;
};

// ------------------------------------------------------------------ implementation

/** envd api/auth.go: these paths skip the X-Access-Token check */
const AUTH_EXCLUDED = new Set(["GET/health", "GET/files", "POST/files", "POST/init"]);
const UNAUTHORIZED =
  "unauthorized access, please provide a valid access token or method signing if supported";

const rawRequestKey = createContextKey<IncomingMessage | undefined>(undefined, {
  description: "envd raw request",
});

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data) });
  res.end(data);
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function tokenMatches(sent: string | undefined, expected: string): boolean {
  if (sent === undefined) return false;
  const a = Buffer.from(sent);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function sandboxIdOf(ctx: HandlerContext): string {
  const id = ctx.requestHeader.get("e2b-sandbox-id");
  if (!id) throw new ConnectError("missing E2b-Sandbox-Id", Code.InvalidArgument);
  return id;
}

/** One stream of a process's events, with keepalives; detaches when the client goes away. */
async function* streamEvents(proc: Proc, q: EventQueue, ctx: HandlerContext) {
  const raw = ctx.values.get(rawRequestKey);
  if (raw) proc.out.requests.add(raw);
  // Keepalive-Ping-Interval (seconds): a keepalive event after each idle interval.
  const kaS = Number(ctx.requestHeader.get("keepalive-ping-interval") ?? "");
  let kaTimer: NodeJS.Timeout | undefined;
  const armKeepalive = () => {
    if (!(kaS > 0)) return;
    if (kaTimer) clearTimeout(kaTimer);
    kaTimer = setTimeout(() => q.push({ event: { event: { case: "keepalive", value: {} } } }), kaS * 1000);
  };
  armKeepalive();
  try {
    for await (const e of q.drain(ctx.signal)) {
      yield e;
      armKeepalive();
    }
  } finally {
    if (kaTimer) clearTimeout(kaTimer);
    proc.out.detach(q);
    if (raw) proc.out.requests.delete(raw);
  }
}

/** The scripted answer for a command, if any (scripted mode: bash's "command not found"). */
function scriptedAnswer(opts: EnvdOptions, key: string): ScriptedResult | undefined {
  const scripted = opts.script?.(key);
  if (scripted || opts.runMode !== "scripted") return scripted;
  return { stderr: `/bin/bash: line 1: ${key.split(/\s+/)[0] ?? key}: command not found\n`, exitCode: 127 };
}

/** process.Process, as envd serves it (services/process/*.go). */
function processRoutes(opts: EnvdOptions, table: ProcessTable) {
  return (router: ConnectRouter) => {
    router.service(ProcessService, {
      async *start(req: StartRequest, ctx: HandlerContext) {
        const sandboxId = sandboxIdOf(ctx);
        const sbx = opts.lookup(sandboxId);
        if (!sbx) throw new ConnectError("The sandbox was not found", Code.Unavailable);
        if (req.pty) throw new ConnectError("pty is not supported by the envd emulator", Code.Unimplemented);
        const p = req.process;
        if (!p || !p.cmd) throw new ConnectError("process.cmd is required", Code.InvalidArgument);
        const config: Proc["config"] = {
          cmd: p.cmd,
          args: [...p.args],
          envs: { ...p.envs },
          ...(p.cwd !== undefined ? { cwd: p.cwd } : {}),
        };
        const q = new EventQueue();
        const out = new Fanout();
        out.attach(q, true);
        const spec = { sandboxId, config, tag: req.tag, out };
        const answer = scriptedAnswer(opts, scriptKey(config.cmd, config.args));
        const proc = answer
          ? table.startScripted(spec, answer)
          : await table.startHost(spec, req.stdin ?? true, sbx.envVars ?? {});
        table.supervise(proc, Number(ctx.requestHeader.get("connect-timeout-ms") ?? ""));
        yield* streamEvents(proc, q, ctx);
      },

      async *connect(req: ConnectRequest, ctx: HandlerContext) {
        // Re-attach to a running process (SDK commands.connect): start{pid}, then its events from
        // now on; an unknown or finished pid -> NotFound (envd services/process/connect.go).
        const proc = selectProc(table.of(sandboxIdOf(ctx)), req.process);
        const q = new EventQueue();
        q.push({ event: { event: { case: "start", value: { pid: proc.pid } } } });
        proc.out.attach(q);
        for await (const e of streamEvents(proc, q, ctx)) yield { event: e.event };
      },

      list(_req: unknown, ctx: HandlerContext) {
        const procs = [...table.of(sandboxIdOf(ctx)).values()];
        return {
          processes: procs.map((p) => ({
            pid: p.pid,
            config: p.config,
            ...(p.tag !== undefined ? { tag: p.tag } : {}),
          })),
        };
      },

      sendSignal(req: SendSignalRequest, ctx: HandlerContext) {
        const proc = selectProc(table.of(sandboxIdOf(ctx)), req.process);
        if (req.signal === 9) proc.signal("SIGKILL");
        else if (req.signal === 15) proc.signal("SIGTERM");
        else throw new ConnectError(`invalid signal: ${req.signal}`, Code.InvalidArgument);
        return {};
      },

      sendInput(req: SendInputRequest, ctx: HandlerContext) {
        const proc = selectProc(table.of(sandboxIdOf(ctx)), req.process);
        const input = req.input?.input;
        if (input?.case === "pty")
          throw new ConnectError("tty not assigned to process", Code.FailedPrecondition);
        if (input?.case !== "stdin") return {};
        if (!proc.stdin || proc.stdin.writableEnded) {
          throw new ConnectError("stdin not enabled or closed", Code.FailedPrecondition);
        }
        proc.stdin.write(input.value);
        return {};
      },

      closeStdin(req: CloseStdinRequest, ctx: HandlerContext) {
        selectProc(table.of(sandboxIdOf(ctx)), req.process).stdin?.end();
        return {};
      },
      // update, streamInput: not implemented -> Code.Unimplemented (router default)
    });
  };
}

export function createEnvdHandler(opts: EnvdOptions): EnvdHandler {
  const table = new ProcessTable((id) => opts.lookup(id) !== undefined);
  const adapter = connectNodeAdapter({
    routes: processRoutes(opts, table),
    contextValues: (req) => createContextValues().set(rawRequestKey, req as IncomingMessage),
    fallback: (_req, res) => {
      // e.g. /files (upload/download) and filesystem.Filesystem: not emulated
      sendJson(res as ServerResponse, 501, { code: 501, message: "not implemented by the envd emulator" });
    },
  });

  const handler = ((req: IncomingMessage, res: ServerResponse) => {
    const sandboxId = header(req.headers["e2b-sandbox-id"]);
    const sbx = sandboxId ? opts.lookup(sandboxId) : undefined;
    if (!sandboxId || !sbx) {
      // what E2B's proxy answers (the emulator normally answers this before we are called)
      return sendJson(res, 502, { code: 502, message: "The sandbox was not found" });
    }
    opts.onActivity?.(sandboxId);
    const { pathname } = new URL(req.url ?? "/", "http://envd.local");
    const route = (req.method ?? "GET") + pathname;
    const token = header(req.headers["x-access-token"]);
    if (sbx.envdAccessToken && !AUTH_EXCLUDED.has(route) && !tokenMatches(token, sbx.envdAccessToken)) {
      return sendJson(res, 401, { code: 401, message: UNAUTHORIZED });
    }
    if (route === "GET/health") {
      res.writeHead(204);
      return void res.end();
    }
    adapter(req, res);
  }) as EnvdHandler;

  handler.processes = () =>
    table.all().map((p) => ({
      sandboxId: p.sandboxId,
      pid: p.pid,
      cmd: p.config.cmd,
      args: [...p.config.args],
      ...(p.tag !== undefined ? { tag: p.tag } : {}),
      scripted: p.scripted,
    }));
  handler.dispose = () => table.dispose();
  return handler;
}

/**
 * Start an E2B emulator whose running sandboxes answer envd traffic with `createEnvdHandler`
 * (host mode by default: commands REALLY RUN ON THIS MACHINE, see the header). The result is
 * an E2BEmulator; its `envd` property is the handler (inspection), and `stop()` also kills the
 * commands still running and removes the temp homes.
 */
export async function startEmulatorWithEnvd(
  opts: E2BEmulatorOptions & { envd?: Omit<EnvdOptions, "lookup"> } = {},
): Promise<E2BEmulator & { envd: EnvdHandler }> {
  const { envd, ...emuOpts } = opts;
  // The handler needs the emulator and the emulator needs the handler: the lookup reads it late.
  const started: { emu?: E2BEmulator } = {};
  const handler = createEnvdHandler({
    ...envd,
    lookup: (id) => {
      const emu = started.emu;
      if (!emu || !emu.envdReachable(id)) return undefined;
      const s = emu.get(id);
      if (!s || s.state !== "running") return undefined;
      return { envdAccessToken: s.envdAccessToken, envVars: s.envVars };
    },
  });
  const emu = await E2BEmulator.start({ ...emuOpts, envdHandler: handler });
  started.emu = emu;
  const stop = emu.stop.bind(emu);
  emu.stop = async () => {
    handler.dispose();
    await stop();
  };
  return Object.assign(emu, { envd: handler });
}
