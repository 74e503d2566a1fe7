// memory-limit.test.ts — the memory hakmem may have (zig/settings/budget.zig): a hand-set hard
// budget (HAKMEM_MEMORY_LIMIT_MB: beyond it malloc returns NULL with ENOMEM, never a kill),
// and the limits of the cgroup v2 the process runs in (memory.max/memory.high: near them
// every heap purges what it retains at once).
import { describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileC, expectPass, explain, run, runC, systemMode } from "./helpers/c.ts";

function retainedKiB(stdout: string): number {
  const m = stdout.match(/retained_kib=(-?\d+)/);
  if (!m) throw new Error(`no retained_kib in ${stdout}`);
  return Number(m[1]);
}

describe.skipIf(systemMode())("HAKMEM_MEMORY_LIMIT_MB: a hard budget", () => {
  const budget = { HAKMEM_MEMORY_LIMIT_MB: "256" };

  test("1 GiB allocated in waves of 180 MiB (small and mid, then large) stays within 256 MiB", async () => {
    const r = await runC("memory_budget", ["waves", 256, 1024, 180], { env: budget });
    expectPass(r, "memory_budget waves");
  });

  test("a program that needs more gets NULL with ENOMEM, not a kill; a second round gets the budget again", async () => {
    const r = await runC("memory_budget", ["exceed", 256], { env: budget });
    expectPass(r, "memory_budget exceed");
    expect(r.signal, explain(r)).toBeNull();
  });

  test("a malformed limit is reported and ignored", async () => {
    const r = await runC("memory_budget", ["waves", 4096, 64, 32], { env: { HAKMEM_MEMORY_LIMIT_MB: "lots" } });
    expect(r.stderr).toContain("hakmem: ignoring HAKMEM_MEMORY_LIMIT_MB=lots");
    expect(r.stdout).toContain("PASS memory_budget waves");
  });
});

describe.skipIf(systemMode())("cgroup v2 limits (memory.max, memory.high, memory.current)", () => {
  // A long decay: without pressure, the freed 48 MiB stays resident (up to the retention bound).
  const slow = { HAKMEM_PURGE_DELAY_MS: "100000" };

  test("near the limit (a cgroup directory given by HAKMEM_CGROUP_DIR) everything retained goes back at once", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hakmem-cgroup-"));
    try {
      writeFileSync(join(dir, "memory.max"), `${64 << 20}\n`);
      writeFileSync(join(dir, "memory.high"), "max\n");
      writeFileSync(join(dir, "memory.current"), `${63 << 20}\n`);
      const near = await runC("cgroup_pressure", [48, 1], { env: { ...slow, HAKMEM_CGROUP_DIR: dir } });
      expectPass(near, "cgroup_pressure");
      writeFileSync(join(dir, "memory.current"), `${1 << 20}\n`);
      const far = await runC("cgroup_pressure", [48, 1], { env: { ...slow, HAKMEM_CGROUP_DIR: dir } });
      expectPass(far, "cgroup_pressure");
      expect(retainedKiB(near.stdout), explain(near)).toBeLessThan(12 << 10);
      expect(retainedKiB(far.stdout), explain(far)).toBeGreaterThan(32 << 10); // the control: nothing forced
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // A real cgroup of our own, where the machine has a writable cgroup v2 with the memory controller.
  const root = "/sys/fs/cgroup";
  const controllers = existsSync(join(root, "cgroup.controllers")) ? readFileSync(join(root, "cgroup.controllers"), "utf8") : "";
  const why = !controllers.split(/\s+/).includes("memory")
    ? `no cgroup v2 memory controller at ${root} (this machine: ${controllers.trim() || "cgroup v1 or none"})`
    : "";
  if (why) console.log(`skipping the test in a real cgroup: ${why}`);

  test.skipIf(why !== "")("in a cgroup with memory.max = 96 MiB, rounds of 48 MiB freed and reallocated are not killed", async () => {
    const group = join(root, `hakmem-test-${process.pid}`);
    try {
      mkdirSync(group);
    } catch (e) {
      console.log(`skipping: cannot create ${group}: ${e}`);
      return;
    }
    try {
      writeFileSync(join(group, "memory.max"), `${96 << 20}\n`);
      writeFileSync(join(group, "memory.swap.max"), "0\n");
      const exe = await compileC("cgroup_pressure");
      const r = await run(["sh", "-c", `echo $$ > ${group}/cgroup.procs && exec "$0" 48 20`, exe], { env: slow });
      expectPass(r, "cgroup_pressure");
      expect(retainedKiB(r.stdout), explain(r)).toBeLessThan(24 << 10);
    } finally {
      rmdirSync(group);
    }
  });
});
