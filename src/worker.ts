// worker.ts — the body of one hakmem thread (a long-lived Bun Worker, see threads.ts).
//
// The library is loaded by the static import below, before the worker reports "ready";
// then the worker runs one task per message (a native kernel or a function from a user
// TypeScript module) and answers with its result. It never exits on its own: the parent
// terminates it, so no message is lost to an early exit.
import * as api from "./index.ts";
import type { Task, TaskResult, ToParent, ToWorker } from "./threads.ts";

declare const self: Worker;

const moduleCache = new Map<string, Record<string, unknown>>();

interface ModuleOutcome {
  ops?: number;
  value?: unknown;
}

/** Runs a user module's function `(api, args, context)`; returns its ops and value. */
async function runModule(task: Extract<Task, { kind: "module" }>, thread: number, threads: number) {
  const path = String(task.path); // an absolute path (threads.ts resolved it)
  let mod = moduleCache.get(path);
  if (!mod) {
    mod = (await import(path)) as Record<string, unknown>;
    moduleCache.set(path, mod);
  }
  const name = task.exportName ?? "default";
  const fn = mod[name];
  if (typeof fn !== "function") throw new TypeError(`hakmem threads: ${path} has no function export "${name}"`);
  const start = Bun.nanoseconds();
  const outcome: unknown = await fn(api, task.args, { thread, threads });
  const elapsedNs = Bun.nanoseconds() - start;
  return { ...moduleOutcome(task, name, outcome), elapsedNs };
}

/**
 * What a module function may return: a number of operations, `{ ops?, value? }`, or
 * nothing (ops 0). Anything else is a TypeError naming the function, not a silent 0.
 */
function moduleOutcome(task: { path: string | URL }, name: string, outcome: unknown): ModuleOutcome & { ops: number } {
  const where = `${String(task.path)} export "${name}"`;
  const badOps = (ops: unknown) =>
    new TypeError(`hakmem threads: ${where} returned ops ${describe(ops)}; ops must be a non-negative finite number`);
  if (outcome === undefined) return { ops: 0 };
  if (typeof outcome === "number") {
    if (!Number.isFinite(outcome) || outcome < 0) throw badOps(outcome);
    return { ops: outcome };
  }
  if (typeof outcome === "object" && outcome !== null && !Array.isArray(outcome)) {
    const unknown = Object.keys(outcome).filter((k) => k !== "ops" && k !== "value");
    if (unknown.length === 0) {
      const { ops, value } = outcome as ModuleOutcome;
      if (ops !== undefined && (typeof ops !== "number" || !Number.isFinite(ops) || ops < 0)) throw badOps(ops);
      return { ops: ops ?? 0, value };
    }
  }
  throw new TypeError(
    `hakmem threads: ${where} returned ${describe(outcome)}; a workload function returns a number of operations, ` +
      "{ ops?, value? } (value is posted back as is), or nothing",
  );
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object" && value !== null) return `an object with keys ${Object.keys(value).join(", ") || "(none)"}`;
  return String(value);
}

/** A kernel task's options: the task without its `kind` and the pointer it is given apart. */
function optionsOf<T extends { kind: string }>(task: T): Omit<T, "kind" | "array" | "queue"> {
  const { kind: _kind, array: _array, queue: _queue, ...options } = task as T & { array?: unknown; queue?: unknown };
  return options;
}

/** Runs one native kernel; returns its ops and kernel-measured elapsed ns. */
function runKernel(task: Task): { ops: number; elapsedNs: number; value?: unknown } {
  const k = api.kernels;
  switch (task.kind) {
    case "noop":
      k.noop();
      return { ops: 0, elapsedNs: 0 };
    case "pairs":
      return { ops: task.n, elapsedNs: k.pairs(optionsOf(task)) };
    case "random-mixed":
      return { ops: task.cycles, elapsedNs: k.randomMixed(optionsOf(task)) };
    case "larson-fill":
      return { ops: task.nblocks, elapsedNs: k.larsonFill(task.array, optionsOf(task)) };
    case "larson-round":
      return { ops: task.replacements, elapsedNs: k.larsonRound(task.array, optionsOf(task)) };
    case "produce": {
      const run = k.produce(task.queue, optionsOf(task));
      return { ops: run.done, elapsedNs: run.elapsedNs };
    }
    case "consume": {
      const run = k.consume(task.queue, optionsOf(task));
      return { ops: run.done, elapsedNs: run.elapsedNs };
    }
    default:
      throw new TypeError(`hakmem threads: unknown task kind ${JSON.stringify((task as Task).kind)}`);
  }
}

async function perform(task: Task, thread: number, threads: number): Promise<TaskResult> {
  const before = api.stats();
  const wallStart = Bun.nanoseconds();
  const run = task.kind === "module" ? await runModule(task, thread, threads) : runKernel(task);
  const wallNs = Bun.nanoseconds() - wallStart;
  const statsDelta = api.statsDelta(before, api.stats());
  return { thread, kind: task.kind, ops: run.ops, elapsedNs: run.elapsedNs, wallNs, statsDelta, value: run.value };
}

function send(message: ToParent): void {
  self.postMessage(message);
}

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const { id, task, thread, threads } = event.data;
  try {
    send({ type: "result", id, result: await perform(task, thread, threads) });
  } catch (err) {
    const e = err as Error;
    send({ type: "error", id, message: e?.message ?? String(err), stack: e?.stack });
  }
};

send({ type: "ready", version: api.version() });
