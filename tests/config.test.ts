// Configuration: read once per environment, validated, errors name the variable.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { getConfig, namespaceFromUrl } from "../convex/model/config";

beforeEach(() => {
  vi.stubEnv("SANDBOX_NAMESPACE", "config-test");
});
afterEach(() => {
  vi.unstubAllEnvs();
});

function configError(): { code: string; message: string } {
  try {
    getConfig();
  } catch (err) {
    return (err as { data: { code: string; message: string } }).data;
  }
  throw new Error("expected CONFIG_INVALID");
}

describe("config", () => {
  it("derives the namespace from the deployment URL, so dev and prod never share one", () => {
    expect(namespaceFromUrl("https://happy-otter-123.convex.cloud")).toBe("happy-otter-123");
    expect(namespaceFromUrl("https://Brave-Fox-9.eu-west-1.convex.cloud")).toBe("brave-fox-9");
    vi.stubEnv("SANDBOX_NAMESPACE", "");
    vi.stubEnv("CONVEX_CLOUD_URL", "https://happy-otter-123.convex.cloud");
    expect(getConfig().namespace).toBe("happy-otter-123");
    vi.stubEnv("SANDBOX_NAMESPACE", "staging");
    expect(getConfig().namespace).toBe("staging");
  });

  it("has sensible defaults", () => {
    for (const k of [
      "SANDBOX_TEMPLATES",
      "SANDBOX_BOOT_TIMEOUT_MS",
      "SANDBOX_IDLE_TIMEOUT_MS",
      "SANDBOX_MAX_LIFETIME_MS",
      "SANDBOX_NAMESPACE",
    ]) {
      vi.stubEnv(k, "");
    }
    vi.stubEnv("CONVEX_CLOUD_URL", "https://happy-otter-123.convex.cloud");
    const c = getConfig();
    expect(c).toMatchObject({
      templates: ["base"],
      bootTimeoutMs: 60_000,
      idleTimeoutMs: 600_000,
      maxLifetimeMs: 3_600_000,
      killConcurrency: 16,
    });
    expect(c.reconcileGraceMs).toBeGreaterThanOrEqual(c.bootTimeoutMs);
  });

  it("parses the template allow-list", () => {
    vi.stubEnv("SANDBOX_TEMPLATES", " base, python-3.12 ,my/tpl:v2 ");
    expect(getConfig().templates).toEqual(["base", "python-3.12", "my/tpl:v2"]);
  });

  it.each([
    ["SANDBOX_IDLE_TIMEOUT_MS", "ten minutes"],
    ["SANDBOX_BOOT_TIMEOUT_MS", "-5"],
    ["SANDBOX_MAX_LIFETIME_MS", "999999999999"],
    ["SANDBOX_NAMESPACE", "Has Spaces"],
    ["SANDBOX_TEMPLATES", "bad template!"],
    ["SANDBOX_KILL_CONCURRENCY", "0"],
    ["E2B_CREATES_PER_SECOND", "-1"],
  ])("a bad %s fails with CONFIG_INVALID naming it", (name, value) => {
    vi.stubEnv(name, value);
    const err = configError();
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message.startsWith(`${name}:`)).toBe(true);
    expect(err.message).not.toContain(value);
  });

  it("max lifetime may not be shorter than the idle timeout", () => {
    vi.stubEnv("SANDBOX_IDLE_TIMEOUT_MS", "600000");
    vi.stubEnv("SANDBOX_MAX_LIFETIME_MS", "300000");
    expect(configError().message).toContain("SANDBOX_MAX_LIFETIME_MS");
  });
});
