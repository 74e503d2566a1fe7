// spawn.ts — the one way the tests run a child process and collect what it did: exit code,
// signal, stdout, stderr and wall time. Every run has a timeout (SIGKILL at the end), so a
// hung child fails its test instead of hanging the suite.
import { resolve } from "node:path";

export const REPO = resolve(import.meta.dir, "../..");

export interface SpawnOptions {
  cwd?: string;
  /** the child's whole environment (default: this process's) */
  env?: Record<string, string | undefined>;
  /** ms before the child is killed (default 90 s) */
  timeoutMs?: number;
  /** text written to the child's stdin (default: none, stdin ignored) */
  stdin?: string;
}

export interface Spawned {
  command: string;
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `argv` to its end; never throws for a failing child (look at code/signal). */
export async function spawnCollect(argv: string[], options: SpawnOptions = {}): Promise<Spawned> {
  const started = performance.now();
  const proc = Bun.spawn(argv, {
    cwd: options.cwd ?? REPO,
    env: options.env ?? process.env,
    stdin: options.stdin === undefined ? "ignore" : new TextEncoder().encode(options.stdin),
    stdout: "pipe",
    stderr: "pipe",
    timeout: options.timeoutMs ?? 90_000,
    killSignal: "SIGKILL",
  });
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  return {
    command: argv.join(" "),
    code: proc.exitCode,
    signal: proc.signalCode === null ? null : String(proc.signalCode),
    stdout,
    stderr,
    ms: performance.now() - started,
  };
}

/** `bun <args>` with this process's Bun (the pinned one), from the repository root. */
export function spawnBun(args: string[], options: SpawnOptions = {}): Promise<Spawned> {
  return spawnCollect([process.execPath, ...args], options);
}

/** "exit 3" / "killed by SIGKILL", and the output, for an assertion message. */
export function describeRun(r: Spawned): string {
  const status = r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  return `${r.command}: ${status}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}
