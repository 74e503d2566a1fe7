// bench-smoke.test.ts — `bun bench/main.ts --quick` on a tiny configuration (hidden
// --scale knob, hakmem and glibc only): every section must produce numbers for both
// allocators and the JSON must parse. No timing assertions: speed is the bench's job.
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const WORKLOAD_SECTIONS = ["random_mixed", "larson", "mt_remote", "prodcons", "false_sharing", "fragmentation", "realloc_growth", "large_blocks"];

interface Row { name: string; samples: { allocator: string; value: number }[]; errors: { allocator: string; message: string }[] }
interface Section { name: string; rows: Row[] }

test("bench --quick produces numbers for hakmem and glibc in every section", async () => {
  const dir = mkdtempSync(join(tmpdir(), "hakmem-bench-smoke-"));
  try {
    const json = join(dir, "smoke.json");
    const proc = Bun.spawn([process.execPath, "bench/main.ts", "--quick", "--scale", "0.02", "--runs", "1", "--allocators", "hakmem,glibc", "--json", json], {
      cwd: ROOT, stdout: "pipe", stderr: "pipe",
    });
    const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    await proc.exited;
    expect(existsSync(json), `no JSON written:\n${out}\n${err}`).toBe(true);
    const report = JSON.parse(readFileSync(json, "utf8"));
    expect(typeof report.hakmem.buildId).toBe("string");
    expect(report.machine.cores).toBeGreaterThan(0);
    expect(existsSync(join(dir, "smoke.svg"))).toBe(true);

    const sections = report.sections as Section[];
    const expected = ["micro_ffi", "micro_kernel", ...WORKLOAD_SECTIONS];
    if (Bun.which("redis-server") && Bun.which("redis-benchmark") && Bun.which("redis-cli")) expected.push("redis");
    expect(sections.map((s) => s.name).sort()).toEqual(expected.sort());
    for (const section of sections) {
      for (const row of section.rows) {
        for (const allocator of ["hakmem", "glibc"]) {
          const values = row.samples.filter((s) => s.allocator === allocator).map((s) => s.value);
          const errors = row.errors.filter((e) => e.allocator === allocator).map((e) => e.message);
          expect({ where: `${section.name} / ${row.name} / ${allocator}`, errors, measured: values.length > 0 && values.every((v) => v > 0) })
            .toEqual({ where: `${section.name} / ${row.name} / ${allocator}`, errors: [], measured: true });
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);
