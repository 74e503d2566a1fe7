// soak-smoke.test.ts — a 30-second run of the soak runner (test/soak.ts --minutes 0.5):
// the first loop (1 thread: every stress and bench program under preload, then a fuzz
// slice) always completes, and the runner must report no failure and a peak RSS. It runs
// against the checked library (libhakmem-checked.so: ReleaseSafe, validators at slow paths
// and thread exit); `npm run soak` measures the ReleaseFast one.
import { expect, test } from "bun:test";
import { resolve } from "node:path";
import { describeRun, REPO, spawnBun } from "./helpers/spawn.ts";

test("soak runner, 30 s, checked library: every run verified, RSS bounded, summary printed", async () => {
  const r = await spawnBun(["test/soak.ts", "--minutes", "0.5"], {
    env: { ...process.env, HAKMEM_LIB: resolve(REPO, "zig-out/lib/libhakmem-checked.so") },
    timeoutMs: 240_000,
  });
  expect(r.code, describeRun(r)).toBe(0);
  expect(r.stdout).toMatch(/soak summary: .* \d+ runs, 0 failures/);
  expect(r.stdout).toMatch(/peak RSS overall: \d+\.\d MiB/);
}, 300_000);
