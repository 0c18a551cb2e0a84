// @vitest-environment node
// The error-code contract: one closed union, thrown only through `fail`, listed in README.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ConvexError } from "convex/values";
import { describe, expect, it } from "vitest";
import { classifyE2BError, toCallerError } from "../convex/lib/e2b.sdk";
import { ERROR_CODES, echo, fail, maskSecrets, sandboxErrorCode } from "../convex/model/errors";
import { isWellFormed } from "./helpers";

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === "_generated" ? [] : sources(p);
    return p.endsWith(".ts") ? [p] : [];
  });
}

const files = sources("convex").map((path) => ({ path, text: readFileSync(path, "utf8") }));
const ERRORS_MODULE = join("convex", "model", "errors.ts");

describe("error codes", () => {
  it("every code thrown anywhere in convex/ is in the union, and README's list equals the union", () => {
    const thrown = new Set<string>();
    for (const { text } of files) {
      for (const m of text.matchAll(/\bfail\(\s*"([A-Z0-9_]+)"/g)) thrown.add(m[1]!);
      // Codes passed through a variable: E2B failures' mapping, and admission refusals.
      const mapped = [
        text.match(/CALLER_CODES[^=]*= \{([^}]*)\}/)?.[1],
        text.match(/code: v\.union\(([^\n]*)\)/)?.[1],
      ];
      for (const block of mapped) for (const m of block?.matchAll(/"([A-Z0-9_]+)"/g) ?? []) thrown.add(m[1]!);
    }
    expect(thrown).toContain("E2B_RATE_LIMITED");
    expect(thrown).toContain("QUOTA_EXCEEDED");
    expect(thrown.size).toBeGreaterThan(10);
    for (const code of thrown) expect(ERROR_CODES, code).toContain(code);

    const readme = readFileSync("README.md", "utf8");
    const section = readme.slice(readme.indexOf("read `err.data.code`"));
    const listed = section
      .slice(0, section.indexOf("\n\n"))
      .match(/`[A-Z][A-Z0-9_]+`/g)!
      .map((s) => s.slice(1, -1));
    expect([...listed].sort()).toEqual([...ERROR_CODES].sort());
  });

  it("no ConvexError is built, and no code is spelled, outside the errors module", () => {
    for (const { path, text } of files) {
      if (path === ERRORS_MODULE) continue;
      expect(text, path).not.toMatch(/new ConvexError\(/);
      expect(text, path).not.toMatch(/code: "/);
    }
  });

  it("fail gives the code's fixed message and only the safe fields given; sandboxErrorCode reads it back", () => {
    const err = fail("RATE_LIMITED", undefined, { retryAfterMs: 5, sandboxRunId: undefined });
    expect(err.data).toEqual({
      code: "RATE_LIMITED",
      message: "Too many starts; retry after retryAfterMs",
      retryAfterMs: 5,
    });
    expect(sandboxErrorCode(err)).toBe("RATE_LIMITED");
    expect(sandboxErrorCode(new ConvexError({ code: "SOMETHING_ELSE" }))).toBeUndefined();
    expect(sandboxErrorCode(new ConvexError("text"))).toBeUndefined();
    expect(sandboxErrorCode(new Error("x"))).toBeUndefined();
  });

  it("classifyE2BError treats only a configuration error as 'nothing was sent', never any ConvexError", () => {
    expect(classifyE2BError(fail("CONFIG_INVALID"))).toMatchObject({ kind: "auth", refused: true });
    expect(classifyE2BError(fail("NOT_FOUND"))).toMatchObject({ kind: "other", refused: false });
    expect(classifyE2BError(new ConvexError({ code: "UNAUTHENTICATED" }))).toMatchObject({ kind: "other" });
    expect(toCallerError(classifyE2BError(fail("RUN_ENDED"))).data.code).toBe("E2B_ERROR");
  });

  it("echo cuts on code points and neutralises control and bidi characters", () => {
    expect(echo(`a${"😀".repeat(10)}`, 4)).toBe("a😀😀😀…");
    expect(echo("ok")).toBe("ok");
    expect(isWellFormed(echo(`a${"😀".repeat(100)}`))).toBe(true);
    expect(echo("x\u202e\u0000y")).toBe("x\uFFFD\uFFFDy");
  });

  it("maskSecrets hides the configured key and token shapes", () => {
    const text =
      "key=sk_live_configured bearer abc.def token: zzz e2b_1234 eyJhbGciOi.eyJzdWIi.sig " + "A".repeat(40);
    const masked = maskSecrets(text, ["sk_live_configured"]);
    for (const secret of ["sk_live_configured", "abc.def", "zzz", "e2b_1234", "eyJhbGciOi", "A".repeat(40)]) {
      expect(masked).not.toContain(secret);
    }
  });
});
