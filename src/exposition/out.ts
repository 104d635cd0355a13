// The output buffer of a scrape: bytes appended in place, numbers written as
// digits without making strings where they can be. Callers ask for room
// first, so that the hot paths write without bounds checks of their own.
import { formatNumber } from './text';

export const NL = 10;
const SPACE = 32;
const CLOSE = 125; // }
// Room for what a line adds to its sample name and labels: `} `, a number (at most
// 24 characters as formatNumber writes it), a bucket's `,le="..."} ` and the newline.
export const LINE_SLACK = 96;

/** A growing output buffer. Callers ask for room before writing. */
export class Out {
  buf: Buffer;
  pos = 0;
  /** `memory`: a buffer to write over (an earlier scrape's, given back), or the size of a new one. */
  constructor(memory: Buffer | number) {
    this.buf = typeof memory === 'number' ? Buffer.allocUnsafe(memory) : memory;
  }
  room(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }
  private grow(n: number): void {
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
  bytes(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  /** Any text; asks for room itself. */
  text(s: string): void {
    this.room(s.length * 3);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }
  /** `name{labels} value` and a newline (`name` ends with `{`); the caller asked for room. */
  sample(name: Uint8Array, labels: Uint8Array, value: number): void {
    this.bytes(name);
    this.bytes(labels);
    this.buf[this.pos++] = CLOSE;
    this.buf[this.pos++] = SPACE;
    this.num(value);
    this.buf[this.pos++] = NL;
  }
  /** A `_created` line: as sample(), with the start time already formatted. */
  created(name: Uint8Array, labels: Uint8Array, seconds: string): void {
    this.bytes(name);
    this.bytes(labels);
    this.buf[this.pos++] = CLOSE;
    this.buf[this.pos++] = SPACE;
    this.ascii(seconds);
    this.buf[this.pos++] = NL;
  }
  /** Short ASCII text (a formatted number). */
  ascii(s: string): void {
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < s.length; i++) buf[p++] = s.charCodeAt(i);
    this.pos = p;
  }
  /** A value as formatNumber() would write it; small non-negative integers (counts) without making a string. */
  num(v: number): void {
    if (v >= 0 && v < 2147483648 && (v | 0) === v) this.uint(v);
    else this.ascii(formatNumber(v));
  }
  uint(v: number): void {
    let digits = 1;
    for (let x = v; x >= 10; x = (x / 10) | 0) digits++;
    const buf = this.buf;
    const end = this.pos + digits;
    let p = end;
    let x = v;
    do {
      buf[--p] = 48 + (x % 10);
      x = (x / 10) | 0;
    } while (x > 0);
    this.pos = end;
  }
}
