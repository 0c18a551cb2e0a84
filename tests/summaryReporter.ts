import type { UserConsoleLog } from "vitest";
import type { Reporter, SerializedError, TestCase, TestModule, Vitest } from "vitest/node";

/**
 * The test run's only output: one line per test as it ends, anything a test printed that it did
 * not capture (expected warnings are captured and asserted in the tests, so a printed line is a
 * surprise), the failures in full, and one closing line, "tests: N passed, N failed", that any CI
 * can read.
 */
export default class SummaryReporter implements Reporter {
  private vitest: Vitest | undefined;
  private failures: string[] = [];

  onInit(vitest: Vitest) {
    this.vitest = vitest;
  }

  onTestCaseResult(test: TestCase) {
    const r = test.result();
    const mark = r.state === "passed" ? "✓" : r.state === "failed" ? "×" : "↓";
    console.log(`${mark} ${test.module.relativeModuleId} > ${test.fullName}`);
    if (r.state === "failed") {
      this.failures.push(
        `× ${test.module.relativeModuleId} > ${test.fullName}\n${formatErrors(r.errors ?? [])}`,
      );
    }
  }

  onUserConsoleLog(log: UserConsoleLog) {
    const task = log.taskId ? this.vitest?.state.idMap.get(log.taskId) : undefined;
    const where = task ? `${task.file?.name ?? ""} > ${task.name}` : "outside a test";
    const text = log.content.trimEnd().replace(/\n/g, "\n    ");
    (log.type === "stderr" ? process.stderr : process.stdout).write(
      `  ${log.type} (${where}):\n    ${text}\n`,
    );
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>) {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const m of testModules) {
      for (const test of m.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed++;
        else skipped++;
      }
      const moduleErrors = m.errors();
      if (moduleErrors.length > 0) {
        failed++; // a file that failed to load, or a failing hook outside any test
        this.failures.push(`× ${m.relativeModuleId}\n${formatErrors(moduleErrors)}`);
      }
    }
    if (unhandledErrors.length > 0) {
      failed++;
      this.failures.push(`× unhandled errors\n${formatErrors(unhandledErrors)}`);
    }
    if (this.failures.length > 0) console.log(`\n${this.failures.join("\n\n")}\n`);
    console.log(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
  }
}

function formatErrors(errors: ReadonlyArray<{ message?: string; stack?: string; diff?: string }>): string {
  return errors
    .map((e) => {
      const stack = (e.stack ?? "")
        .split("\n")
        .filter((l) => /^\s+at /.test(l) && !l.includes("node_modules"))
        .slice(0, 6)
        .join("\n");
      return [`  ${e.message ?? "error"}`, e.diff, stack].filter(Boolean).join("\n");
    })
    .join("\n");
}
