// contents.ts — what a live block holds while the fuzzer owns it: a 4-byte tag, then a
// tag-dependent window of a fixed random table, over its whole requested size; and the
// checks that find the first byte that differs (or is not zero, for calloc).
import * as hak from "../../src/index.ts";
import { Rng } from "./rng.ts";

const PERIOD = 65536;
const TABLE = (() => {
  const rng = new Rng(0x5eed);
  const table = new Uint8Array(2 * PERIOD);
  for (let i = 0; i < table.length; i += 4) new DataView(table.buffer).setUint32(i, rng.next(), true);
  return table;
})();

function windowOf(tag: number): number {
  return Math.imul(tag, 0x9e3779b1) >>> 16;
}

/** Writes the pattern of `tag` over the first `length` bytes of the block at `ptr`. */
export function fillBlock(ptr: number, length: number, tag: number): void {
  if (length === 0) return;
  const bytes = hak.view(ptr, length);
  const start = windowOf(tag);
  for (let at = 0; at < length; at += PERIOD) {
    const n = Math.min(PERIOD, length - at);
    bytes.set(TABLE.subarray(start, start + n), at);
  }
  const head = Math.min(4, length);
  for (let i = 0; i < head; i++) bytes[i] = (tag >>> (8 * i)) & 0xff;
}

/** The first byte of the block's first `length` bytes that differs from tag's pattern, or -1. */
export function findCorruption(ptr: number, length: number, tag: number): number {
  if (length === 0) return -1;
  const bytes = hak.view(ptr, length);
  const head = Math.min(4, length);
  for (let i = 0; i < head; i++) if (bytes[i] !== ((tag >>> (8 * i)) & 0xff)) return i;
  const start = windowOf(tag);
  for (let at = 0; at < length; at += PERIOD) {
    const n = Math.min(PERIOD, length - at);
    const actual = Buffer.from(bytes.buffer, bytes.byteOffset + at, n);
    if (actual.equals(Buffer.from(TABLE.buffer, start, n))) continue;
    for (let i = Math.max(head - at, 0); i < n; i++) if (bytes[at + i] !== TABLE[start + i]) return at + i;
  }
  return -1;
}

/** The first byte of the block's first `length` bytes that is not zero, or -1. */
export function firstNonZero(ptr: number, length: number): number {
  if (length === 0) return -1;
  const bytes = hak.view(ptr, length);
  for (let i = 0; i < length; i++) if (bytes[i] !== 0) return i;
  return -1;
}
