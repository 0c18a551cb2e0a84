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
 * Behaviour follows e2b-dev/infra packages/envd (services/process/start.go, handler/handler.go,
 * api/auth.go): a wrong/missing token answers 401 JSON; the deadline kills the process; env is
 * PATH, HOME, USER, LOGNAME, then the sandbox's envVars, then the request's envs (last wins).
 *
 * Deliberate deviations from the real envd:
 *  - When the client goes away (abort, disconnect) the process is killed; real envd keeps it
 *    running until its deadline (so `commands.connect` could re-attach). Processes are also killed
 *    when the sandbox stops being running (killed, expired, paused) — the stream is then dropped,
 *    as a dying VM drops it. Whatever the command left running in its process group is killed
 *    when it ends (real envd leaves background children alive). All this keeps the host clean.
 *  - No users: `Authorization`/`opts.user` is ignored; everything runs as the host user. HOME is
 *    a private temp dir per sandbox (so host dotfiles do not run), also the default cwd. A `cwd`
 *    that does not exist on the host is ignored (real envd answers InvalidArgument).
 *  - No PTY (Start with `pty` -> Unimplemented), no Connect/Update/StreamInput (Unimplemented),
 *    no `/files` REST and no `filesystem.Filesystem` service (both answer 501 JSON).
 *  - Scripted mode fakes pids from 1000 up; an unscripted command answers like bash would for an
 *    unknown command (stderr "...: command not found", exit 127).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { spawn, type ChildProcess } from "node:child_process";
import { timingSafeEqual } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Writable } from "node:stream";
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type ConnectRouter,
  type HandlerContext,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Message, MessageInitShape } from "@bufbuild/protobuf";
import {
  fileDesc,
  messageDesc,
  serviceDesc,
  type GenFile,
  type GenMessage,
  type GenService,
} from "@bufbuild/protobuf/codegenv2";
import { E2BEmulator, type E2BEmulatorOptions } from "./e2bEmulator";

// ------------------------------------------------------------------ protobuf descriptors
//
// `e2b` does not export its generated envd descriptors, so process/process.proto is re-declared
// here: the serialized FileDescriptorProto below is copied verbatim from the SDK's dist
// (node_modules/e2b/dist/index.mjs, `const Process = serviceDesc(fileDesc("ChVwcm9j..."))`),
// hence wire-identical. Message indices follow the .proto order.

