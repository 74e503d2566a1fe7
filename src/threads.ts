// threads.ts — real OS threads for hakmem experiments: a pool of long-lived Bun Workers.
//
// Each worker (src/worker.ts) loads libhakmem.so before it reports ready, then runs tasks:
// native kernels (zig/tools/kernels.zig) or a function exported by a user TypeScript module,
// which receives the hakmem API. Pointers are numbers, so a block, a Larson block array
// or a queue allocated on one thread can be posted to another (cross-thread frees).
// Workers are started one at a time (each waits for the previous one's library load) and
// stay alive until close(), which terminates them and waits until each has closed. A worker
// holds the process open only while it has a task (idle workers are unref'd), so a script
// that forgets close() still exits when its work is done.
//
// Known Bun Worker pitfalls this avoids: concurrent bun:ffi dlopen from freshly spawned
// Workers crashed before Bun 1.4.0 (oven-sh/bun#40972), hence the one-at-a-time start;
// messages posted right before a worker's own process.exit() can be lost (#14144), hence
// workers never exit themselves; terminate() is called once per worker and the wait for
// its close event is bounded, so a stuck worker cannot hang the caller.
//
//   const pool = await ThreadPool.start(4);
//   const results = await pool.runAll([...]);   // one task per thread, in parallel
//   await pool.close();
//
// Ready-made multi-thread workloads (random-mixed, Larson, producer/consumer) are in
// src/workloads.ts.
import { existsSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { LarsonOptions, PairsOptions, RandomMixedOptions } from "./kernels.ts";
import type { Stats } from "./stats.ts";

/** One unit of work for one thread. */
export type Task =
  | { kind: "noop" }
  | ({ kind: "pairs" } & Omit<PairsOptions, "alloc" | "free">)
  | ({ kind: "random-mixed" } & RandomMixedOptions)
  | ({ kind: "larson-fill"; array: number } & Omit<LarsonOptions, "replacements">)
  | ({ kind: "larson-round"; array: number } & LarsonOptions)
  | { kind: "produce"; queue: number; count: number; min: number; max: number; seed?: number }
  | { kind: "consume"; queue: number; count: number }
  | {
      kind: "module";
      /**
       * The module: an absolute path, a file: URL (e.g. `import.meta.resolve("./w.ts")`) or a
       * URL object; a relative path is resolved like an import, against the directory of the
       * module that calls run/runAll (the current directory when there is none, e.g. `bun -e`).
       */
      path: string | URL;
      /** the function to call (default: the default export) */
      exportName?: string;
      /** passed to the function as its second argument (structured-cloned) */
      args?: unknown;
    };

/**
 * The result of one task on one thread. A module function `(api, args, { thread, threads })`
 * may return a number (ops) or `{ ops?, value? }`; `value` is posted back as is.
 */
export interface TaskResult {
  thread: number;
  kind: Task["kind"];
  /** operations done (kernel iterations, blocks produced/consumed, or what a module reported) */
  ops: number;
  /** elapsed ns measured by the kernel (or around the module function) */
  elapsedNs: number;
  /** elapsed ns of the whole task in the worker, stats reads included */
  wallNs: number;
  /**
   * Change of hakmem's counters over this task. The counters are process-wide, so while
   * other threads run at the same time this includes their activity too.
   */
  statsDelta: Stats;
  value?: unknown;
}

/** Messages between the pool and its workers. */
export type ToWorker = { id: number; task: Task; thread: number; threads: number };
export type ToParent =
  | { type: "ready"; version: string }
  | { type: "result"; id: number; result: TaskResult }
  | { type: "error"; id: number; message: string; stack?: string };

interface Pending {
  resolve: (result: TaskResult) => void;
  reject: (error: Error) => void;
}

const WORKER_URL = new URL("./worker.ts", import.meta.url);
const START_TIMEOUT_MS = 30_000;
const CLOSE_TIMEOUT_MS = 10_000;

/** One worker and the tasks it has not answered yet. */
/** Bun's Worker holds the process open unless unref'd (bun-types declares ref/unref on Bun.Worker). */
function handle(worker: Worker): { ref(): void; unref(): void } {
  return worker as unknown as { ref(): void; unref(): void };
}

class Thread {
  readonly pending = new Map<number, Pending>();
  failure: Error | undefined;

  constructor(
    readonly index: number,
    readonly worker: Worker,
  ) {
    worker.addEventListener("message", (event) => this.onMessage(event.data as ToParent));
    worker.addEventListener("error", (event) => this.fail(new Error(`hakmem thread ${index}: ${describeError(event)}`)));
    handle(worker).unref(); // idle
  }

  /** Registers a task; the worker keeps the process alive while it has one. */
  expect(id: number, waiter: Pending): void {
    if (this.pending.size === 0) handle(this.worker).ref();
    this.pending.set(id, waiter);
  }

  private settle(id: number): Pending | undefined {
    const waiter = this.pending.get(id);
    if (!waiter) return undefined;
    this.pending.delete(id);
    if (this.pending.size === 0) handle(this.worker).unref();
    return waiter;
  }

  private onMessage(message: ToParent): void {
    if (message.type === "ready") return;
    const waiter = this.settle(message.id);
    if (!waiter) return;
    if (message.type === "result") waiter.resolve(message.result);
    else waiter.reject(Object.assign(new Error(`hakmem thread ${this.index}: ${message.message}`), { workerStack: message.stack }));
  }

  fail(error: Error): void {
    this.failure ??= error;
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
    handle(this.worker).unref();
  }
}

function describeError(event: Event): string {
  const e = event as ErrorEvent;
  return e.message || String(e.error ?? "worker error");
}

/** Starts one worker and waits until it has loaded the library. */
function startWorker(index: number): Promise<Thread> {
  return new Promise((resolveStart, rejectStart) => {
    const worker = new Worker(WORKER_URL);
    const timer = setTimeout(() => finish(new Error(`hakmem thread ${index}: not ready after ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    const onMessage = (event: MessageEvent) => {
      if ((event.data as ToParent).type === "ready") finish();
    };
    const onError = (event: Event) => finish(new Error(`hakmem thread ${index} failed to start: ${describeError(event)}`));
    function finish(error?: Error) {
      clearTimeout(timer);
      worker.removeEventListener("message", onMessage);
      worker.removeEventListener("error", onError);
      if (error) {
        worker.terminate();
        rejectStart(error);
      } else {
        resolveStart(new Thread(index, worker));
      }
    }
    worker.addEventListener("message", onMessage);
    worker.addEventListener("error", onError);
  });
}

/** Terminates a worker and waits for its close event (bounded). */
function stopWorker(worker: Worker): Promise<void> {
  return new Promise((done) => {
    const timer = setTimeout(done, CLOSE_TIMEOUT_MS);
    worker.addEventListener(
      "close",
      () => {
        clearTimeout(timer);
        done();
      },
      { once: true },
    );
    worker.terminate();
  });
}

export class ThreadPool {
  private nextId = 1;
  private closed = false;

  private constructor(private readonly threads: Thread[]) {}

  /** Starts `count` threads, one after the other, each with the library loaded. */
  static async start(count: number): Promise<ThreadPool> {
    if (!Number.isInteger(count) || count < 1 || count > 256) {
      throw new RangeError(`hakmem.ThreadPool.start: count must be an integer in [1, 256], got ${count}`);
    }
    const threads: Thread[] = [];
    try {
      for (let i = 0; i < count; i++) threads.push(await startWorker(i));
    } catch (error) {
      await Promise.all(threads.map((t) => stopWorker(t.worker)));
      throw error;
    }
    return new ThreadPool(threads);
  }

  get size(): number {
    return this.threads.length;
  }

  /**
   * Runs `task` on thread `index`; resolves with its result. A module task's relative path
   * is resolved against the calling module's directory (see Task).
   */
  run(index: number, task: Task): Promise<TaskResult> {
    return this.post(index, task, callerDirectory());
  }

  /** Runs tasks[i] on thread i, all at once (undefined entries leave a thread idle). */
  runAll(tasks: readonly (Task | undefined)[]): Promise<TaskResult[]> {
    if (tasks.length > this.size) {
      return Promise.reject(new RangeError(`hakmem.ThreadPool.runAll: ${tasks.length} tasks for ${this.size} threads`));
    }
    const base = callerDirectory();
    const runs: Promise<TaskResult>[] = [];
    tasks.forEach((task, i) => {
      if (task) runs.push(this.post(i, task, base));
    });
    return Promise.all(runs);
  }

  private post(index: number, task: Task, base: string): Promise<TaskResult> {
    if (this.closed) return Promise.reject(new Error("hakmem.ThreadPool: the pool is closed"));
    const thread = this.threads[index];
    if (!thread) return Promise.reject(new RangeError(`hakmem.ThreadPool.run: no thread ${index} (size ${this.size})`));
    if (thread.failure) return Promise.reject(thread.failure);
    let normalized: Task;
    try {
      normalized = normalize(task, base);
    } catch (error) {
      return Promise.reject(error);
    }
    const message: ToWorker = { id: this.nextId++, task: normalized, thread: index, threads: this.size };
    return new Promise((resolveRun, rejectRun) => {
      thread.expect(message.id, { resolve: resolveRun, reject: rejectRun });
      thread.worker.postMessage(message);
    });
  }

  /** Terminates every worker and waits until each has closed. Unanswered tasks are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.threads) t.fail(new Error(`hakmem thread ${t.index}: the pool was closed`));
    await Promise.all(this.threads.map((t) => stopWorker(t.worker)));
  }
}

/**
 * A module task's path as an absolute path for the worker: a URL or file: URL as is, an
 * absolute path as is, a relative path against `base`. A missing file is an error here,
 * naming where it was looked for, rather than a failed import in the worker.
 */
function normalize(task: Task, base: string): Task {
  if (task.kind !== "module") return task;
  const given = task.path as unknown;
  let path: string;
  if (given instanceof URL) path = fileURLToPath(given);
  else if (typeof given !== "string" || given === "") {
    throw new TypeError(`hakmem.ThreadPool: a module task needs a path (a string or file: URL), got ${String(given)}`);
  } else if (given.startsWith("file:")) path = fileURLToPath(given);
  else path = resolve(base, given);
  if (!existsSync(path)) {
    const how = typeof given === "string" && !isAbsolute(given) && !given.startsWith("file:") ? ` (resolved against ${base})` : "";
    throw new Error(`hakmem.ThreadPool: module ${String(given)} not found: ${path}${how}`);
  }
  return { ...task, path };
}

const THIS_DIR = dirname(fileURLToPath(import.meta.url));

/**
 * The directory of the first module on the call stack outside src/threads.ts and
 * src/workloads.ts (the caller of run/runAll/moduleOnAll), or the current directory.
 */
function callerDirectory(): string {
  const stack = new Error().stack ?? "";
  for (const line of stack.split("\n").slice(1)) {
    const m = line.match(/\(?((?:file:\/\/)?\/[^():]+):\d+:\d+\)?\s*$/);
    if (!m) continue;
    const file = m[1].startsWith("file:") ? fileURLToPath(m[1]) : m[1];
    if (dirname(file) === THIS_DIR && /\/(threads|workloads)\.ts$/.test(file)) continue;
    return dirname(file);
  }
  return process.cwd();
}
