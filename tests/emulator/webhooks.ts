/**
 * E2B's lifecycle webhooks, emulated beside the control-plane emulator (e2bEmulator.ts): the
 * registration endpoints (`/events/webhooks`, behind the emulator's API-key check) and signed
 * delivery of every lifecycle event the emulator publishes to each enabled webhook that
 * subscribed to it.
 *
 * Delivery goes through a `deliver(url, init)` function, so a test sends it into
 * convex-test's HTTP handler (`t.fetch`) and a benchmark into its own. Deliveries are queued
 * with a due time on the emulator's clock and sent by `flush(until)`, in due order: with a
 * simulated clock, time only moves when the test moves it.
 *
 * Wire format (E2B's lifecycle-webhook docs; /work/shared/notes/e2b-api.md): POST JSON
 * `{ version, id, type: "sandbox.lifecycle.<kind>", eventData: { sandbox_metadata, kill_reason? },
 * sandboxBuildId, sandboxExecutionId, sandboxId, sandboxTeamId, sandboxTemplateId, timestamp }`
 * with headers `e2b-webhook-id`, `e2b-delivery-id`, `e2b-signature-version: v1` and
 * `e2b-signature` = base64url (no padding) of SHA-256(secret + raw body). Signed here with
 * node:crypto, independently of the backend's Web Crypto check.
 *
 * Faults, each for the next `times` events published (queued, applied in order like the
 * emulator's): `drop` (never delivered), `duplicate` (delivered twice, the copy `delayMs`
 * after), `delayMs` (delivered that much later), `reorder` (held back until the next event
 * has been delivered), `badSignature` (signed with a wrong secret). Deviation: E2B retries a
 * failed delivery (docs preview: 3 times, 10 s apart); here a delivery is attempted once, so a
 * drop models every retry failing.
 *
 * Also E2B's lifecycle events API, the same service's read side (`GET /events/sandboxes[/{id}]`,
 * docs "lifecycle-events-api"): every published event with the same id its deliveries carry,
 * newest first (`orderAsc=true`: oldest first), `limit` 1..100 (default 10) and `offset` ≥ 0
 * (else 400), visible `eventsVisibleAfterMs` (default 1 s) after it happened — E2B batches events
 * into ClickHouse at least every second. Fault: `eventsApiFault(status, times)`.
 */
import { createHash, randomUUID } from "node:crypto";
import type * as http from "node:http";
import type { E2BEmulator, LifecycleEvent } from "./e2bEmulator";

export const WEBHOOK_EVENT_TYPES = ["created", "killed", "paused", "resumed", "updated"].map(
  (k) => `sandbox.lifecycle.${k}`,
);

export interface RegisteredWebhook {
  id: string;
  name: string;
  url: string;
  enabled: boolean;
  events: string[];
  signatureSecret: string;
  createdAt: string;
}

export interface DeliveryFault {
  drop?: boolean;
  duplicate?: boolean;
  reorder?: boolean;
  badSignature?: boolean;
  /** extra latency, ms on the emulator clock (with duplicate: the copy's lag) */
  delayMs?: number;
  times?: number;
}

export interface DeliveryRecord {
  eventId: string;
  type: string;
  sandboxId: string;
  webhookId: string;
  publishedAt: number;
  deliveredAt?: number;
  status?: number;
  fault?: DeliveryFault;
  dropped?: boolean;
  /** the response body, when JSON */
  response?: unknown;
  /** 1 for the first attempt; retries count up */
  attempt: number;
}

export type Deliver = (
  url: string,
  init: { method: "POST"; headers: Record<string, string>; body: string },
) => Promise<Response>;

type Pending = {
  dueAt: number;
  seq: number;
  hook: RegisteredWebhook;
  record: DeliveryRecord;
  body: string;
  badSignature: boolean;
  /** this attempt is lost on the way (the backend never sees it) */
  drop: boolean;
};

export function e2bWebhookSignature(secret: string, rawBody: string | Buffer): string {
  return createHash("sha256")
    .update(
      Buffer.concat([Buffer.from(secret, "utf8"), Buffer.isBuffer(rawBody) ? rawBody : Buffer.from(rawBody)]),
    )
    .digest("base64url");
}

const isPlainObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

export class WebhookEmulator {
  readonly deliveries: DeliveryRecord[] = [];
  private readonly hooks = new Map<string, RegisteredWebhook>();
  private pending: Pending[] = [];
  private faults: { spec: DeliveryFault; remaining: number }[] = [];
  private seq = 0;
  private heldBack: Pending[] = [];
  private random: (() => number) | undefined;
  private rates = { drop: 0, duplicate: 0 };
  private retries: { max: number; intervalMs: number } | undefined;
  /** every event published, in order: what `GET /events/sandboxes` reads */
  private readonly log: { visibleAt: number; at: number; event: Record<string, unknown> }[] = [];
  private eventsApiFaults: { status: number; remaining: number }[] = [];
  /** calls to `GET /events/sandboxes[/{id}]`, with the status answered */
  readonly eventsApiCalls: { at: number; status: number; query: string }[] = [];

