// check.ts — argument validation for the hakmem API: every bad input becomes a TypeError or
// RangeError with a clear message here, before anything crosses into native code.

/** Largest size the API accepts (2^47 bytes: beyond any x86-64 user address space). */
export const MAX_SIZE = 2 ** 47;

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  return String(value);
}

/** A byte count or element count: an integer in [0, 2^47]. */
export function checkSize(fn: string, what: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new TypeError(`hakmem.${fn}: ${what} must be an integer number, got ${describe(value)}`);
  }
  if (value < 0) throw new RangeError(`hakmem.${fn}: ${what} must not be negative, got ${value}`);
  if (value > MAX_SIZE) {
    throw new RangeError(`hakmem.${fn}: ${what} ${value} is absurdly large (limit 2^47 = ${MAX_SIZE})`);
  }
  return value;
}

/** A non-negative integer count (iterations, seeds) that fits a JS number exactly. */
export function checkCount(fn: string, what: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`hakmem.${fn}: ${what} must be a non-negative safe integer, got ${describe(value)}`);
  }
  return value;
}

/** A pointer as returned by the API: a positive integer number (0 / null is rejected). */
export function checkPointer(fn: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new TypeError(`hakmem.${fn}: expected a pointer (a number returned by hakmem), got ${describe(value)}`);
  }
  if (value <= 0) throw new TypeError(`hakmem.${fn}: null or invalid pointer ${value}`);
  return value;
}

/** An alignment: a power of two in [1, 2^47]. */
export function checkAlignment(fn: string, value: unknown): number {
  checkSize(fn, "alignment", value);
  const n = value as number;
  if (n === 0 || 2 ** Math.round(Math.log2(n)) !== n) {
    throw new RangeError(`hakmem.${fn}: alignment must be a power of two, got ${n}`);
  }
  return n;
}

export function hex(pointer: number): string {
  return `0x${pointer.toString(16)}`;
}
