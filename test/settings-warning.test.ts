// settings-warning.test.ts — a malformed or unknown HAKMEM_* variable is reported once per
// process tree: a preloaded child whose parent had the same line (and preloaded hakmem)
// stays quiet, since the parent's copy of the library said it already (zig/settings/config.zig,
// parentWarned). Before, `gcc -c` printed the warning three times (gcc, cc1, as).
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { explain, run, systemMode } from "./helpers/c.ts";
import { withTempDir } from "./helpers/tmp.ts";

function count(text: string, needle: string): number {
  return text.split("\n").filter((line) => line.includes(needle)).length;
}

describe.skipIf(systemMode())("one warning per process tree", () => {
  test("a shell and the programs it starts: one line for a malformed value, one for an unknown name", async () => {
    const r = await run(["sh", "-c", "/bin/true; /bin/echo x; /bin/true"], { env: { HAKMEM_TINY_MAX: "9k", HAKMEM_TINYMAX: "1" } });
    expect(r.code, explain(r)).toBe(0);
    expect(count(r.stderr, "hakmem: ignoring HAKMEM_TINY_MAX=9k")).toBe(1);
    expect(count(r.stderr, "hakmem: unknown environment variable HAKMEM_TINYMAX")).toBe(1);
  });

  test("a child with another value than its parent's still warns", async () => {
    const r = await run(["sh", "-c", "HAKMEM_TINY_MAX=10k /bin/true"], { env: { HAKMEM_TINY_MAX: "9k" } });
    expect(count(r.stderr, "hakmem: ignoring HAKMEM_TINY_MAX=9k")).toBe(1);
    expect(count(r.stderr, "hakmem: ignoring HAKMEM_TINY_MAX=10k")).toBe(1);
  });

  test.skipIf(!Bun.which("gcc"))(`gcc -c (gcc, cc1, as): one line${Bun.which("gcc") ? "" : " (skipped: gcc is not installed)"}`, async () => {
    await withTempDir("warn-gcc", async (dir) => {
      writeFileSync(join(dir, "a.c"), "int f(int x) { return x + 1; }\n");
      const r = await run(["gcc", "-c", "a.c", "-o", "a.o"], { cwd: dir, env: { HAKMEM_TINY_MAX: "9k" } });
      expect(r.code, explain(r)).toBe(0);
      expect(count(r.stderr, "hakmem: ignoring HAKMEM_TINY_MAX=9k")).toBe(1);
    });
  });
});