  constructor(
    private readonly opts: {
      deliver: Deliver;
      clock: () => number;
      /** latency of every delivery, ms on the clock; a function draws one per delivery */
      latencyMs?: number | (() => number);
      /**
       * E2B retries a delivery that got no answer or a 5xx (docs preview: 3 times, 10 s apart;
       * unverified). Default: no retries, so a test's drop is final.
       */
      retries?: { max: number; intervalMs: number };
      /**
       * How long after it happened an event shows in `GET /events/sandboxes` (ms on the clock):
       * E2B batches events into ClickHouse, flushing at least every second (infra
       * packages/clickhouse/pkg/events/delivery.go, flag clickhouse-batcher-max-delay = 1000).
       */
      eventsVisibleAfterMs?: number;
    },
  ) {
    this.retries = opts.retries;
  }

  /** Serves `/events/webhooks` on the emulator and subscribes to its lifecycle events. */
  attach(source: E2BEmulator): this {
    source.mount("/events/webhooks", async (req, res, body) => {
      const url = new URL(req.url ?? "/", "http://emulator.local");
      let parsed: unknown;
      if (body.length > 0) {
        try {
          parsed = JSON.parse(body.toString("utf8"));
        } catch (e) {
          return send(res, 400, {
            code: 400,
            message: `Error when parsing request: ${(e as Error).message}`,
          });
        }
      }
      const out = this.handleRegistration(req.method ?? "GET", url.pathname, parsed);
      send(res, out.status, out.body);
    });
    source.mount("/events/sandboxes", (req, res) => {
      const url = new URL(req.url ?? "/", "http://emulator.local");
      const out = this.handleEventsApi(req.method ?? "GET", url.pathname, url.searchParams);
      this.eventsApiCalls.push({ at: this.opts.clock(), status: out.status, query: url.search });
      send(res, out.status, out.body);
    });
    source.onLifecycle((e) => this.publish(e));
    return this;
  }

  // ------------------------------------------------------------ events API

  /**
   * `GET /events/sandboxes[/{id}]` (E2B's lifecycle events API, docs "lifecycle-events-api"):
   * the team's events newest first (`orderAsc=true`: oldest first), `offset` ≥ 0, `limit`
   * 1..100 (default 10); out of range → 400. Only events already flushed are visible.
   */
  handleEventsApi(method: string, path: string, q: URLSearchParams): { status: number; body?: unknown } {
    const err = (status: number, message: string) => ({ status, body: { code: status, message } });
    const fault = this.eventsApiFaults[0];
    if (fault) {
      if (--fault.remaining <= 0) this.eventsApiFaults.shift();
      return err(fault.status, "injected events API failure");
    }
    if (method !== "GET") return err(405, `Method ${method} not allowed`);
    const int = (name: string, def: number, min: number, max: number): number | string => {
      const raw = q.get(name);
      if (raw === null) return def;
      const n = Number(raw);
      return Number.isInteger(n) && n >= min && n <= max ? n : `${name} must be an integer in ${min}..${max}`;
    };
    const limit = int("limit", 10, 1, 100);
    const offset = int("offset", 0, 0, Number.MAX_SAFE_INTEGER);
    if (typeof limit === "string") return err(400, limit);
    if (typeof offset === "string") return err(400, offset);
    const orderAsc = q.get("orderAsc") === "true";
    const rest = path.replace(/^\/events\/sandboxes\/?/, "");
    const sandboxId = rest === "" ? undefined : decodeURIComponent(rest);
    const now = this.opts.clock();
    const page: Record<string, unknown>[] = [];
    let skipped = 0;
    for (let k = 0; k < this.log.length && page.length < limit; k++) {
      const l = this.log[orderAsc ? k : this.log.length - 1 - k]!;
      if (l.visibleAt > now || (sandboxId !== undefined && l.event.sandboxId !== sandboxId)) continue;
      if (skipped++ >= offset) page.push(l.event);
    }
    return { status: 200, body: page };
  }

  /** The next `times` calls to the events API answer `status`. */
  eventsApiFault(status: number, times = 1): void {
    this.eventsApiFaults.push({ status, remaining: times });
  }

  // ------------------------------------------------------------ registration API

