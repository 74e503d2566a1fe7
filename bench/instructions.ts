// instructions.ts — instructions per malloc+free pair on random_mixed, counted by
// valgrind's callgrind (stable on a noisy machine, unlike time; perf counters are often
// unavailable in VMs). Each allocator runs the same binary for N and 2N cycles; the
// difference cancels start-up and exit, and a cycle is one malloc or one free, so a pair is
// two cycles (the loop and its PRNG, identical for all, are included). Skipped when
// valgrind is not installed. The binaries are built with the system cc -O2 (baseline x86-64;
// valgrind has no AVX-512, so a zig cc build, without cc on PATH, targets x86_64_v3).
import type { Allocator } from "./allocators.ts";
import { BENCH_CC, compileProgram } from "./build.ts";
import type { Options } from "./options.ts";
import type { Progress } from "./progress.ts";
import type { Row, Section } from "./results.ts";
import { runWorkload } from "./runner.ts";

// program: random_mixed counts a malloc or a free as a cycle (a pair is two); pairs counts
// a malloc+free pair as a cycle (one block of the size kept live).
const ROWS = [
  { name: "random_mixed ws=400 16..1040 B", program: "random_mixed", args: [400, 42], cyclesPerPair: 2 },
  { name: "random_mixed ws=8192 16..1040 B", program: "random_mixed", args: [8192, 42], cyclesPerPair: 2 },
  ...[16, 1024, 32768].map((size) => ({
    name: `pairs ${size >= 1024 ? `${size / 1024} KiB` : `${size} B`}`, program: "pairs", args: [size], cyclesPerPair: 1,
  })),
];

export function valgrindAvailable(): boolean {
  return Bun.which("valgrind") !== null;
}

export function instructionsCount(allocators: number): number {
  return ROWS.length * allocators;
}

function collected(stderr: string | undefined): number | null {
  const m = stderr?.match(/Collected\s*:\s*(\d+)/);
  return m ? Number(m[1]) : null;
}

async function countOnce(bin: string, cycles: number, args: number[], alloc: Allocator, buildId: string | null, minAllocsPerOp: number): Promise<number> {
  const cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", bin, String(cycles), ...args.map(String)];
  const r = await runWorkload(cmd, alloc, { hakmemBuildId: buildId, minAllocsPerOp });
  if (!r.ok) throw new Error(r.message);
  const n = collected(r.stderr);
  if (n === null) throw new Error("no `Collected :` line from callgrind");
  return n;
}

export async function runInstructions(allocators: Allocator[], opts: Options, progress: Progress, buildId: string | null): Promise<Section> {
  const bins = new Map(ROWS.map((r) => [r.program, compileProgram(r.program, { cpu: "x86_64_v3" })]));
  const cycles = Math.max(20000, Math.round(200000 * opts.scale));
  const section: Section = {
    name: "instructions", unit: "instr/pair", higherIsBetter: false,
    title: "instructions per malloc+free pair: random_mixed, and one size in a loop (callgrind; deterministic, one run)",
    note: `(Ir(2N) − Ir(N)) / N per pair, N = ${cycles}; includes the loop (pairs: ~9 instructions; random_mixed: its PRNG too); built with ${BENCH_CC} -O2`,
    rows: ROWS.map((r): Row => ({ name: r.name, samples: [], errors: [] })),
  };
  for (const [i, rowDef] of ROWS.entries()) {
    for (const alloc of allocators) {
      progress.step(`instructions ${rowDef.name} · ${alloc.name}`);
      try {
        const bin = bins.get(rowDef.program) as string;
        const minAllocs = rowDef.cyclesPerPair === 1 ? 0.5 : 0.25;
        const one = await countOnce(bin, cycles, rowDef.args, alloc, buildId, minAllocs);
        const two = await countOnce(bin, 2 * cycles, rowDef.args, alloc, buildId, minAllocs);
        section.rows[i].samples.push({ allocator: alloc.name, run: 1, value: ((two - one) / cycles) * rowDef.cyclesPerPair, peakRssKb: null });
      } catch (e) {
        section.rows[i].errors.push({ allocator: alloc.name, run: 1, message: (e as Error).message });
      }
    }
  }
  return section;
}
