// phase.ts — the worker side of a threaded run (threads.ts): one phase of this thread's
// sequence, run as a src/threads.ts module task (`fuzzPhase`): blocks handed over by the
// previous thread are verified and freed or kept, this thread's own steps run, and its
// model (totals, live blocks, outbox) goes back to the main thread for the barrier checks.
import { Sequence } from "./sequence.ts";
import { account, addTotals, emptyTotals, type Block, type Totals } from "./model.ts";
import { failure } from "./failure.ts";
import { addCounts, defaults, type OpCounts } from "./options.ts";

export interface PhaseArgs {
  /** the main thread changes the thresholds while this phase runs */
  churn: boolean;
  run: string;
  seed: number;
  options: ReturnType<typeof defaults>;
  ops: number;
  inbox: Block[];
  final: boolean;
}

export interface PhaseResult {
  failure?: { step: number; op: string; detail: string };
  blocks: Block[];
  outbox: Block[];
  totals: Totals;
  counts: OpCounts;
  steps: number;
}

const sequences = new Map<string, Sequence>();

/** Worker side of runFuzzThreads: one phase of this thread's sequence (a threads.ts module task). */
export function fuzzPhase(_api: unknown, args: PhaseArgs, ctx: { thread: number; threads: number }): { ops: number; value: PhaseResult } {
  let seq = sequences.get(args.run);
  if (!seq) {
    seq = new Sequence({ ...args.options, thread: ctx.thread, threads: ctx.threads, learn: false, handoff: true, routing: false });
    sequences.set(args.run, seq);
  }
  const before = seq.step;
  const counts: OpCounts = {};
  let problem: PhaseResult["failure"];
  try {
    seq.syncRouting();
    seq.routingChurn = args.churn;
    const inbox = [...args.inbox];
    for (let i = 0; i < args.ops; i++) {
      if (inbox.length && seq.rng.chance(0.25)) seq.receive(inbox.pop()!);
      seq.runStep();
    }
    while (inbox.length) seq.receive(inbox.pop()!);
    if (args.final) seq.freeAll();
  } catch (error) {
    const f = failure(args.seed, "", seq, error);
    problem = { step: f.step, op: f.op, detail: f.detail };
  }
  addCounts(counts, seq.counts);
  const outbox = seq.outbox.splice(0);
  const totals = emptyTotals();
  addTotals(totals, seq.live.totals);
  for (const b of outbox) account(totals, b, 1);
  const result: PhaseResult = { failure: problem, blocks: [...seq.live.blocks()].map(plain), outbox: outbox.map(plain), totals, counts, steps: seq.step };
  if (args.final || problem) sequences.delete(args.run);
  return { ops: seq.step - before, value: result };
}

function plain(b: Block): Block {
  const { ptr, size, align, tag, usable, kind, tier, accounted, minTier } = b;
  return { ptr, size, align, tag, usable, kind, tier, accounted, minTier };
}