  /** `/events/webhooks[/{id}]`: POST, GET, GET/PATCH/DELETE by id. */
  handleRegistration(method: string, path: string, body: unknown): { status: number; body?: unknown } {
    const err = (status: number, message: string) => ({ status, body: { code: status, message } });
    const rest = path.replace(/^\/events\/webhooks\/?/, "");
    const id = rest === "" ? undefined : decodeURIComponent(rest);
    if (id === undefined) {
      if (method === "GET") return { status: 200, body: [...this.hooks.values()].map(publicView) };
      if (method !== "POST") return err(405, `Method ${method} not allowed`);
      const checked = validate(body, true);
      if (typeof checked === "string") return err(400, checked);
      const hook: RegisteredWebhook = {
        id: randomUUID(),
        name: checked.name!,
        url: checked.url!,
        enabled: checked.enabled ?? true,
        events: checked.events!,
        signatureSecret: checked.signatureSecret!,
        createdAt: new Date(this.opts.clock()).toISOString(),
      };
      this.hooks.set(hook.id, hook);
      return { status: 201, body: publicView(hook) };
    }
    const hook = this.hooks.get(id);
    if (!hook) return err(404, `Webhook ${id} not found`);
    if (method === "GET") return { status: 200, body: publicView(hook) };
    if (method === "DELETE") {
      this.hooks.delete(id);
      return { status: 204 };
    }
    if (method !== "PATCH") return err(405, `Method ${method} not allowed`);
    const checked = validate(body, false);
    if (typeof checked === "string") return err(400, checked);
    Object.assign(hook, checked);
    return { status: 200, body: publicView(hook) };
  }

  /** Registered webhooks, secrets included (test inspection). */
  registered(): RegisteredWebhook[] {
    return [...this.hooks.values()].map((h) => ({ ...h, events: [...h.events] }));
  }

  // ------------------------------------------------------------ faults

  fault(spec: DeliveryFault): void {
    if (spec.times !== undefined && !(spec.times > 0)) return;
    this.faults.push({ spec: { ...spec }, remaining: spec.times ?? 1 });
  }

  /** Turns E2B's retries of failed deliveries on (or off, with undefined). */
  setRetries(retries: { max: number; intervalMs: number } | undefined): void {
    this.retries = retries;
  }

  /** Random faults on every delivery from now on (benchmarks): `random` must be seeded. */
  faultRates(rates: { drop: number; duplicate: number }, random: () => number): void {
    this.rates = rates;
    this.random = random;
  }

  reset(): void {
    this.hooks.clear();
    this.pending = [];
    this.heldBack = [];
    this.faults = [];
    this.deliveries.length = 0;
    this.retries = this.opts.retries;
    this.log.length = 0;
    this.eventsApiFaults = [];
    this.eventsApiCalls.length = 0;
  }

  // ------------------------------------------------------------ delivery

  /** Queues one event for every enabled webhook subscribed to its type. */
  publish(e: LifecycleEvent): void {
    const type = `sandbox.lifecycle.${e.type}`;
    // One event, one id: every webhook and the events API carry the same one (E2B's SandboxEvent.ID).
    const eventId = randomUUID();
    const event = {
      version: "v1",
      id: eventId,
      type,
      eventData: {
        sandbox_metadata: { ...e.metadata },
        ...(e.killReason !== undefined ? { kill_reason: e.killReason } : {}),
      },
      sandboxBuildId: randomUUID(),
      sandboxExecutionId: randomUUID(),
      sandboxId: e.sandboxId,
      sandboxTeamId: "00000000-0000-0000-0000-000000000000",
      sandboxTemplateId: e.templateId,
      timestamp: new Date(e.at).toISOString(),
    };
    // In time order: an expiry the emulator applies lazily happened back then.
    let i = this.log.length;
    while (i > 0 && this.log[i - 1]!.at > e.at) i--;
    this.log.splice(i, 0, { visibleAt: e.at + (this.opts.eventsVisibleAfterMs ?? 1_000), at: e.at, event });
    const body = JSON.stringify(event);
    for (const hook of this.hooks.values()) {
      if (!hook.enabled || !hook.events.includes(type)) continue;
      const fault = this.takeFault();
      const record: DeliveryRecord = {
        eventId,
        type,
        sandboxId: e.sandboxId,
        webhookId: hook.id,
        publishedAt: e.at,
        attempt: 1,
        ...(fault ? { fault } : {}),
      };
      this.deliveries.push(record);
      // From when it happened: an expiry the emulator applies lazily was published back then.
      const dueAt = e.at + this.latency() + (fault?.duplicate ? 0 : (fault?.delayMs ?? 0));
      const p: Pending = {
        dueAt,
        seq: this.seq++,
        hook,
        record,
        body,
        badSignature: fault?.badSignature ?? false,
        drop: fault?.drop ?? false,
      };
      if (fault?.reorder) this.heldBack.push(p);
      else this.enqueue(p);
      if (fault?.duplicate) {
        const copy: DeliveryRecord = { ...record };
        delete copy.fault;
        this.deliveries.push(copy);
        this.enqueue({ ...p, seq: this.seq++, record: copy, dueAt: dueAt + (fault.delayMs ?? 0) });
      }
    }
  }

