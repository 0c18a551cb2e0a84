// The closed set of error codes a caller can see, their fixed messages, and the one constructor.
// Importable by a frontend (no server-only imports): switch on `sandboxErrorCode(err)`.
import { ConvexError } from "convex/values";

export const ERROR_CODES = [
  "UNAUTHENTICATED",
  "NOT_FOUND",
  "INVALID_ARGUMENT",
  "INVALID_TEMPLATE",
  "QUOTA_EXCEEDED",
  "RATE_LIMITED",
  "RUN_ENDED",
  "START_IN_PROGRESS",
  "RUN_NOT_RUNNING",
  "SANDBOX_GONE",
  "START_FAILED",
  "E2B_UNAVAILABLE",
  "E2B_TIMEOUT",
  "E2B_AUTH",
  "E2B_REJECTED",
  "E2B_RATE_LIMITED",
  "E2B_ERROR",
  "CONFIG_INVALID",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * What a caller reads for each code unless the throw site gives a more specific text. Specific
 * texts are written in this codebase (numbers from config, names of arguments or variables,
 * user input cut with `echo`); never an exception's message or a body E2B sent.
 */
export const ERROR_MESSAGES: Record<ErrorCode, string> = {
  UNAUTHENTICATED: "Sign in first",
  NOT_FOUND: "No such sandbox run",
  INVALID_ARGUMENT: "An argument is invalid",
  INVALID_TEMPLATE: "Unknown template",
  QUOTA_EXCEEDED: "Too many active sandbox runs; stop one first",
  RATE_LIMITED: "Too many starts; retry after retryAfterMs",
  RUN_ENDED: "The run has ended; start a new one",
  START_IN_PROGRESS: "The first start with this idempotencyKey is still booting; retry shortly",
  RUN_NOT_RUNNING: "Commands need a running run",
  SANDBOX_GONE: "The sandbox has ended; start a new run",
  START_FAILED: "The sandbox could not be started; try again",
  E2B_UNAVAILABLE: "E2B is unavailable; try again shortly",
  E2B_TIMEOUT: "E2B did not answer in time; try again shortly",
  E2B_AUTH: "E2B rejected this deployment's credentials",
  E2B_REJECTED: "E2B rejected the request",
  E2B_RATE_LIMITED: "E2B is rate limiting this deployment; retry shortly",
  E2B_ERROR: "E2B failed unexpectedly",
  CONFIG_INVALID: "The deployment's configuration is invalid",
};

/** Safe fields an error may carry besides code and message. */
export type ErrorExtra = {
  retryAfterMs?: number;
  sandboxRunId?: string;
  /** E2B's HTTP status, when E2B answered. */
  status?: number;
};

export type SandboxErrorData = { code: ErrorCode; message: string } & ErrorExtra;

/** The one way this backend throws to a caller. */
export function fail(
  code: ErrorCode,
  message?: string,
  extra: ErrorExtra = {},
): ConvexError<SandboxErrorData> {
  const data: SandboxErrorData = { code, message: message ?? ERROR_MESSAGES[code] };
  for (const [k, v] of Object.entries(extra) as [keyof ErrorExtra, number | string | undefined][]) {
    if (v !== undefined) (data as Record<string, unknown>)[k] = v;
  }
  return new ConvexError(data);
}

/** The code of an error thrown by this backend, as a frontend catches it; undefined for anything else. */
export function sandboxErrorCode(err: unknown): ErrorCode | undefined {
  if (!(err instanceof ConvexError)) return undefined;
  const code = (err.data as { code?: unknown } | null)?.code;
  return (ERROR_CODES as readonly unknown[]).includes(code) ? (code as ErrorCode) : undefined;
}

/** Echoes user input into a message: at most `maxChars` code points, never half a surrogate pair. */
export function echo(input: string, maxChars = 64): string {
  const points = Array.from(input.slice(0, maxChars * 2));
  const cut = points.slice(0, maxChars).join("");
  // Control, format (bidi overrides) and line characters would let input restyle a message.
  const safe = cut.replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, "\uFFFD");
  return cut.length < input.length ? `${safe}…` : safe;
}

/**
 * Masks secrets in text bound for a log line: the configured key, anything shaped like an E2B
 * key, a bearer or access token, a JWT, or a long opaque run of letters and digits.
 */
export function maskSecrets(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join("***");
  return out
    .replace(/e2b_[A-Za-z0-9]+/g, "e2b_***")
    .replace(/\b(bearer|token|access[_-]?token|api[_-]?key|authorization)(["'\s:=]+)[^\s"',;]+/gi, "$1$2***")
    .replace(/\beyJ[\w-]+\.[\w-]+\.[\w-]*/g, "***")
    .replace(/\b[A-Za-z0-9_\-+/]{32,}={0,2}/g, "***");
}
