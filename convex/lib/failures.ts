// What an E2B failure is, once classified (by convex/lib/e2b.sdk.ts), and what it becomes for
// each caller: a fixed summary, a kill outcome, a ConvexError with a closed code. Plain module:
// no SDK, no I/O.
import { ERROR_MESSAGES, type ErrorCode, fail } from "../model/errors";
import type { KillFailureKind, KillOutcome } from "../model/status";

export type E2BFailure = {
  kind: KillFailureKind | "not_found" | "invalid";
  status?: number;
  message: string;
  retryAfterMs?: number;
  /** True when E2B certainly did not perform the call (it refused it); false when it may have. */
  refused: boolean;
};

/** A safe, fixed summary of an E2B failure: never E2B's body, a stack or a token. */
export function summary(kind: E2BFailure["kind"], status: number | undefined): string {
  const answered = status !== undefined ? `E2B answered ${status}` : undefined;
  switch (kind) {
    case "rate_limited":
      return "E2B answered 429 (rate limited)";
    case "auth":
      return `${answered ?? "E2B refused"} (credentials rejected)`;
    case "not_found":
      return "E2B answered 404 (not found)";
    case "invalid":
      return `${answered ?? "E2B refused"} (request rejected)`;
    case "unavailable":
      return answered ?? "E2B unreachable";
    case "timeout":
      return "no answer from E2B in time";
    default:
      return answered ?? "unexpected failure calling E2B";
  }
}

const CALLER_CODES: Record<E2BFailure["kind"], ErrorCode> = {
  rate_limited: "E2B_RATE_LIMITED",
  unavailable: "E2B_UNAVAILABLE",
  auth: "E2B_AUTH",
  timeout: "E2B_TIMEOUT",
  not_found: "SANDBOX_GONE",
  invalid: "E2B_REJECTED",
  other: "E2B_ERROR",
};

/** What a caller sees of an E2B failure: the code's fixed message, and E2B's HTTP status. */
export function toCallerError(f: E2BFailure) {
  const code = CALLER_CODES[f.kind];
  const message =
    f.status !== undefined && f.kind !== "auth"
      ? `${ERROR_MESSAGES[code]} (E2B answered ${f.status})`
      : undefined;
  return fail(code, message, { status: f.status, retryAfterMs: f.retryAfterMs });
}

/** A failed call as a kill outcome (the kill failure kinds are E2B's, without 404 and 400). */
export function killFailed(f: E2BFailure): KillOutcome {
  return {
    outcome: "failed",
    kind: f.kind === "not_found" || f.kind === "invalid" ? "other" : f.kind,
    message: f.message,
    ...(f.retryAfterMs !== undefined ? { retryAfterMs: f.retryAfterMs } : {}),
  };
}
