// Generic helpers of the actions: bounded concurrency and byte-capped text. Plain module: no SDK.

/** Runs `fn` over `items` with at most `limit` in flight; one slow item never stalls the rest. */
export async function mapWithConcurrency<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Keeps at most `maxBytes` of UTF-8, cut on a character boundary. */
export function capUtf8(s: string, maxBytes: number): { text: string; truncated: boolean } {
  if (s.length * 3 <= maxBytes) return { text: s, truncated: false }; // no UTF-16 unit needs more than 3 bytes
  const buf = Buffer.from(s, "utf8");
  if (buf.length <= maxBytes) return { text: s, truncated: false };
  let end = maxBytes;
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--; // don't split a multi-byte character
  return { text: buf.subarray(0, end).toString("utf8"), truncated: true };
}

/** One output stream as it arrives: counts every byte, keeps the first `maxBytes`. */
export class BoundedOutput {
  private kept: string[] = [];
  private keptBytes = 0;
  /** Bytes seen in total. */
  bytes = 0;
  constructor(private readonly maxBytes: number) {}
  push(chunk: string) {
    const size = Buffer.byteLength(chunk, "utf8");
    this.bytes += size;
    if (this.keptBytes >= this.maxBytes) return;
    const room = this.maxBytes - this.keptBytes;
    const part = size <= room ? chunk : capUtf8(chunk, room).text;
    this.kept.push(part);
    this.keptBytes += size <= room ? size : Buffer.byteLength(part, "utf8");
    // A cut chunk fills the stream: nothing after it may be kept, or the text would have a hole.
    if (size > room) this.keptBytes = this.maxBytes;
  }
  get overCap(): boolean {
    return this.bytes > this.maxBytes;
  }
  get text(): string {
    return this.kept.join("");
  }
}

/**
 * Bytes a command may print in total (both streams) before it is stopped even if only one
 * stream is past its cap: enough for a chatty build log, small enough to bound memory.
 */
export function drainLimitBytes(capBytes: number): number {
  return Math.max(4 * 2 ** 20, 4 * capBytes);
}
