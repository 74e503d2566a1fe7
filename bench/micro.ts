// micro.ts — microbenchmarks of one malloc+free pair per size: through bun:ffi with
// mitata (what a Bun user pays, next to the floor of a no-op FFI call) and through a
// native kernel looping N pairs via function pointers (what the allocator itself costs).
// hakmem: hak_alloc/hak_free; the others: malloc/free of their .so. Each allocator runs in
// its own child process (bench/micro_child.ts), interleaved A B C…, A B C… over the runs.
import { join } from "node:path";
import type { Allocator } from "./allocators.ts";
import { ROOT } from "./build.ts";
import type { MicroJob, MicroResult } from "./micro_child.ts";
import type { Options } from "./options.ts";
import type { Progress } from "./progress.ts";
import type { Row, Section } from "./results.ts";
import { median } from "./stats.ts";

export const MICRO_SIZES = [16, 64, 256, 1024, 4096, 32768, 262144, 2097152, 33554432];

/** Room for initial-exec TLS of dlopen'ed allocators (jemalloc's needs more than the default). */
const TUNABLES = "glibc.rtld.optional_static_tls=65536";

export function sizeLabel(size: number): string {
  if (size >= 1 << 20) return `${size >> 20} MiB`;
  if (size >= 1 << 10) return `${size >> 10} KiB`;
  return `${size} B`;
}

function emptyRows(): Row[] {
  return MICRO_SIZES.map((size) => ({ name: sizeLabel(size), samples: [], errors: [] }));
}

export function microCount(opts: Options, allocators: number, which: { ffi: boolean; kernel: boolean }): number {
  return opts.runs * allocators * MICRO_SIZES.length * (Number(which.ffi) + Number(which.kernel));
}

async function runChild(job: MicroJob, progress: Progress, label: string): Promise<MicroResult> {
  const proc = Bun.spawn([process.execPath, join(ROOT, "bench/micro_child.ts"), JSON.stringify(job)], {
    cwd: ROOT, env: { ...process.env, GLIBC_TUNABLES: process.env.GLIBC_TUNABLES ? `${process.env.GLIBC_TUNABLES}:${TUNABLES}` : TUNABLES }, stdout: "pipe", stderr: "pipe", timeout: 600_000,
  });
  const errors: string[] = [];
  const readStderr = (async () => {
    let buffered = "";
    for await (const chunk of proc.stderr) {
      buffered += new TextDecoder().decode(chunk);
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.startsWith("PROGRESS ")) progress.step(`${line.slice(9)} · ${label}`);
        else if (line.trim()) errors.push(line.replace(/^ERROR /, ""));
      }
    }
    if (buffered.trim()) errors.push(buffered.trim());
  })();
  const stdout = await new Response(proc.stdout).text();
  await readStderr;
  const code = await proc.exited;
  if (code !== 0 || !stdout.trim()) {
    const why = proc.signalCode ? `killed by ${proc.signalCode}` : `exit code ${code}`;
    throw new Error(`${why}${errors.length ? `: ${errors.slice(-4).join(" | ")}` : ""}`);
  }
  return JSON.parse(stdout) as MicroResult;
}

export async function runMicro(allocators: Allocator[], hakmemLib: string, opts: Options, progress: Progress,
  which: { ffi: boolean; kernel: boolean }): Promise<Section[]> {
  const ffi: Section = { name: "micro_ffi", title: "malloc+free pair through bun:ffi (mitata p50)", unit: "ns/pair", higherIsBetter: false, rows: emptyRows() };
  const native: Section = { name: "micro_kernel", title: "malloc+free pair in a native loop (function pointers, no FFI)", unit: "ns/pair", higherIsBetter: false, rows: emptyRows() };
  const floors: number[] = [];
  for (let run = 1; run <= opts.runs; run++) {
    for (const a of allocators) {
      const job: MicroJob = {
        name: a.name, lib: a.lib, allocSymbol: a.allocSymbol, freeSymbol: a.freeSymbol, hakmemLib,
        sizes: MICRO_SIZES, microMs: opts.microMs, ffi: which.ffi, kernel: which.kernel,
      };
      try {
        const r = await runChild(job, progress, `${a.name} · run ${run}/${opts.runs}`);
        if (r.floorNs !== null) floors.push(r.floorNs);
        if (r.kernelSource) native.note = `kernel: ${r.kernelSource}`;
        MICRO_SIZES.forEach((size, i) => {
          if (which.ffi) ffi.rows[i].samples.push({ allocator: a.name, run, value: r.ffi[size], peakRssKb: null });
          if (which.kernel) native.rows[i].samples.push({ allocator: a.name, run, value: r.kernel[size], peakRssKb: null });
        });
      } catch (e) {
        for (const s of [ffi, native]) for (const row of s.rows) row.errors.push({ allocator: a.name, run, message: (e as Error).message });
      }
    }
  }
  const sections: Section[] = [];
  if (which.ffi) {
    ffi.floorNs = median(floors);
    ffi.note = `floor: one no-op FFI call (libc abs) = ${ffi.floorNs.toFixed(1)} ns; a pair is two FFI calls`;
    sections.push(ffi);
  }
  if (which.kernel) sections.push(native);
  return sections;
}
