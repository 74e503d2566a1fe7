// failure.ts — how a broken invariant is reported: the replayable FAIL line
//   FAIL seed=<seed> [threads=<T> phase=<p> thread=<t>] step=<n> op=<op> call=<API call>: <what went wrong>
// (test/fuzz/cli.ts prints it with the command that replays it).

/** A broken invariant: the message is the replayable FAIL line. */
export class FuzzFailure extends Error {
  constructor(
    readonly seed: number,
    readonly where: string,
    readonly step: number,
    readonly op: string,
    readonly detail: string,
  ) {
    super(`FAIL seed=${seed}${where ? ` ${where}` : ""} step=${step} op=${op} ${detail}`);
    this.name = "FuzzFailure";
  }
}

/** An invariant broken inside a step (wrapped into a FuzzFailure by the runner). */
export class Broken extends Error {}

export function check(ok: boolean, detail: () => string): void {
  if (!ok) throw new Broken(detail());
}

/** Wraps anything thrown inside a step into a replayable FuzzFailure. */
export function failure(seed: number, where: string, seq: { step: number; op: string; call: string }, error: unknown): FuzzFailure {
  if (error instanceof FuzzFailure) return error;
  const call = seq.call ? `call=${seq.call}: ` : "";
  let detail: string;
  if (error instanceof Broken) detail = error.message;
  else if (error instanceof RangeError || error instanceof TypeError) detail = `the API threw ${error}`;
  else detail = `threw ${(error as Error)?.stack ?? error}`;
  return new FuzzFailure(seed, where, seq.step, seq.op, call + detail);
}