/** @generated-copy file process/process.proto (from e2b@2.51.0 dist) */
export const file_process_process: GenFile = /*@__PURE__*/ fileDesc(
  "ChVwcm9jZXNzL3Byb2Nlc3MucHJvdG8SB3Byb2Nlc3MiSgoDUFRZEh8KBHNpemUYASABKAsyES5wcm9jZXNzLlBUWS5TaXplGiIKBFNpemUSDAoEY29s" +
    "cxgBIAEoDRIMCgRyb3dzGAIgASgNIqEBCg1Qcm9jZXNzQ29uZmlnEgsKA2NtZBgBIAEoCRIMCgRhcmdzGAIgAygJEi4KBGVudnMYAyADKAsyIC5wcm9j" +
    "ZXNzLlByb2Nlc3NDb25maWcuRW52c0VudHJ5EhAKA2N3ZBgEIAEoCUgAiAEBGisKCUVudnNFbnRyeRILCgNrZXkYASABKAkSDQoFdmFsdWUYAiABKAk6" +
    "AjgBQgYKBF9jd2QiDQoLTGlzdFJlcXVlc3QiXAoLUHJvY2Vzc0luZm8SJgoGY29uZmlnGAEgASgLMhYucHJvY2Vzcy5Qcm9jZXNzQ29uZmlnEgsKA3Bp" +
    "ZBgCIAEoDRIQCgN0YWcYAyABKAlIAIgBAUIGCgRfdGFnIjcKDExpc3RSZXNwb25zZRInCglwcm9jZXNzZXMYASADKAsyFC5wcm9jZXNzLlByb2Nlc3NJ" +
    "bmZvIpcBCgxTdGFydFJlcXVlc3QSJwoHcHJvY2VzcxgBIAEoCzIWLnByb2Nlc3MuUHJvY2Vzc0NvbmZpZxIeCgNwdHkYAiABKAsyDC5wcm9jZXNzLlBU" +
    "WUgAiAEBEhAKA3RhZxgDIAEoCUgBiAEBEhIKBXN0ZGluGAQgASgISAKIAQFCBgoEX3B0eUIGCgRfdGFnQggKBl9zdGRpbiJiCg1VcGRhdGVSZXF1ZXN0" +
    "EikKB3Byb2Nlc3MYASABKAsyGC5wcm9jZXNzLlByb2Nlc3NTZWxlY3RvchIeCgNwdHkYAiABKAsyDC5wcm9jZXNzLlBUWUgAiAEBQgYKBF9wdHkiEAoO" +
    "VXBkYXRlUmVzcG9uc2UirwMKDFByb2Nlc3NFdmVudBIxCgVzdGFydBgBIAEoCzIgLnByb2Nlc3MuUHJvY2Vzc0V2ZW50LlN0YXJ0RXZlbnRIABIvCgRk" +
    "YXRhGAIgASgLMh8ucHJvY2Vzcy5Qcm9jZXNzRXZlbnQuRGF0YUV2ZW50SAASLQoDZW5kGAMgASgLMh4ucHJvY2Vzcy5Qcm9jZXNzRXZlbnQuRW5kRXZl" +
    "bnRIABI0CglrZWVwYWxpdmUYBCABKAsyHy5wcm9jZXNzLlByb2Nlc3NFdmVudC5LZWVwQWxpdmVIABoZCgpTdGFydEV2ZW50EgsKA3BpZBgBIAEoDRpI" +
    "CglEYXRhRXZlbnQSEAoGc3Rkb3V0GAEgASgMSAASEAoGc3RkZXJyGAIgASgMSAASDQoDcHR5GAMgASgMSABCCAoGb3V0cHV0GlsKCEVuZEV2ZW50EhEK" +
    "CWV4aXRfY29kZRgBIAEoERIOCgZleGl0ZWQYAiABKAgSDgoGc3RhdHVzGAMgASgJEhIKBWVycm9yGAQgASgJSACIAQFCCAoGX2Vycm9yGgsKCUtlZXBB" +
    "bGl2ZUIHCgVldmVudCI1Cg1TdGFydFJlc3BvbnNlEiQKBWV2ZW50GAEgASgLMhUucHJvY2Vzcy5Qcm9jZXNzRXZlbnQiNwoPQ29ubmVjdFJlc3BvbnNl" +
    "EiQKBWV2ZW50GAEgASgLMhUucHJvY2Vzcy5Qcm9jZXNzRXZlbnQiYwoQU2VuZElucHV0UmVxdWVzdBIpCgdwcm9jZXNzGAEgASgLMhgucHJvY2Vzcy5Q" +
    "cm9jZXNzU2VsZWN0b3ISJAoFaW5wdXQYAiABKAsyFS5wcm9jZXNzLlByb2Nlc3NJbnB1dCITChFTZW5kSW5wdXRSZXNwb25zZSI3CgxQcm9jZXNzSW5w" +
    "dXQSDwoFc3RkaW4YASABKAxIABINCgNwdHkYAiABKAxIAEIHCgVpbnB1dCLCAgoSU3RyZWFtSW5wdXRSZXF1ZXN0EjcKBXN0YXJ0GAEgASgLMiYucHJv" +
    "Y2Vzcy5TdHJlYW1JbnB1dFJlcXVlc3QuU3RhcnRFdmVudEgAEjUKBGRhdGEYAiABKAsyJS5wcm9jZXNzLlN0cmVhbUlucHV0UmVxdWVzdC5EYXRhRXZl" +
    "bnRIABI6CglrZWVwYWxpdmUYAyABKAsyJS5wcm9jZXNzLlN0cmVhbUlucHV0UmVxdWVzdC5LZWVwQWxpdmVIABo3CgpTdGFydEV2ZW50EikKB3Byb2Nl" +
    "c3MYASABKAsyGC5wcm9jZXNzLlByb2Nlc3NTZWxlY3RvchoxCglEYXRhRXZlbnQSJAoFaW5wdXQYAiABKAsyFS5wcm9jZXNzLlByb2Nlc3NJbnB1dBoL" +
    "CglLZWVwQWxpdmVCBwoFZXZlbnQiFQoTU3RyZWFtSW5wdXRSZXNwb25zZSJfChFTZW5kU2lnbmFsUmVxdWVzdBIpCgdwcm9jZXNzGAEgASgLMhgucHJv" +
    "Y2Vzcy5Qcm9jZXNzU2VsZWN0b3ISHwoGc2lnbmFsGAIgASgOMg8ucHJvY2Vzcy5TaWduYWwiFAoSU2VuZFNpZ25hbFJlc3BvbnNlIj4KEUNsb3NlU3Rk" +
    "aW5SZXF1ZXN0EikKB3Byb2Nlc3MYASABKAsyGC5wcm9jZXNzLlByb2Nlc3NTZWxlY3RvciIUChJDbG9zZVN0ZGluUmVzcG9uc2UiOwoOQ29ubmVjdFJl" +
    "cXVlc3QSKQoHcHJvY2VzcxgBIAEoCzIYLnByb2Nlc3MuUHJvY2Vzc1NlbGVjdG9yIjsKD1Byb2Nlc3NTZWxlY3RvchINCgNwaWQYASABKA1IABINCgN0" +
    "YWcYAiABKAlIAEIKCghzZWxlY3RvcipICgZTaWduYWwSFgoSU0lHTkFMX1VOU1BFQ0lGSUVEEAASEgoOU0lHTkFMX1NJR1RFUk0QDxISCg5TSUdOQUxf" +
    "U0lHS0lMTBAJMpEECgdQcm9jZXNzEjMKBExpc3QSFC5wcm9jZXNzLkxpc3RSZXF1ZXN0GhUucHJvY2Vzcy5MaXN0UmVzcG9uc2USPgoHQ29ubmVjdBIX" +
    "LnByb2Nlc3MuQ29ubmVjdFJlcXVlc3QaGC5wcm9jZXNzLkNvbm5lY3RSZXNwb25zZTABEjgKBVN0YXJ0EhUucHJvY2Vzcy5TdGFydFJlcXVlc3QaFi5w" +
    "cm9jZXNzLlN0YXJ0UmVzcG9uc2UwARI5CgZVcGRhdGUSFi5wcm9jZXNzLlVwZGF0ZVJlcXVlc3QaFy5wcm9jZXNzLlVwZGF0ZVJlc3BvbnNlEkoKC1N0" +
    "cmVhbUlucHV0EhsucHJvY2Vzcy5TdHJlYW1JbnB1dFJlcXVlc3QaHC5wcm9jZXNzLlN0cmVhbUlucHV0UmVzcG9uc2UoARJCCglTZW5kSW5wdXQSGS5w" +
    "cm9jZXNzLlNlbmRJbnB1dFJlcXVlc3QaGi5wcm9jZXNzLlNlbmRJbnB1dFJlc3BvbnNlEkUKClNlbmRTaWduYWwSGi5wcm9jZXNzLlNlbmRTaWduYWxS" +
    "ZXF1ZXN0GhsucHJvY2Vzcy5TZW5kU2lnbmFsUmVzcG9uc2USRQoKQ2xvc2VTdGRpbhIaLnByb2Nlc3MuQ2xvc2VTdGRpblJlcXVlc3QaGy5wcm9jZXNz" +
    "LkNsb3NlU3RkaW5SZXNwb25zZUJXCgtjb20ucHJvY2Vzc0IMUHJvY2Vzc1Byb3RvUAGiAgNQWFiqAgdQcm9jZXNzygIHUHJvY2Vzc+ICE1Byb2Nlc3Nc" +
    "R1BCTWV0YWRhdGHqAgdQcm9jZXNzYgZwcm90bzM",
);

