// Worker thread of bench/commandMemory.ts: the emulator (control plane and envd) in its own V8
// isolate, so the heap the benchmark measures is the action's alone.
import { parentPort } from "node:worker_threads";
import { startEmulatorWithEnvd } from "../../tests/emulator/envd";

const emu = await startEmulatorWithEnvd({ apiKey: "e2b_bench_key" });
parentPort!.postMessage({ url: emu.url });
parentPort!.on("message", async (m: string) => {
  if (m === "stop") {
    await emu.stop();
    process.exit(0);
  }
});
