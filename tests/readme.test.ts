// @vitest-environment node
// README shows the frontend example verbatim: the copy a newcomer reads is the file CI typechecks.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), "utf8");

describe("README", () => {
  it("shows examples/react/SandboxPanel.tsx exactly as the file is", () => {
    const example = read("examples/react/SandboxPanel.tsx");
    const blocks = [...read("README.md").matchAll(/```tsx\n([\s\S]*?)```/g)].map((m) => m[1]);
    expect(blocks).toContain(example);
  });
});