  /** When the next queued delivery is due (ms on the clock), if any. */
  nextDueAt(): number | undefined {
    return this.pending[0]?.dueAt;
  }

  /** Pending deliveries, held-back ones included. */
  pendingCount(): number {
    return this.pending.length + this.heldBack.length;
  }

  /**
   * Sends, one at a time and in due order, every delivery due by `until` (default: now on the
   * clock). A held-back (reordered) delivery goes right after the next one; if nothing else is
   * left to overtake it, it goes last.
   */
  async flush(until = this.opts.clock()): Promise<void> {
    for (;;) {
      const next = this.pending[0];
      if (!next || next.dueAt > until) break;
      this.pending.shift();
      await this.send(next);
      const held = this.heldBack.splice(0);
      for (const h of held) await this.send(h);
    }
    if (this.pending.length === 0) {
      const held = this.heldBack.splice(0);
      for (const h of held) await this.send(h);
    }
  }

  private latency(): number {
    const l = this.opts.latencyMs ?? 0;
    return typeof l === "function" ? l() : l;
  }

  private enqueue(p: Pending): void {
    let i = this.pending.length;
    while (i > 0 && this.pending[i - 1]!.dueAt > p.dueAt) i--;
    this.pending.splice(i, 0, p);
  }

  private takeFault(): DeliveryFault | undefined {
    const head = this.faults[0];
    if (head) {
      head.remaining--;
      if (head.remaining <= 0) this.faults.shift();
      return head.spec;
    }
    if (this.random) {
      const u = this.random();
      if (u < this.rates.drop) return { drop: true };
      if (u < this.rates.drop + this.rates.duplicate) return { duplicate: true, delayMs: 1_000 };
    }
    return undefined;
  }

  private async send(p: Pending): Promise<void> {
    if (p.drop) {
      p.record.dropped = true;
      this.retry(p);
      return;
    }
    const secret = p.badSignature ? `${p.hook.signatureSecret}-wrong` : p.hook.signatureSecret;
    const res = await this.opts.deliver(p.hook.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "e2b-webhook-id": p.hook.id,
        "e2b-delivery-id": randomUUID(),
        "e2b-signature-version": "v1",
        "e2b-signature": e2bWebhookSignature(secret, p.body),
      },
      body: p.body,
    });
    p.record.deliveredAt = this.opts.clock();
    p.record.status = res.status;
    const text = await res.text();
    try {
      p.record.response = JSON.parse(text);
    } catch {
      p.record.response = text;
    }
    if (res.status >= 500) this.retry(p);
  }

  /** The next attempt of a failed delivery, if E2B would make one (each attempt may be lost too). */
  private retry(p: Pending): void {
    const r = this.retries;
    if (!r || p.record.attempt > r.max) return;
    const record: DeliveryRecord = {
      eventId: p.record.eventId,
      type: p.record.type,
      sandboxId: p.record.sandboxId,
      webhookId: p.record.webhookId,
      publishedAt: p.record.publishedAt,
      attempt: p.record.attempt + 1,
    };
    this.deliveries.push(record);
    const drop = this.random !== undefined && this.random() < this.rates.drop;
    this.enqueue({ ...p, seq: this.seq++, record, dueAt: p.dueAt + r.intervalMs, drop });
  }
}

function publicView(h: RegisteredWebhook) {
  // E2B never echoes the signature secret back.
  const { signatureSecret: _secret, ...rest } = h;
  return { ...rest, events: [...rest.events] };
}

function validate(body: unknown, creating: boolean): Partial<RegisteredWebhook> | string {
  if (!isPlainObject(body)) return "Error when parsing request: body must be a JSON object";
  const out: Partial<RegisteredWebhook> = {};
  for (const k of ["name", "url", "signatureSecret"] as const) {
    const x = body[k];
    if (x === undefined) {
      if (creating) return `${k} is required`;
      continue;
    }
    if (typeof x !== "string" || x === "") return `${k} must be a non-empty string`;
    out[k] = x;
  }
  if (out.url !== undefined && !/^https?:\/\//.test(out.url)) return "url must be an http(s) URL";
  if (body.enabled !== undefined) {
    if (typeof body.enabled !== "boolean") return "enabled must be a boolean";
    out.enabled = body.enabled;
  }
  if (body.events !== undefined || creating) {
    const ev = body.events;
    if (!Array.isArray(ev) || ev.length === 0 || !ev.every((x) => WEBHOOK_EVENT_TYPES.includes(x as string)))
      return `events must be a non-empty list of ${WEBHOOK_EVENT_TYPES.join(", ")}`;
    out.events = [...(ev as string[])];
  }
  return out;
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  if (body === undefined) {
    res.writeHead(status);
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
