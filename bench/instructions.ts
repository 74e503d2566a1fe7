// instructions.ts — instructions per malloc+free pair on random_mixed, counted by
// valgrind's callgrind (stable on a noisy machine, unlike time; perf counters are often
// unavailable in VMs). Each allocator runs the same binary for N and 2N cycles; the
// difference cancels start-up and exit, and a cycle is one malloc or one free, so a pair is
// two cycles (the loop and its PRNG, identical for all, are included). Skipped when
// valgrind is not installed. The binary is built for x86_64_v3: valgrind has no AVX-512.
import type { Allocator } from "./allocators.ts";
import { compileProgram } from "./build.ts";
import type { Options } from "./options.ts";
import type { Progress } from "./progress.ts";
import type { Row, Section } from "./results.ts";
import { runWorkload } from "./runner.ts";

const ROWS = [
  { name: "random_mixed ws=400 16..1040 B", args: [400, 42] },
  { name: "random_mixed ws=8192 16..1040 B", args: [8192, 42] },
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

async function countOnce(bin: string, cycles: number, args: number[], alloc: Allocator, buildId: string | null): Promise<number> {
  const cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", bin, String(cycles), ...args.map(String)];
  const r = await runWorkload(cmd, alloc, { hakmemBuildId: buildId, minAllocsPerOp: 0.25 });
  if (!r.ok) throw new Error(r.message);
  const n = collected(r.stderr);
  if (n === null) throw new Error("no `Collected :` line from callgrind");
  return n;
}

export async function runInstructions(allocators: Allocator[], opts: Options, progress: Progress, buildId: string | null): Promise<Section> {
  const bin = compileProgram("random_mixed", { cpu: "x86_64_v3" });
  const cycles = Math.max(20000, Math.round(200000 * opts.scale));
  const section: Section = {
    name: "instructions", unit: "instr/pair", higherIsBetter: false,
    title: "instructions per malloc+free pair on random_mixed (callgrind; deterministic, one run)",
    note: `(Ir(${2 * cycles} cycles) − Ir(${cycles} cycles)) / ${cycles} × 2; includes the loop and PRNG`,
    rows: ROWS.map((r): Row => ({ name: r.name, samples: [], errors: [] })),
  };
  for (const [i, rowDef] of ROWS.entries()) {
    for (const alloc of allocators) {
      progress.step(`instructions ${rowDef.name} · ${alloc.name}`);
      try {
        const one = await countOnce(bin, cycles, rowDef.args, alloc, buildId);
        const two = await countOnce(bin, 2 * cycles, rowDef.args, alloc, buildId);
        section.rows[i].samples.push({ allocator: alloc.name, run: 1, value: ((two - one) / cycles) * 2, peakRssKb: null });
      } catch (e) {
        section.rows[i].errors.push({ allocator: alloc.name, run: 1, message: (e as Error).message });
      }
    }
  }
  return section;
}
