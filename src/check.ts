// check.ts — argument validation for the hakmem API: every bad input becomes a TypeError or
// RangeError (HakmemTypeError / HakmemRangeError, code INVALID: src/errors.ts) with a clear
// message here, before anything crosses into native code.
//
// Pointers: bun:ffi's `Pointer` is a branded number. checkPointer is the one place where a
// number the caller gives becomes a Pointer (after it is checked), so no call into the
// library needs an `as Pointer` cast.
import type { Pointer } from "bun:ffi";
import { HAK_SIZE_MAX } from "./abi.ts";
import { HakmemRangeError, HakmemTypeError } from "./errors.ts";

export type { Pointer };

/**
 * Largest size the API accepts: 2^46 bytes, the limit above which the library refuses any
 * request (HAK_SIZE_MAX, zig/abi.zig). A request up to it may still fail for lack of memory.
 */
export const MAX_SIZE = HAK_SIZE_MAX;
const MAX_SIZE_TEXT = `2^${Math.log2(MAX_SIZE)} = ${MAX_SIZE}`;

export function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object" && value !== null) return "an object";
  return String(value);
}

/** A byte count or element count: an integer in [0, MAX_SIZE]. */
export function checkSize(fn: string, what: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new HakmemTypeError(`hakmem.${fn}: ${what} must be an integer number, got ${describe(value)}`);
  }
  if (value < 0) throw new HakmemRangeError("INVALID", `hakmem.${fn}: ${what} must not be negative, got ${value}`);
  if (value > MAX_SIZE) {
    throw new HakmemRangeError("INVALID", `hakmem.${fn}: ${what} ${value} is absurdly large (limit ${MAX_SIZE_TEXT})`);
  }
  return value;
}

/** A non-negative integer count (iterations, seeds) that fits a JS number exactly. */
export function checkCount(fn: string, what: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new HakmemTypeError(`hakmem.${fn}: ${what} must be a non-negative safe integer, got ${describe(value)}`);
  }
  return value;
}

/** A pointer as returned by the API: a positive integer number (0 / null is rejected). */
export function checkPointer(fn: string, value: unknown): Pointer {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new HakmemTypeError(`hakmem.${fn}: expected a pointer (a number returned by hakmem), got ${describe(value)}`);
  }
  if (value <= 0) throw new HakmemTypeError(`hakmem.${fn}: null or invalid pointer ${value}`);
  return value as Pointer;
}

/** An alignment: a power of two in [1, MAX_SIZE]. */
export function checkAlignment(fn: string, value: unknown): number {
  checkSize(fn, "alignment", value);
  const n = value as number;
  if (n === 0 || 2 ** Math.round(Math.log2(n)) !== n) {
    throw new HakmemRangeError("INVALID", `hakmem.${fn}: alignment must be a power of two, got ${n}`);
  }
  return n;
}

/** Throws a TypeError unless `value` is a plain object (not null, not an array). */
export function checkObject(fn: string, what: string, value: unknown): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HakmemTypeError(`hakmem.${fn}: expected ${what}, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

/** Throws a TypeError naming any key of `value` that is not in `known` (a likely typo). */
export function checkKeys(fn: string, value: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new HakmemTypeError(`hakmem.${fn}: unknown option ${JSON.stringify(key)} (known: ${known.join(", ")})`);
    }
  }
}

export function hex(pointer: number): string {
  return `0x${pointer.toString(16)}`;
}
