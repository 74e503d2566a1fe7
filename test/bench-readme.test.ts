// npm run bench:readme (bench/readme.ts): the README's performance section is one bench run's
// Markdown, spliced between two markers; anything that is not a run's output is refused.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BEGIN, END, RUN_HEADER, spliceResults } from "../bench/readme.ts";
import { REPO } from "./helpers/c.ts";

const RUN = "2026-12-02 20:01 UTC · AMD EPYC, 2 cores · bun bench/main.ts · hakmem build abc · load average 0.3 at the start · 12:34\n\n| table |\n";

describe("bench:readme", () => {
  test("replaces what is between the markers, and only that", () => {
    const readme = `# title\n\nbefore\n${BEGIN}\n\nold results\n\n${END}\nafter\n`;
    const out = spliceResults(readme, RUN);
    expect(out).toBe(`# title\n\nbefore\n${BEGIN}\n\n${RUN.trim()}\n\n${END}\nafter\n`);
    expect(spliceResults(out, RUN)).toBe(out); // idempotent
  });

  test("refuses a README without the markers, and a file that is not a run's Markdown", () => {
    expect(() => spliceResults("# no markers\n", RUN)).toThrow(/no .* block/);
    expect(() => spliceResults(`${END}\n${BEGIN}\n`, RUN)).toThrow(/no .* block/);
    expect(() => spliceResults(`${BEGIN}\n${END}\n`, "| a hand-written table |\n")).toThrow(/not a bench run's Markdown/);
  });

  test("the README has the block, and what is in it is a run's output (or the placeholder)", () => {
    const readme = readFileSync(join(REPO, "README.md"), "utf8");
    const begin = readme.indexOf(BEGIN);
    const end = readme.indexOf(END);
    expect(begin).toBeGreaterThan(0);
    expect(end).toBeGreaterThan(begin);
    const body = readme.slice(begin + BEGIN.length, end).trim();
    expect(body === "(no run yet)" || RUN_HEADER.test(body)).toBe(true);
  });
});
