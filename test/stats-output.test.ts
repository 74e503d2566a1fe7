// Where the HAKMEM_STATS summary goes. Regression: programs that close stderr before they
// exit (GNU cat, sort, ls, grep do, through close_stdout) printed nothing with
// HAKMEM_STATS=1 (write(2) = EBADF). The summary now goes to the stderr the program started
// with (a descriptor kept from start-up), or to HAKMEM_STATS_FILE.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { explain, run, systemMode } from "./helpers/c.ts";
import { makeTempDir } from "./helpers/tmp.ts";

const SUMMARY = /^hakmem: build=\S+ allocs=[1-9]\d* /m;

let work = "";
beforeAll(() => {
  work = makeTempDir("stats");
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe.skipIf(systemMode())("HAKMEM_STATS output", () => {
  test("cat and sort close stderr at exit; the summary still reaches the stderr they started with", async () => {
    for (const argv of [["cat", "/etc/hostname"], ["sort", "/etc/passwd"], ["ls", "/"]]) {
      const r = await run(argv, { env: { HAKMEM_STATS: "1" } });
      expect(r.code, explain(r)).toBe(0);
      expect(r.stderr, explain(r)).toMatch(SUMMARY);
      expect(r.stderr.match(/^hakmem: build=/gm)?.length, explain(r)).toBe(1);
    }
  });

  test("HAKMEM_STATS_FILE=path appends the summary to a file (%p: the process id), nothing on stderr", async () => {
    const dir = mkdtempSync(join(work, "file-"));
    const r = await run(["sort", "/etc/passwd"], { env: { HAKMEM_STATS_FILE: join(dir, "stats-%p.txt") } });
    expect(r.code, explain(r)).toBe(0);
    expect(r.stderr).toBe("");
    const files = readdirSync(dir);
    expect(files).toEqual([expect.stringMatching(/^stats-\d+\.txt$/)]);
    expect(readFileSync(join(dir, files[0]), "utf8")).toMatch(SUMMARY);
    // appended, not truncated: a second run adds its own summary
    const fixed = join(dir, "all.txt");
    for (let i = 0; i < 2; i++) await run(["cat", "/etc/hostname"], { env: { HAKMEM_STATS_FILE: fixed } });
    expect(readFileSync(fixed, "utf8").match(/^hakmem: build=/gm)?.length).toBe(2);
  });

  test("a relative HAKMEM_STATS_FILE is taken from the directory the program started in", async () => {
    const dir = mkdtempSync(join(work, "rel-"));
    // (bash runs `cd` and `true` itself: one process, which changes directory, then exits;
    // dash would leave with _exit, which runs no exit handlers)
    const r = await run(["bash", "-c", "cd / && true"], { env: { HAKMEM_STATS_FILE: "out.txt" }, cwd: dir });
    expect(r.code, explain(r)).toBe(0);
    expect(existsSync(join(dir, "out.txt"))).toBe(true);
    expect(readFileSync(join(dir, "out.txt"), "utf8")).toMatch(SUMMARY);
  });

  test("an unwritable HAKMEM_STATS_FILE says so, and the summary goes to stderr", async () => {
    const r = await run(["cat", "/etc/hostname"], { env: { HAKMEM_STATS_FILE: "/nonexistent/dir/stats.txt" } });
    expect(r.code, explain(r)).toBe(0);
    expect(r.stderr).toContain("hakmem: cannot open HAKMEM_STATS_FILE /nonexistent/dir/stats.txt (errno 2); the summary follows on stderr");
    expect(r.stderr).toMatch(SUMMARY);
  });

  test("an empty or malformed setting gives one line naming what is expected and the limit", async () => {
    const cases: [Record<string, string>, string][] = [
      [{ HAKMEM_TINY_MAX: "" }, "hakmem: ignoring HAKMEM_TINY_MAX= (empty; expected a size in bytes such as 512, 4k or 1m); using the default 1024"],
      [{ HAKMEM_TINY_MAX: "9k" }, "hakmem: ignoring HAKMEM_TINY_MAX=9k (9216 is above the limit 8192); using the default 1024"],
      [{ HAKMEM_TINY_MAX: "12x" }, "hakmem: ignoring HAKMEM_TINY_MAX=12x (malformed; expected a size in bytes such as 512, 4k or 1m); using the default 1024"],
      [{ HAKMEM_MID_MAX: "0" }, "hakmem: ignoring HAKMEM_MID_MAX=0 (0 is below the lowest value 8192); using the default 1048576"],
      [{ HAKMEM_PURGE_DELAY_MS: "5s" }, "hakmem: ignoring HAKMEM_PURGE_DELAY_MS=5s (malformed; expected a whole number of milliseconds); using the default 50"],
      [{ HAKMEM_STATS_FILE: "" }, "hakmem: ignoring HAKMEM_STATS_FILE= (empty; expected a file path (%p: the process id)); using the default stderr"],
    ];
    for (const [env, line] of cases) {
      const r = await run(["cat", "/etc/hostname"], { env });
      expect(r.code, explain(r)).toBe(0);
      expect(r.stderr).toBe(`${line}\n`);
    }
  });
});
