// errors.ts — the one error type of the hakmem API: every error the library's functions
// throw carries a `code` saying what went wrong, and `err instanceof HakmemError` is true
// for all of them.
//
// The README promises TypeError/RangeError for bad input (and RangeError for a free of a
// block that is not live), so those errors stay what they were: HakmemTypeError extends
// TypeError and HakmemRangeError extends RangeError, each with a `code`; HakmemError's
// `instanceof` recognises all three by a brand, not by the prototype chain:
//
//   HakmemError ─────── extends Error        code OUT_OF_MEMORY | LIBRARY
//   HakmemRangeError ── extends RangeError   code INVALID | NOT_OWNED | DOUBLE_FREE
//   HakmemTypeError ─── extends TypeError    code INVALID
//
// Codes: OUT_OF_MEMORY (the library returned NULL), NOT_OWNED (a pointer hakmem did not
// map), INVALID (bad argument, or a pointer into hakmem's heap that is no live block: inside
// a block, or freed so long ago that its memory went back), DOUBLE_FREE (free of a block that
// is free already: hak_free returned HAK_ERR_DOUBLE_FREE; a RangeError like the other
// pointer errors), LIBRARY (the shared library is missing, unloadable or built from other
// sources).

export type HakmemErrorCode = "OUT_OF_MEMORY" | "NOT_OWNED" | "INVALID" | "DOUBLE_FREE" | "LIBRARY";

const brand: unique symbol = Symbol.for("hakmem.error");

interface Branded {
  readonly [brand]: true;
  readonly code: HakmemErrorCode;
}

function isBranded(value: unknown): value is Branded {
  return typeof value === "object" && value !== null && (value as Partial<Branded>)[brand] === true;
}

export class HakmemError extends Error {
  readonly [brand] = true as const;
  readonly code: HakmemErrorCode;
  constructor(code: HakmemErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
  /** True for every error the hakmem API throws (HakmemError, HakmemRangeError, HakmemTypeError). */
  static [Symbol.hasInstance](value: unknown): boolean {
    return isBranded(value);
  }
}
HakmemError.prototype.name = "HakmemError";

export class HakmemRangeError extends RangeError {
  readonly [brand] = true as const;
  readonly code: HakmemErrorCode;
  constructor(code: HakmemErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export class HakmemTypeError extends TypeError {
  readonly [brand] = true as const;
  readonly code: HakmemErrorCode;
  constructor(message: string) {
    super(message);
    this.code = "INVALID";
  }
}
