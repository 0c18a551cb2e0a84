import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Queries and mutations run in Convex's V8 isolate; edge-runtime is the closest match.
    // Files that drive "use node" actions opt into `// @vitest-environment node`.
    environment: "edge-runtime",
    include: ["tests/**/*.test.ts"],
    server: { deps: { inline: ["convex-test"] } },
    testTimeout: 30_000,
    // Test names, whatever a test printed without capturing it, failures, and one closing line.
    reporters: ["./tests/summaryReporter.ts"],
  },
});
