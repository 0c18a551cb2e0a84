/**
 * envd's process API as the e2b SDK speaks it: the protobuf descriptors (copied from the SDK's
 * dist, hence wire-identical), their message types, and envd's event shapes.
 */
import type { Message, MessageInitShape } from "@bufbuild/protobuf";
import {
  fileDesc,
  messageDesc,
  serviceDesc,
  type GenFile,
  type GenMessage,
  type GenService,
} from "@bufbuild/protobuf/codegenv2";

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

// ------------------------------------------------------------------ event shapes

export type EventInit = MessageInitShape<typeof StartResponseSchema>;

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

export function dataEvent(stream: "stdout" | "stderr", bytes: Uint8Array): EventInit {
  return { event: { event: { case: "data", value: { output: { case: stream, value: bytes } } } } };
}

/** As envd's end event: Go's ProcessState.ExitCode()/Exited()/String() and cmd.Wait()'s error. */
export function endEvent(code: number | null, signal: NodeJS.Signals | null): EventInit {
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
