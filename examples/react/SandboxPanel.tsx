// One sandbox run from a React app: start it (idempotently), watch it, keep it alive while the
// user is here, run a command, list past runs, stop it. Typechecked in CI against convex/react
// (`npm run typecheck`); README shows this file. Render it inside your app's Convex provider
// with auth (ConvexProviderWithClerk, ConvexProviderWithAuth0, ConvexAuthProvider…): every
// function answers UNAUTHENTICATED to a caller who is not signed in.
import { useAction, useMutation, usePaginatedQuery, useQuery } from "convex/react";
import { useEffect, useState } from "react";
import { api } from "../../convex/_generated/api";
import { sandboxErrorCode, type ErrorCode } from "../../convex/model/errors";

/** The backend reaps a run as idle after SANDBOX_IDLE_TIMEOUT_MS without activity (10 min by default). */
const HEARTBEAT_INTERVAL_MS = 20_000;

/** What the user should do next, for the codes a panel like this one handles on its own. */
function advice(code: ErrorCode | undefined): string | undefined {
  switch (code) {
    case "UNAUTHENTICATED":
      return "Sign in to use sandboxes.";
    case "QUOTA_EXCEEDED":
      return "You have too many sandboxes running: stop one first.";
    case "RATE_LIMITED":
    case "E2B_RATE_LIMITED":
    case "START_IN_PROGRESS":
      return "Busy: try again in a few seconds.";
    case "RUN_ENDED":
    case "SANDBOX_GONE":
      return "This sandbox has ended: start a new one.";
    default:
      return undefined;
  }
}

/** A message for any error a call threw: the backend's own (err.data.message) or a generic one. */
function describe(err: unknown): string {
  const code = sandboxErrorCode(err);
  const data = (err as { data?: { message?: string } }).data;
  return advice(code) ?? (code ? `${code}: ${data?.message ?? ""}` : "Something went wrong; try again.");
}

export function SandboxPanel({ template = "base" }: { template?: string }) {
  const start = useAction(api.actions.startSandboxRun.startSandboxRun);
  const stop = useAction(api.actions.stopSandboxRun.stopSandboxRun);
  const runCommand = useAction(api.actions.runCommand.runCommand);
  const heartbeat = useMutation(api.runs.heartbeat);

  const [runId, setRunId] = useState<string | null>(null);
  // One key per intended start: retrying a failed or lost start with the same key can never
  // create a second sandbox. A new key only once a start has succeeded.
  const [startKey, setStartKey] = useState(() => crypto.randomUUID());
  const [command, setCommand] = useState("python3 -c 'print(6*7)'");
  const [output, setOutput] = useState("");
  const [error, setError] = useState<string | null>(null);

  // Reactive: the status moves booting → running → stopping → stopped with no polling. "skip"
  // until there is a run to watch.
  const run = useQuery(api.runs.getRun, runId ? { sandboxRunId: runId } : "skip");
  const live = run?.status === "booting" || run?.status === "running";
  const history = usePaginatedQuery(api.runs.listMyRuns, {}, { initialNumItems: 10 });

  // While this panel shows a live run the user is present: say so, or the run is reaped as idle.
  useEffect(() => {
    if (!runId || !live) return;
    const beat = () => heartbeat({ sandboxRunId: runId }).catch((err: unknown) => setError(describe(err)));
    void beat();
    const timer = setInterval(beat, HEARTBEAT_INTERVAL_MS);
    return () => clearInterval(timer);
  }, [runId, live, heartbeat]);

  async function onStart() {
    setError(null);
    try {
      const { sandboxRunId } = await start({ template, idempotencyKey: startKey });
      setRunId(sandboxRunId);
      setStartKey(crypto.randomUUID());
    } catch (err) {
      setError(describe(err));
    }
  }

  async function onRun() {
    if (!runId) return;
    setError(null);
    try {
      const r = await runCommand({ sandboxRunId: runId, command });
      setOutput(`exit ${r.exitCode}\n${r.stdout}${r.stderr}`);
    } catch (err) {
      setError(describe(err));
    }
  }

  async function onStop() {
    if (!runId) return;
    try {
      // Idempotent; "stopping" means the kill is owed and the backend keeps retrying it.
      await stop({ sandboxRunId: runId });
    } catch (err) {
      setError(describe(err));
    }
  }

  return (
    <section>
      <p>
        {run ? `Sandbox ${run.sandboxId ?? "(booting)"}: ${run.status}` : "No sandbox"}{" "}
        {live ? <button onClick={onStop}>Stop</button> : <button onClick={onStart}>Start</button>}
      </p>
      {run?.status === "running" && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void onRun();
          }}
        >
          <input value={command} onChange={(e) => setCommand(e.target.value)} />
          <button type="submit">Run</button>
        </form>
      )}
      {output && <pre>{output}</pre>}
      {error && <p role="alert">{error}</p>}
      <ul>
        {history.results.map((r) => (
          <li key={r._id}>
            <button onClick={() => setRunId(r._id)}>
              {new Date(r.createdAt).toLocaleString()} — {r.template}, {r.status}
            </button>
          </li>
        ))}
      </ul>
      {history.status === "CanLoadMore" && <button onClick={() => history.loadMore(10)}>More</button>}
    </section>
  );
}
