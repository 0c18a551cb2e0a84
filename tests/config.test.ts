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

  it("derives the default namespace from the whole URL; where none is unique, refuses naming SANDBOX_NAMESPACE", () => {
    // *.convex.cloud keeps its value (the deployment name is unique there).
    expect(namespaceFromUrl("https://happy-otter-123.convex.cloud/")).toBe("happy-otter-123");
    // Other public hosts: host and port, so convex.a.com and convex.b.org never share one.
    expect(namespaceFromUrl("https://convex.a.com")).toBe("convex-a-com");
    expect(namespaceFromUrl("https://convex.b.org")).toBe("convex-b-org");
    expect(namespaceFromUrl("https://convex.a.com:8443")).toBe("convex-a-com-8443");
    expect(namespaceFromUrl("http://203.0.113.7:3210")).toBe("203-0-113-7-3210");
    const long = namespaceFromUrl(`https://${"a".repeat(60)}.example.com`)!;
    expect(long).toMatch(/^[a-z0-9][a-z0-9_-]{0,62}$/);
    expect(long).not.toBe(namespaceFromUrl(`https://${"a".repeat(60)}.example.org`));
    // Local, private, single-label or missing: many deployments share these.
    for (const url of [
      "http://127.0.0.1:3210",
      "http://localhost:3210",
      "http://10.0.0.5:3210",
      "http://192.168.1.2",
      "http://172.20.0.3:3210",
      "http://[::1]:3210",
      "http://convex:3210",
      "http://box.local:3210",
      "not a url",
      undefined,
    ]) {
      expect(namespaceFromUrl(url)).toBeUndefined();
    }
    vi.stubEnv("SANDBOX_NAMESPACE", "");
    vi.stubEnv("CONVEX_CLOUD_URL", "http://127.0.0.1:3210");
    const err = configError();
    expect(err.code).toBe("CONFIG_INVALID");
    expect(err.message.startsWith("SANDBOX_NAMESPACE:")).toBe(true);
  });

  it("bounds: list pages, lifetimes and time budgets are checked when the config is read", () => {
    vi.stubEnv("SANDBOX_RECONCILE_GRACE_MS", "60000");
    expect(configError().message.startsWith("SANDBOX_RECONCILE_GRACE_MS:")).toBe(true);
    vi.stubEnv("SANDBOX_RECONCILE_GRACE_MS", "");
    expect(getConfig().reconcileGraceMs).toBe(110_000); // 5 s + 70 s + 30 s + 5 s, with defaults
    vi.stubEnv("E2B_REQUEST_TIMEOUT_MS", "90000");
    expect(configError().message.startsWith("E2B_REQUEST_TIMEOUT_MS:")).toBe(true);
    vi.stubEnv("E2B_REQUEST_TIMEOUT_MS", "");
    vi.stubEnv("SANDBOX_COMMAND_TIMEOUT_MS", String(9 * 60_000));
    expect(configError().message.startsWith("SANDBOX_COMMAND_TIMEOUT_MS:")).toBe(true);
    vi.stubEnv("SANDBOX_COMMAND_TIMEOUT_MS", "");
    vi.stubEnv("SANDBOX_MAX_LIFETIME_MS", String(2 * 3_600_000));
    expect(configError().message.startsWith("SANDBOX_MAX_LIFETIME_MS:")).toBe(true);
    vi.stubEnv("E2B_PLAN_MAX_LIFETIME_MS", String(24 * 3_600_000));
    expect(getConfig().planMaxLifetimeMs).toBe(24 * 3_600_000);
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