export type ProcessConfig = Message<"process.ProcessConfig"> & {
  cmd: string;
  args: string[];
  envs: { [key: string]: string };
  cwd?: string;
};
export type PTY = Message<"process.PTY"> & {
  size?: Message<"process.PTY.Size"> & { cols: number; rows: number };
};
export type ProcessSelector = Message<"process.ProcessSelector"> & {
  selector:
    { value: number; case: "pid" } | { value: string; case: "tag" } | { case: undefined; value?: undefined };
};
export type ProcessInput = Message<"process.ProcessInput"> & {
  input:
    | { value: Uint8Array; case: "stdin" }
    | { value: Uint8Array; case: "pty" }
    | { case: undefined; value?: undefined };
};
export type ListRequest = Message<"process.ListRequest">;
export type ProcessInfo = Message<"process.ProcessInfo"> & {
  config?: ProcessConfig;
  pid: number;
  tag?: string;
};
export type ListResponse = Message<"process.ListResponse"> & { processes: ProcessInfo[] };
export type StartRequest = Message<"process.StartRequest"> & {
  process?: ProcessConfig;
  pty?: PTY;
  tag?: string;
  /** optional for backwards compatibility; envd treats "unset" as true */
  stdin?: boolean;
};
export type UpdateRequest = Message<"process.UpdateRequest"> & { process?: ProcessSelector; pty?: PTY };
export type UpdateResponse = Message<"process.UpdateResponse">;
export type ProcessEvent_StartEvent = Message<"process.ProcessEvent.StartEvent"> & { pid: number };
export type ProcessEvent_DataEvent = Message<"process.ProcessEvent.DataEvent"> & {
  output:
    | { value: Uint8Array; case: "stdout" }
    | { value: Uint8Array; case: "stderr" }
    | { value: Uint8Array; case: "pty" }
    | { case: undefined; value?: undefined };
};
export type ProcessEvent_EndEvent = Message<"process.ProcessEvent.EndEvent"> & {
  exitCode: number;
  exited: boolean;
  status: string;
  error?: string;
};
export type ProcessEvent_KeepAlive = Message<"process.ProcessEvent.KeepAlive">;
export type ProcessEvent = Message<"process.ProcessEvent"> & {
  event:
    | { value: ProcessEvent_StartEvent; case: "start" }
    | { value: ProcessEvent_DataEvent; case: "data" }
    | { value: ProcessEvent_EndEvent; case: "end" }
    | { value: ProcessEvent_KeepAlive; case: "keepalive" }
    | { case: undefined; value?: undefined };
};
export type StartResponse = Message<"process.StartResponse"> & { event?: ProcessEvent };
export type ConnectResponse = Message<"process.ConnectResponse"> & { event?: ProcessEvent };
export type SendInputRequest = Message<"process.SendInputRequest"> & {
  process?: ProcessSelector;
  input?: ProcessInput;
};
export type SendInputResponse = Message<"process.SendInputResponse">;
export type StreamInputRequest = Message<"process.StreamInputRequest">;
export type StreamInputResponse = Message<"process.StreamInputResponse">;
export type SendSignalRequest = Message<"process.SendSignalRequest"> & {
  process?: ProcessSelector;
  signal: number;
};
export type SendSignalResponse = Message<"process.SendSignalResponse">;
export type CloseStdinRequest = Message<"process.CloseStdinRequest"> & { process?: ProcessSelector };
export type CloseStdinResponse = Message<"process.CloseStdinResponse">;
export type ConnectRequest = Message<"process.ConnectRequest"> & { process?: ProcessSelector };

