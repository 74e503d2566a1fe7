// probe.ts — which of the tuner's variables this libhakmem.so understands. One tiny
// preloaded run of bench/c/random_mixed with every variable at its default: hakmem names
// each HAKMEM_* variable it does not know on stderr, and those are left out of the
// search, so the space can list variables newer than the library being tuned.
import { compileProgram } from "../build.ts";
import { runChild } from "./measure.ts";
import { defaults, envOf, type Param } from "./space.ts";

export async function unknownParams(lib: string, params: readonly Param[]): Promise<Param[]> {
  const program = compileProgram("random_mixed");
  const env = { ...envOf(defaults(params), params), HAKMEM_STATS: "1" };
  const out = await runChild({ argv: [program, "1000", "16", "1"], preload: lib, env, timeoutMs: 30_000 });
  if (out.exitCode !== 0 || !out.hakmem) throw new Error(`probe run of ${lib} failed: ${out.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  const unknown = new Set([...out.stderr.matchAll(/hakmem: unknown environment variable (\S+)/g)].map((m) => m[1]));
  return params.filter((p) => unknown.has(p.env));
}
