// micro_child.ts — one allocator's microbenchmarks, in a process of its own (so a crash
// costs only that allocator's run, and libraries with initial-exec TLS such as jemalloc
// can be dlopen'ed: the parent raises glibc.rtld.optional_static_tls for us).
// argv[2]: JSON MicroJob. stdout: JSON MicroResult. stderr: "PROGRESS <what>" lines.
import { measure } from "mitata";
import { BENCH_CC, compileProgram } from "./build.ts";
import { allocPair, type AllocPair, kernelFrom, type Kernel, noopCall, openLibrary } from "./native.ts";
import { median } from "./stats.ts";

export interface MicroJob {
  name: string; lib: string; allocSymbol: string; freeSymbol: string;
  hakmemLib: string; sizes: number[]; microMs: number; ffi: boolean; kernel: boolean;
}

export interface MicroResult {
  floorNs: number | null;
  kernelSource: string | null;
  ffi: Record<string, number>;      // size -> ns per pair
  kernel: Record<string, number>;
}

/** The native kernel: the bench's own loop (bench/c/pairs_kernel.c), the same for every
 * allocator (it calls each one's malloc/free through function pointers). */
function loadKernel(): { kernel: Kernel; source: string } {
  const so = compileProgram("pairs_kernel", { shared: true });
  const k = kernelFrom(openLibrary(so), "bench_kernel_pairs");
  if (!k) throw new Error(`${so} has no bench_kernel_pairs`);
  return { kernel: k, source: `bench_kernel_pairs (bench/c/pairs_kernel.c, ${BENCH_CC} -O2)` };
}

/** ns per pair through the native kernel: n grows until one call lasts targetNs, then median of 5. */
function kernelNsPerPair(kernel: Kernel, pair: AllocPair, size: number, targetNs: number): number {
  let n = 64;
  while (n < 1 << 26 && Number(kernel(pair.allocPtr, pair.freePtr, size, n)) < targetNs) n *= 4;
  const per: number[] = [];
  for (let i = 0; i < 5; i++) per.push(Number(kernel(pair.allocPtr, pair.freePtr, size, n)) / n);
  return median(per);
}

async function ffiNsPerPair(pair: AllocPair, size: number, microMs: number): Promise<number> {
  const { alloc, free } = pair;
  const stats = await measure(() => { free(alloc(size)); }, { min_cpu_time: microMs * 1e6, min_samples: 8 });
  return stats.p50;
}

async function runJob(job: MicroJob): Promise<MicroResult> {
  const pair = allocPair(openLibrary(job.lib), job.lib, job.allocSymbol, job.freeSymbol);
  const result: MicroResult = { floorNs: null, kernelSource: null, ffi: {}, kernel: {} };
  if (job.ffi) {
    const noop = noopCall();
    result.floorNs = (await measure(() => noop(1), { min_cpu_time: job.microMs * 1e6, min_samples: 8 })).p50;
    for (const size of job.sizes) {
      process.stderr.write(`PROGRESS micro_ffi ${size} B\n`);
      result.ffi[size] = await ffiNsPerPair(pair, size, job.microMs);
    }
  }
  if (job.kernel) {
    const k = loadKernel();
    result.kernelSource = k.source;
    for (const size of job.sizes) {
      process.stderr.write(`PROGRESS micro_kernel ${size} B\n`);
      result.kernel[size] = kernelNsPerPair(k.kernel, pair, size, job.microMs * 2e5);
    }
  }
  return result;
}

if (import.meta.main) {
  const job = JSON.parse(process.argv[2]) as MicroJob;
  try {
    process.stdout.write(JSON.stringify(await runJob(job)) + "\n");
  } catch (e) {
    process.stderr.write(`ERROR ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