export const ListRequestSchema: GenMessage<ListRequest> = messageDesc(file_process_process, 2);
export const ListResponseSchema: GenMessage<ListResponse> = messageDesc(file_process_process, 4);
export const StartRequestSchema: GenMessage<StartRequest> = messageDesc(file_process_process, 5);
export const UpdateRequestSchema: GenMessage<UpdateRequest> = messageDesc(file_process_process, 6);
export const UpdateResponseSchema: GenMessage<UpdateResponse> = messageDesc(file_process_process, 7);
export const StartResponseSchema: GenMessage<StartResponse> = messageDesc(file_process_process, 9);
export const ConnectResponseSchema: GenMessage<ConnectResponse> = messageDesc(file_process_process, 10);
export const SendInputRequestSchema: GenMessage<SendInputRequest> = messageDesc(file_process_process, 11);
export const SendInputResponseSchema: GenMessage<SendInputResponse> = messageDesc(file_process_process, 12);
export const StreamInputRequestSchema: GenMessage<StreamInputRequest> = messageDesc(file_process_process, 14);
export const StreamInputResponseSchema: GenMessage<StreamInputResponse> = messageDesc(
  file_process_process,
  15,
);
export const SendSignalRequestSchema: GenMessage<SendSignalRequest> = messageDesc(file_process_process, 16);
export const SendSignalResponseSchema: GenMessage<SendSignalResponse> = messageDesc(file_process_process, 17);
export const CloseStdinRequestSchema: GenMessage<CloseStdinRequest> = messageDesc(file_process_process, 18);
export const CloseStdinResponseSchema: GenMessage<CloseStdinResponse> = messageDesc(file_process_process, 19);
export const ConnectRequestSchema: GenMessage<ConnectRequest> = messageDesc(file_process_process, 20);

