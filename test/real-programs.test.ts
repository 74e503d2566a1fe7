// Real programs run with libhakmem.so preloaded: python3, perl, git, gcc, node, sqlite3.
// Each runs once on the system allocator and once under hakmem; both must exit 0 with the
// same stdout (stderr is not compared: some programs print progress or timing there).
// A program that is not installed is a skipped test (test.skipIf), its name saying why.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { explain, hakmemLib, run, type RunResult, systemMode } from "./helpers/c.ts";
import { makeTempDir } from "./helpers/tmp.ts";

// bunfig.toml's [test] timeout is not applied by Bun 1.4.5, so each test states its own.
const TIMEOUT_MS = 120_000;

let work = "";
beforeAll(() => {
  work = makeTempDir("real");
});
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Where each program is installed (null: its test is skipped, and says so). */
const installed = Object.fromEntries(
  ["python3", "perl", "git", "gcc", "node", "sqlite3"].map((p) => [p, Bun.which(p)]),
) as Record<string, string | null>;

/** The test's name, with the reason when it is skipped. */
function title(program: string, what: string): string {
  return installed[program] ? what : `${what} (skipped: ${program} is not installed)`;
}

/** A fresh directory per run, so the two runs cannot see each other's files. */
function freshDir(name: string): string {
  const dir = join(work, `${name}-${Math.random().toString(36).slice(2)}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function requireSuccess(r: RunResult, what: string): void {
  if (r.code !== 0 || r.signal) throw new Error(`${what} failed\n${explain(r)}`);
  if (r.stderr.includes("cannot be preloaded")) throw new Error(`${what}: preload failed\n${explain(r)}`);
}

/**
 * Runs `argv` (built per run from a fresh directory) on the system allocator and under
 * hakmem; requires exit 0 for both and identical stdout.
 */
async function compareWithSystem(name: string, argv: (dir: string) => string[], env: Record<string, string> = {}) {
  const dirA = freshDir(name);
  const system = await run(argv(dirA), { preload: false, env, cwd: dirA });
  requireSuccess(system, `${name} (system allocator)`);
  const dirB = freshDir(name);
  // HAKMEM_STATS=1: each process prints its summary to stderr at exit, proof that hakmem
  // (not the system allocator) served it.
  const hakmem = await run(argv(dirB), { env: { ...env, HAKMEM_STATS: "1" }, cwd: dirB });
  requireSuccess(hakmem, `${name} (hakmem)`);
  if (!systemMode() && !/^hakmem: .*allocs=[1-9]/m.test(hakmem.stderr)) {
    throw new Error(`${name}: no HAKMEM_STATS summary on stderr, so hakmem did not serve it\n${explain(hakmem)}`);
  }
  expect(hakmem.stdout.replaceAll(dirB, "<dir>")).toBe(system.stdout.replaceAll(dirA, "<dir>"));
  expect(system.stdout.length).toBeGreaterThan(0);
}

const PYTHON_SCRIPT = `
import json, collections
d = {f"key{i}": [i, str(i) * 3, {"n": i % 17}] for i in range(60000)}
text = json.dumps(d)
back = json.loads(text)
assert back == d
words = collections.Counter(str(i * 7919 % 1000) for i in range(200000))
lists = [[j for j in range(i % 50)] for i in range(20000)]
s = sorted(d.keys(), key=lambda k: (len(k), k))
big = bytearray(8 << 20); big[-1] = 1
print(len(text), sum(len(l) for l in lists), words.most_common(3), s[:3], s[-1], sum(big))
`;

const PERL_SCRIPT = `
my %h; $h{"k$_"} = $_ * 2 for 1 .. 200000;
my $s = 0; for (keys %h) { $s += $h{$_} if /7/ }
my $j = join ",", map { sprintf "%05d", $_ } 1 .. 50000;
my @m = ($j =~ /(\\d*3\\d*)/g);
my @sorted = sort { $a <=> $b } map { $_ * 7919 % 100003 } 1 .. 100000;
print "$s ", scalar(@m), " $sorted[0] $sorted[-1]\\n";
`;

const NODE_SCRIPT = `
const m = new Map();
for (let i = 0; i < 200000; i++) m.set("k" + i, { i, s: String(i).repeat(3) });
const text = JSON.stringify([...m.entries()].slice(0, 50000));
const back = JSON.parse(text);
const buf = Buffer.alloc(16 << 20, 1);
let parts = []; for (let i = 0; i < 100000; i++) parts.push(i.toString(36));
console.log(m.size, text.length, back.length, buf.reduce((a, b) => a + b, 0), parts.join("").length);
`;

const C_PROGRAM = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    char *blocks[1000];
    unsigned long sum = 0;
    for (int i = 0; i < 1000; i++) { blocks[i] = malloc(i * 13 + 1); memset(blocks[i], i & 0xff, i * 13 + 1); }
    for (int i = 0; i < 1000; i++) { sum += (unsigned char)blocks[i][i * 13]; free(blocks[i]); }
    printf("sum=%lu\\n", sum);
    return 0;
}
`;

describe("real programs under LD_PRELOAD=libhakmem.so", () => {
  test.skipIf(systemMode())(`the library exports malloc (otherwise preloading it changes nothing)${systemMode() ? " (skipped: HAKMEM_TEST_SYSTEM=1)" : ""}`, () => {
    const nm = Bun.spawnSync(["nm", "-D", "--defined-only", hakmemLib()], { stdout: "pipe" });
    expect(nm.stdout.toString()).toMatch(/ T malloc\b/);
  });

  test.skipIf(!installed.python3)(title("python3", "python3"), async () => {
    const python = installed.python3!;
    const env = { PYTHONHASHSEED: "0" };
    await compareWithSystem("python3", () => [python, "-c", PYTHON_SCRIPT], env);
    await compareWithSystem("python3-pymalloc-off", () => [python, "-c", PYTHON_SCRIPT], { ...env, PYTHONMALLOC: "malloc" });
  }, TIMEOUT_MS);

  test.skipIf(!installed.perl)(title("perl", "perl"), async () => {
    const perl = installed.perl!;
    await compareWithSystem("perl", () => [perl, "-e", PERL_SCRIPT], { PERL_HASH_SEED: "0" });
  }, TIMEOUT_MS);

  test.skipIf(!installed.git)(title("git", "git: init, add, commit, gc, fsck"), async () => {
    const git = installed.git!;
    const script = `
set -e
g() { "${git}" -c user.name=hakmem -c user.email=hakmem@example.invalid -c init.defaultBranch=main "$@"; }
g init -q repo && cd repo
i=0; while [ $i -lt 300 ]; do echo "file $i $(seq $i $((i + 40)))" > f$i.txt; i=$((i + 1)); done
g add . && g commit -q -m first
i=0; while [ $i -lt 300 ]; do echo "change $i" >> f$i.txt; i=$((i + 3)); done
g commit -q -a -m second
g gc -q --aggressive
g fsck --full --strict
g rev-parse HEAD HEAD^{tree}
g log --format='%H %s' | cat
g count-objects -v | grep -E '^(count|in-pack|packs):'
`;
    const env = {
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_AUTHOR_DATE: "2026-01-01T00:00:00Z",
      GIT_COMMITTER_DATE: "2026-01-01T00:00:00Z",
    };
    await compareWithSystem("git", () => ["sh", "-c", script], env);
  }, TIMEOUT_MS);

  test.skipIf(!installed.gcc)(title("gcc", "gcc: compile and run a C program"), async () => {
    const gcc = installed.gcc!;
    await compareWithSystem("gcc", (dir) => {
      writeFileSync(join(dir, "prog.c"), C_PROGRAM);
      return ["sh", "-c", `"${gcc}" -O2 -Wall -o prog prog.c && ./prog`];
    });
  }, TIMEOUT_MS);

  test.skipIf(!installed.node)(title("node", "node"), async () => {
    const node = installed.node!;
    await compareWithSystem("node", () => [node, "-e", NODE_SCRIPT]);
  }, TIMEOUT_MS);

  test.skipIf(!installed.sqlite3)(title("sqlite3", "sqlite3: a few thousand inserts and queries"), async () => {
    const sqlite = installed.sqlite3!;
    await compareWithSystem("sqlite3", (dir) => {
      const lines = ["CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v INTEGER);", "BEGIN;"];
      for (let i = 0; i < 5000; i++) lines.push(`INSERT INTO t(name, v) VALUES ('name-${(i * 7919) % 10007}', ${(i * 31) % 997});`);
      lines.push("COMMIT;", "CREATE INDEX t_v ON t(v);");
      lines.push("SELECT count(*), sum(v), max(name) FROM t;");
      lines.push("SELECT v, count(*) FROM t GROUP BY v ORDER BY count(*) DESC, v LIMIT 5;");
      lines.push("SELECT group_concat(name, ',') FROM (SELECT name FROM t WHERE v < 3 ORDER BY name);");
      lines.push("DELETE FROM t WHERE v % 2 = 0; VACUUM; SELECT count(*) FROM t;");
      writeFileSync(join(dir, "load.sql"), lines.join("\n"));
      return [sqlite, join(dir, "test.db"), ".read load.sql"];
    });
  }, TIMEOUT_MS);
});
