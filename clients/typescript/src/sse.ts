/**
 * A small Server-Sent Events parser (the WHATWG "event stream" format) over a
 * byte stream: lines end with CRLF, LF or CR; `field: value` lines build an
 * event, a blank line dispatches it, lines starting with `:` are comments.
 */

/** One dispatched event. */
export interface SseEvent {
  /** `event:` (default `message`). */
  event: string;
  /** The `data:` lines joined by `\n`. */
  data: string;
  /** `id:` of this event, if it had one. */
  id: string | undefined;
  /** `retry:` in ms, if it had one. */
  retry: number | undefined;
}

/** A comment line (without its leading `:`), surfaced for diagnostics. */
export interface SseComment {
  comment: string;
}

/** Feeds text to the parser; yields events and comments as they complete. */
export class SseParser {
  private buffer = "";
  private pendingCR = false;
  private event = "";
  private data: string[] = [];
  private id: string | undefined;
  private retry: number | undefined;
  private hasData = false;

  /** Parses a chunk of text; answers the events and comments it completed. */
  push(chunk: string): Array<SseEvent | SseComment> {
    const out: Array<SseEvent | SseComment> = [];
    let text = chunk;
    if (this.pendingCR && text.startsWith("\n")) text = text.slice(1);
    this.pendingCR = false;
    this.buffer += text;
    for (;;) {
      const i = this.buffer.search(/[\r\n]/);
      if (i < 0) break;
      const line = this.buffer.slice(0, i);
      let rest = this.buffer.slice(i + 1);
      if (this.buffer[i] === "\r") {
        if (rest.startsWith("\n")) rest = rest.slice(1);
        else if (rest === "") this.pendingCR = true;
      }
      this.buffer = rest;
      this.line(line, out);
    }
    return out;
  }

  private line(line: string, out: Array<SseEvent | SseComment>): void {
    if (line === "") {
      if (this.hasData) {
        out.push({ event: this.event || "message", data: this.data.join("\n"), id: this.id, retry: this.retry });
      }
      this.event = "";
      this.data = [];
      this.hasData = false;
      this.id = undefined;
      this.retry = undefined;
      return;
    }
    if (line.startsWith(":")) {
      out.push({ comment: line.slice(1).replace(/^ /, "") });
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.event = value;
        break;
      case "data":
        this.data.push(value);
        this.hasData = true;
        break;
      case "id":
        if (!value.includes("\0")) this.id = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break;
    }
  }
}

/** Reads `body` and yields its events and comments; ends when the stream ends. */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent | SseComment> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
    yield* parser.push(decoder.decode() + "\n");
  } finally {
    try {
      await reader.cancel();
    } catch {
      // Already closed.
    }
    reader.releaseLock();
  }
}