/** service process.Process */
export const ProcessService: GenService<{
  list: { methodKind: "unary"; input: typeof ListRequestSchema; output: typeof ListResponseSchema };
  connect: {
    methodKind: "server_streaming";
    input: typeof ConnectRequestSchema;
    output: typeof ConnectResponseSchema;
  };
  start: {
    methodKind: "server_streaming";
    input: typeof StartRequestSchema;
    output: typeof StartResponseSchema;
  };
  update: { methodKind: "unary"; input: typeof UpdateRequestSchema; output: typeof UpdateResponseSchema };
  streamInput: {
    methodKind: "client_streaming";
    input: typeof StreamInputRequestSchema;
    output: typeof StreamInputResponseSchema;
  };
  sendInput: {
    methodKind: "unary";
    input: typeof SendInputRequestSchema;
    output: typeof SendInputResponseSchema;
  };
  sendSignal: {
    methodKind: "unary";
    input: typeof SendSignalRequestSchema;
    output: typeof SendSignalResponseSchema;
  };
  closeStdin: {
    methodKind: "unary";
    input: typeof CloseStdinRequestSchema;
    output: typeof CloseStdinResponseSchema;
  };
}> = /*@__PURE__*/ serviceDesc(file_process_process, 0);

// ------------------------------------------------------------------ public API

export interface ScriptedResult {
  stdout?: string;
  stderr?: string;
  /** default 0 */
  exitCode?: number;
  /** real ms the fake command "runs" before its output and end event (default 0) */
  delayMs?: number;
}

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

/** envd reads stdout/stderr in 32 KiB chunks (handler.go stdChunkSize) — one data event each. */
const STD_CHUNK = 32 << 10;
/** envd api/auth.go: these paths skip the X-Access-Token check */
const AUTH_EXCLUDED = new Set(["GET/health", "GET/files", "POST/files", "POST/init"]);
const UNAUTHORIZED =
  "unauthorized access, please provide a valid access token or method signing if supported";
/** how often a running command re-checks that its sandbox still runs */
const SANDBOX_POLL_MS = 100;
/** after the main process exits, how long to wait for its stdio to drain before cutting it */
const STDIO_GRACE_MS = 200;
/** pause the child's pipes when this many events wait to be sent */
const HIGH_WATER_EVENTS = 256;

/** Go's syscall.Signal.String() for the common signals (ProcessState.String() uses these). */
const GO_SIGNAL_NAMES: Record<string, string> = {
  SIGHUP: "hangup",
  SIGINT: "interrupt",
  SIGQUIT: "quit",
  SIGILL: "illegal instruction",
  SIGTRAP: "trace/breakpoint trap",
  SIGABRT: "aborted",
  SIGBUS: "bus error",
  SIGFPE: "floating point exception",
  SIGKILL: "killed",
  SIGUSR1: "user defined signal 1",
  SIGSEGV: "segmentation fault",
  SIGUSR2: "user defined signal 2",
  SIGPIPE: "broken pipe",
  SIGALRM: "alarm clock",
  SIGTERM: "terminated",
};

type EventInit = MessageInitShape<typeof StartResponseSchema>;

interface Proc {
  sandboxId: string;
  pid: number;
  config: { cmd: string; args: string[]; envs: Record<string, string>; cwd?: string };
  tag?: string;
  scripted: boolean;
  stdin?: Writable;
  /** send a signal to the process (host: its whole process group) */
  signal(sig: NodeJS.Signals): void;
}

const rawRequestKey = createContextKey<IncomingMessage | undefined>(undefined, {
  description: "envd raw request",
});

