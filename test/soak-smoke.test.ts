// soak-smoke.test.ts — a 30-second run of the soak runner (test/soak.ts --minutes 0.5):
// the first loop (1 thread: every stress and bench program under preload, then a fuzz
// slice) always completes, and the runner must report no failure and a peak RSS. It runs
// against the checked library (libhakmem-checked.so: ReleaseSafe, validators at slow paths
// and thread exit); `npm run soak` measures the ReleaseFast one.
import { expect, test } from "bun:test";
import { resolve } from "node:path";

const REPO = resolve(import.meta.dir, "..");

test("soak runner, 30 s: every run verified, RSS bounded, summary printed", async () => {
  const proc = Bun.spawn([process.execPath, "test/soak.ts", "--minutes", "0.5"], {
    cwd: REPO,
    env: { ...process.env, HAKMEM_LIB: resolve(REPO, "zig-out/lib/libhakmem-checked.so") },
    stdout: "pipe",
    stderr: "pipe",
    timeout: 240_000,
    killSignal: "SIGKILL",
  });
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  const status = proc.signalCode ? `killed by ${proc.signalCode}` : `exit ${proc.exitCode}`;
  expect(`${status}\n${out}${err}`).toBe(`exit 0\n${out}${err}`);
  expect(out).toMatch(/soak summary: .* \d+ runs, 0 failures/);
  expect(out).toMatch(/peak RSS overall: \d+\.\d MiB/);
}, 300_000);
