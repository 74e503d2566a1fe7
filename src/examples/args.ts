// args.ts — command-line numbers for the examples: a bad one prints what is expected and
// the usage line, then exits 2 (no stack trace).

/** The integer argument at `position` of process.argv (after the script), or `fallback`. */
export function integerArg(usage: string, position: number, name: string, fallback: number, min: number, max: number): number {
  const text = process.argv[2 + position];
  if (text === undefined) return fallback;
  const value = Number(text.replace(/_/g, ""));
  if (text.trim() === "" || !Number.isSafeInteger(value) || value < min || value > max) {
    console.error(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(text)}\nusage: ${usage}`);
    process.exit(2);
  }
  return value;
}

/** Exits 2 with the usage line when more arguments are given than the example takes. */
export function noMoreArgs(usage: string, count: number): void {
  if (process.argv.length - 2 > count) {
    console.error(`too many arguments: ${process.argv.slice(2 + count).join(" ")}\nusage: ${usage}`);
    process.exit(2);
  }
}
