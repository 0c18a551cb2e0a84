// Offline check that the real Convex bundler accepts convex/ (convex-test does not catch
// "use node" mistakes or Node built-ins in isolate files). The CLI bundles every module
// locally, then tries to talk to a deployment: a dummy loopback server stands in for it, and
// we stop the CLI as soon as it reaches that network step. Relies on undocumented CLI flags
// (convex 1.48): if a CLI update breaks this script, that is the reason.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const server = createServer((_req, res) => {
  res.statusCode = 503;
  res.end("{}");
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const port = server.address().port;

// Work on a copy so the CLI's codegen step never rewrites the committed convex/_generated.
const work = mkdtempSync(join(tmpdir(), "bundle-check-"));
cpSync("convex", join(work, "convex"), { recursive: true });
cpSync("package.json", join(work, "package.json"));
const nodeModules = join(process.cwd(), "node_modules");
const { symlinkSync } = await import("node:fs");
symlinkSync(nodeModules, join(work, "node_modules"), "dir");

const bin = join(nodeModules, "convex", "bin", "main.js");
const child = spawn(
  process.execPath,
  [bin, "codegen", "--url", `http://127.0.0.1:${port}`, "--admin-key", "x", "--typecheck", "disable"],
  {
    cwd: work,
    env: { ...process.env, CONVEX_DEPLOYMENT: "", CI: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  },
);

let out = "";
let reachedNetwork = false;
const onData = (d) => {
  out += d.toString();
  if (!reachedNetwork && out.includes("Downloading current deployment state")) {
    reachedNetwork = true;
    child.kill("SIGTERM");
  }
};
child.stdout.on("data", onData);
child.stderr.on("data", onData);
const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
await new Promise((r) => child.on("close", r));
clearTimeout(timer);
server.close();
rmSync(work, { recursive: true, force: true });

const errors = out
  .split("\n")
  .filter((l) => /✘ \[ERROR\]|use node|is not allowed|Error:/.test(l) && !l.includes("deployment"));
if (!reachedNetwork || errors.length) {
  console.error(out);
  console.error(`bundle check FAILED${reachedNetwork ? "" : " (bundling never finished)"}`);
  process.exit(1);
}
console.log("bundle check ok: the Convex bundler accepts convex/");