/** Events of one Start stream: pushed by the process, pulled by the RPC's async generator. */
class EventQueue {
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

/** The command string a script is keyed by: the `-c` script of `/bin/bash -l -c CMD`. */
function scriptKey(cmd: string, args: string[]): string {
  const c = args.indexOf("-c");
  if (/(^|\/)(ba)?sh$/.test(cmd) && c >= 0 && c + 1 < args.length) return args[c + 1]!;
  return [cmd, ...args].join(" ");
}

function dataEvent(stream: "stdout" | "stderr", bytes: Uint8Array): EventInit {
  return { event: { event: { case: "data", value: { output: { case: stream, value: bytes } } } } };
}

/** As envd's end event: Go's ProcessState.ExitCode()/Exited()/String() and cmd.Wait()'s error. */
function endEvent(code: number | null, signal: NodeJS.Signals | null): EventInit {
  let exitCode: number;
  let status: string;
  if (code !== null) {
    exitCode = code;
    status = `exit status ${code}`;
  } else {
    exitCode = -1;
    const name = signal ?? "SIGKILL";
    status = `signal: ${GO_SIGNAL_NAMES[name] ?? name}`;
  }
  const failed = code !== 0;
  return {
    event: {
      event: {
        case: "end",
        value: { exitCode, exited: code !== null, status, ...(failed ? { error: status } : {}) },
      },
    },
  };
}

function pushChunked(q: EventQueue, stream: "stdout" | "stderr", buf: Uint8Array): void {
  for (let off = 0; off < buf.length; off += STD_CHUNK) {
    q.push(dataEvent(stream, buf.subarray(off, Math.min(off + STD_CHUNK, buf.length))));
  }
}

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
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

function selectProc(procs: Map<number, Proc>, sel: ProcessSelector | undefined): Proc {
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

export function createEnvdHandler(opts: EnvdOptions): EnvdHandler {
  const runMode = opts.runMode ?? "host";
  /** sandboxId -> pid -> running process */
  const running = new Map<string, Map<number, Proc>>();
  /** sandboxId -> private HOME directory (host mode) */
  const homes = new Map<string, string>();
  let nextFakePid = 1000;

  const procsOf = (sandboxId: string): Map<number, Proc> => {
    let m = running.get(sandboxId);
    if (!m) running.set(sandboxId, (m = new Map()));
    return m;
  };

  const homeOf = (sandboxId: string): string => {
    let h = homes.get(sandboxId);
    if (!h) {
      h = fs.mkdtempSync(path.join(os.tmpdir(), "e2b-envd-home-"));
      homes.set(sandboxId, h);
    }
    return h;
  };

  const sandboxIdOf = (ctx: HandlerContext): string => {
    const id = ctx.requestHeader.get("e2b-sandbox-id");
    if (!id) throw new ConnectError("missing E2b-Sandbox-Id", Code.InvalidArgument);
    return id;
  };

  /** Start a scripted (fake) process: output and end after delayMs. */
  const startScripted = (
    sandboxId: string,
    cfg: Proc["config"],
    tag: string | undefined,
    answer: ScriptedResult,
    q: EventQueue,
  ): Proc => {
    const pid = nextFakePid++;
    let timer: NodeJS.Timeout | undefined;
    const finish = (code: number | null, sig: NodeJS.Signals | null) => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      running.get(sandboxId)?.delete(pid);
      q.push(endEvent(code, sig));
      q.close();
    };
    const proc: Proc = {
      sandboxId,
      pid,
      config: cfg,
      ...(tag !== undefined ? { tag } : {}),
      scripted: true,
      signal: (sig) => {
        if (running.get(sandboxId)?.has(pid)) finish(null, sig);
      },
    };
    procsOf(sandboxId).set(pid, proc);
    q.push({ event: { event: { case: "start", value: { pid } } } });
    timer = setTimeout(() => {
      timer = undefined;
      if (answer.stdout) pushChunked(q, "stdout", Buffer.from(answer.stdout));
      if (answer.stderr) pushChunked(q, "stderr", Buffer.from(answer.stderr));
      finish(answer.exitCode ?? 0, null);
    }, answer.delayMs ?? 0);
    return proc;
  };

  /** Spawn a real host process. Resolves once it has a pid (start event queued). */
  const startHost = (
    sandboxId: string,
    cfg: Proc["config"],
    tag: string | undefined,
    stdinEnabled: boolean,
    envVars: Record<string, string>,
    q: EventQueue,
  ): Promise<Proc> => {
    const home = homeOf(sandboxId);
    let cwd = home;
    if (cfg.cwd) {
      const wanted =
        cfg.cwd === "~"
          ? home
          : cfg.cwd.startsWith("~/")
            ? path.join(home, cfg.cwd.slice(2))
            : path.resolve(home, cfg.cwd);
      try {
        if (fs.statSync(wanted).isDirectory()) cwd = wanted;
      } catch {
        /* not on this host: keep the sandbox home */
      }
    }
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
    // argv exactly as requested (cmd + args); no shell of our own is involved.
    const child = spawn(cfg.cmd, cfg.args, {
      cwd,
      env,
      stdio: [stdinEnabled ? "pipe" : "ignore", "pipe", "pipe"],
      detached: true, // own process group, so a kill reaches bash's children too
    });
    return new Promise<Proc>((resolve, reject) => {
      child.once("error", (err) => {
        if (child.pid === undefined) {
          const userCmd = [cfg.cmd, ...cfg.args].join(" ");
          reject(
            new ConnectError(`error starting process '${userCmd}': ${err.message}`, Code.InvalidArgument),
          );
        }
      });
      child.once("spawn", () => {
        const pid = child.pid as number;
        let ended = false;
        const proc: Proc = {
          sandboxId,
          pid,
          config: cfg,
          ...(tag !== undefined ? { tag } : {}),
          scripted: false,
          ...(child.stdin ? { stdin: child.stdin } : {}),
          signal: (sig) => {
            if (!ended) killGroup(child, sig);
          },
        };
        child.stdin?.on("error", () => undefined); // EPIPE when the process is gone
        procsOf(sandboxId).set(pid, proc);
        q.push({ event: { event: { case: "start", value: { pid } } } });

        const pipes = [child.stdout!, child.stderr!];
        child.stdout!.on("data", (b: Buffer) => pushChunked(q, "stdout", b));
        child.stderr!.on("data", (b: Buffer) => pushChunked(q, "stderr", b));
        q.flow = {
          pause: () => pipes.forEach((p) => p.pause()),
          resume: () => pipes.forEach((p) => p.resume()),
        };

        let graceTimer: NodeJS.Timeout | undefined;
        child.once("exit", () => {
          // like envd's cmd.Wait(): once the process exits its pipes are closed, even if a
          // background child still holds them open
          q.flow?.resume();
          q.flow = undefined;
          graceTimer = setTimeout(() => {
            for (const p of pipes) p.destroy();
          }, STDIO_GRACE_MS);
        });
        child.once("close", (code, sig) => {
          if (graceTimer) clearTimeout(graceTimer);
          running.get(sandboxId)?.delete(pid);
          killGroup(child, "SIGKILL"); // leftovers in the group (host hygiene; see header)
          ended = true; // from now on the pid may be reused: never signal it again
          q.push(endEvent(code, sig));
          q.close();
        });
        resolve(proc);
      });
    });
  };

  const routes = (router: ConnectRouter) => {
    router.service(ProcessService, {
      async *start(req: StartRequest, ctx: HandlerContext) {
        const sandboxId = sandboxIdOf(ctx);
        const sbx = opts.lookup(sandboxId);
        if (!sbx) throw new ConnectError("The sandbox was not found", Code.Unavailable);
        if (req.pty) throw new ConnectError("pty is not supported by the envd emulator", Code.Unimplemented);
        const p = req.process;
        if (!p || !p.cmd) throw new ConnectError("process.cmd is required", Code.InvalidArgument);
        const cfg: Proc["config"] = {
          cmd: p.cmd,
          args: [...p.args],
          envs: { ...p.envs },
          ...(p.cwd !== undefined ? { cwd: p.cwd } : {}),
        };
        const key = scriptKey(cfg.cmd, cfg.args);
        const answer =
          opts.script?.(key) ??
          (runMode === "scripted"
            ? {
                stderr: `/bin/bash: line 1: ${key.split(/\s+/)[0] ?? key}: command not found\n`,
                exitCode: 127,
              }
            : undefined);

        const q = new EventQueue();
        const proc = answer
          ? startScripted(sandboxId, cfg, req.tag, answer, q)
          : await startHost(sandboxId, cfg, req.tag, req.stdin ?? true, sbx.envVars ?? {}, q);

        // The deadline (Connect-Timeout-Ms) or the client going away aborts ctx.signal: kill.
        const onAbort = () => proc.signal("SIGKILL");
        ctx.signal.addEventListener("abort", onAbort);
        if (ctx.signal.aborted) onAbort();

        // The sandbox being killed/paused under a running command drops the connection.
        const raw = ctx.values.get(rawRequestKey);
        const poll = setInterval(() => {
          if (opts.lookup(sandboxId)) return;
          clearInterval(poll);
          proc.signal("SIGKILL");
          raw?.socket.destroy();
        }, SANDBOX_POLL_MS);

        // Keepalive-Ping-Interval (seconds): a keepalive event after each idle interval.
        const kaS = Number(ctx.requestHeader.get("keepalive-ping-interval") ?? "");
        let kaTimer: NodeJS.Timeout | undefined;
        const armKeepalive = () => {
          if (!(kaS > 0)) return;
          if (kaTimer) clearTimeout(kaTimer);
          kaTimer = setTimeout(() => {
            q.push({ event: { event: { case: "keepalive", value: {} } } });
          }, kaS * 1000);
        };
        armKeepalive();
        try {
          for await (const e of q.drain(ctx.signal)) {
            yield e;
            armKeepalive();
          }
        } finally {
          clearInterval(poll);
          if (kaTimer) clearTimeout(kaTimer);
          ctx.signal.removeEventListener("abort", onAbort);
        }
      },

      list(_req: ListRequest, ctx: HandlerContext) {
        const procs = [...(running.get(sandboxIdOf(ctx))?.values() ?? [])];
        return {
          processes: procs.map((p) => ({
            pid: p.pid,
            config: p.config,
            ...(p.tag !== undefined ? { tag: p.tag } : {}),
          })),
        };
      },

      sendSignal(req: SendSignalRequest, ctx: HandlerContext) {
        const proc = selectProc(procsOf(sandboxIdOf(ctx)), req.process);
        if (req.signal === 9) proc.signal("SIGKILL");
        else if (req.signal === 15) proc.signal("SIGTERM");
        else throw new ConnectError(`invalid signal: ${req.signal}`, Code.InvalidArgument);
        return {};
      },

      sendInput(req: SendInputRequest, ctx: HandlerContext) {
        const proc = selectProc(procsOf(sandboxIdOf(ctx)), req.process);
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
        const proc = selectProc(procsOf(sandboxIdOf(ctx)), req.process);
        proc.stdin?.end();
        return {};
      },
      // connect, update, streamInput: not implemented -> Code.Unimplemented (router default)
    });
  };

  const adapter = connectNodeAdapter({
    routes,
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
      sendJson(res, 502, { code: 502, message: "The sandbox was not found" });
      return;
    }
    opts.onActivity?.(sandboxId);
    const method = req.method ?? "GET";
    const { pathname } = new URL(req.url ?? "/", "http://envd.local");
    const route = method + pathname;
    if (
      sbx.envdAccessToken &&
      !AUTH_EXCLUDED.has(route) &&
      !tokenMatches(header(req.headers["x-access-token"]), sbx.envdAccessToken)
    ) {
      sendJson(res, 401, { code: 401, message: UNAUTHORIZED });
      return;
    }
    if (route === "GET/health") {
      res.writeHead(204);
      res.end();
      return;
    }
    adapter(req, res);
  }) as EnvdHandler;

  handler.processes = () =>
    [...running.values()].flatMap((m) =>
      [...m.values()].map((p) => ({
        sandboxId: p.sandboxId,
        pid: p.pid,
        cmd: p.config.cmd,
        args: [...p.config.args],
        ...(p.tag !== undefined ? { tag: p.tag } : {}),
        scripted: p.scripted,
      })),
    );

  handler.dispose = () => {
    for (const m of running.values()) for (const p of m.values()) p.signal("SIGKILL");
    for (const dir of homes.values()) fs.rmSync(dir, { recursive: true, force: true });
    homes.clear();
  };

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
  let emu: E2BEmulator | undefined;
  const handler = createEnvdHandler({
    ...envd,
    lookup: (id) => {
      if (!emu || !emu.envdReachable(id)) return undefined;
      const s = emu.get(id);
      if (!s || s.state !== "running") return undefined;
      return { envdAccessToken: s.envdAccessToken, envVars: s.envVars };
    },
  });
  emu = await E2BEmulator.start({ ...emuOpts, envdHandler: handler });
  const stop = emu.stop.bind(emu);
  emu.stop = async () => {
    handler.dispose();
    await stop();
  };
  return Object.assign(emu, { envd: handler });
}
