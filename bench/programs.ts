// programs.ts — the `programs` section: real programs found on this machine, each run by
// commands.ts under every allocator (wall, CPU, page faults, peak RSS, stdout compared with
// glibc's). Every input is generated here, deterministically, in a temporary directory,
// before the first run (never timed); a program that is not installed is skipped with a
// message. Sizes are for about half a second each with glibc on a 2-core machine (kept
// small so the default suite stays under 5 minutes; --scale 4 gives a few seconds each);
// --quick / --scale shrink them. redis (with redis-benchmark) has its own section (bench/redis.ts).
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CommandRow } from "./commands.ts";

export interface ProgramDef {
  name: string;
  /** what must be installed, for the skip message */
  needs: string;
  /** the command line (run in the inputs' directory), or null when the program is missing */
  prepare: (dir: string, scale: number, tools: Tools) => Omit<CommandRow, "timeoutMs" | "cwd"> | null;
}

interface Tools { python: string | null; sqlite: boolean; gcc: string | null; git: string | null; perl: string | null; sort: string | null }

/** A deterministic PRNG (mulberry32): the same inputs on every machine and run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function words(next: () => number, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const len = 2 + (next() % 9);
    let w = "";
    for (let k = 0; k < len; k++) w += String.fromCharCode(97 + (next() % 26));
    out.push(w);
  }
  return out;
}

const n = (base: number, scale: number) => Math.max(1, Math.round(base * scale));

const PYTHON_OBJECTS = `
import sys, zlib
N = int(sys.argv[1])
x = 12345
def rnd():
    global x
    x = (x * 1103515245 + 12345) & 0x7fffffff
    return x >> 4
words = ["".join(chr(97 + rnd() % 26) for _ in range(2 + rnd() % 9)) for _ in range(4000)]
class Rec:
    def __init__(self, i, name, tags):
        self.i = i
        self.name = name
        self.tags = tags
        self.note = name.upper() + ":" + str(i)
index = {}
live = []
total = 0
for i in range(N):
    name = words[rnd() % 4000] + "_" + str(i % 977)
    rec = Rec(i, name, {words[rnd() % 4000]: i for _ in range(rnd() % 5)})
    live.append(rec)
    index.setdefault(name[:3], []).append(rec)
    if len(live) > 60000:
        dropped = live[:30000]
        live = live[30000:]
        for r in dropped:
            bucket = index[r.name[:3]]
            total += len(r.note) + sum(len(t) for t in r.tags)
        for k in list(index):
            index[k] = [r for r in index[k] if r.i > i - 30000]
summary = ",".join("%s=%d/%d" % (k, len(v), sum(len(r.tags) for r in v)) for k, v in sorted(index.items()))
text = " ".join(r.note.lower() for r in live[::7])
print(len(index), total, len(text), zlib.crc32(summary.encode()), zlib.crc32(text.encode()))
`;

const PYTHON_SQLITE = `
import os, sqlite3, sys, zlib
N = int(sys.argv[1]); path = sys.argv[2]
if os.path.exists(path):
    os.remove(path)
db = sqlite3.connect(path)
db.execute("PRAGMA journal_mode=OFF")
db.execute("PRAGMA synchronous=OFF")
db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER, name TEXT, v REAL, payload TEXT)")
x = 1
def rows():
    global x
    for i in range(N):
        x = (x * 1103515245 + 12345) & 0x7fffffff
        yield (i, x % 10007, "n%08x" % x, (x % 100000) / 7.0, "p" * (x % 60))
db.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows())
db.commit()
db.execute("CREATE INDEX t_k ON t (k)")
db.execute("CREATE INDEX t_name ON t (name)")
acc = 0
for q in range(3000):
    for r in db.execute("SELECT count(*), round(sum(v), 3) FROM t WHERE k = ?", ((q * 7) % 10007,)):
        acc = zlib.crc32(repr(r).encode(), acc)
for r in db.execute("SELECT k, count(*), round(avg(v), 3) FROM t GROUP BY k ORDER BY 2 DESC, 1 LIMIT 100"):
    acc = zlib.crc32(repr(r).encode(), acc)
for r in db.execute("SELECT name, length(payload) FROM t WHERE name BETWEEN 'n1' AND 'n2' ORDER BY name LIMIT 20000"):
    acc = zlib.crc32(repr(r).encode(), acc)
db.execute("UPDATE t SET payload = payload || 'x' WHERE k % 13 = 0")
for r in db.execute("SELECT sum(length(payload)) FROM t"):
    acc = zlib.crc32(repr(r).encode(), acc)
db.close()
print(N, acc)
`;

const PERL_TEXT = `
use strict; use warnings;
my (%freq, %pair, %len); my ($chars, $lines) = (0, 0);
while (my $line = <STDIN>) {
  chomp $line; $lines++;
  my @w = split /\\s+/, $line;
  for my $i (0 .. $#w) {
    (my $w = lc $w[$i]) =~ s/[^a-z]//g;
    next unless length $w;
    $freq{$w}++;
    $pair{"$w $w[$i + 1]"}++ if $i < $#w;
    push @{ $len{length $w} }, $w if $freq{$w} == 1;
  }
  my $r = join " ", map { ucfirst } reverse @w;
  $r =~ s/([aeiou])([a-z])/$2$1/g;
  $chars += length $r;
}
my @top = (sort { $freq{$b} <=> $freq{$a} || $a cmp $b } keys %freq)[0 .. 19];
my @pairs = (sort { $pair{$b} <=> $pair{$a} || $a cmp $b } grep { $pair{$_} > 3 } keys %pair)[0 .. 9];
print "$lines $chars ", scalar(keys %freq), " ", scalar(keys %pair), "\\n";
print join(" ", map { "$_=$freq{$_}" } @top), "\\n";
print join(" ", map { "[$_]=$pair{$_}" } @pairs), "\\n";
print join(" ", map { "$_:" . scalar(@{ $len{$_} }) } sort { $a <=> $b } keys %len), "\\n";
`;

/** A C file of `count` functions with loops, switches and arrays: work for gcc -O2. */
function bigC(count: number): string {
  const next = prng(7);
  const parts = ["#include <stddef.h>", "#include <string.h>"];
  for (let i = 0; i < count; i++) {
    const k = 3 + (next() % 9);
    const cases = Array.from({ length: k }, (_, c) => `case ${c}: s += a[i] * ${next() % 97} + (s >> ${1 + (next() % 7)}); break;`).join(" ");
    parts.push(`struct s${i} { int a[${4 + (next() % 12)}]; double d; const char *name; };
static int f${i}(int *a, size_t n, struct s${i} *st) {
  int s = ${next() % 1000};
  for (size_t i = 0; i < n; i++) {
    switch ((a[i] ^ ${next() % 255}) % ${k}) { ${cases} default: s ^= a[i]; }
    if (i < sizeof st->a / sizeof st->a[0]) st->a[i] += s;
  }
  st->d = s * ${(next() % 1000) / 7};
  return s + (int)strlen(st->name);
}`);
  }
  parts.push("int run_all(int *a, size_t n) {\n  int t = 0;");
  for (let i = 0; i < count; i++) parts.push(`  { struct s${i} st; memset(&st, 0, sizeof st); st.name = "f${i}"; t += f${i}(a, n, &st); }`);
  parts.push("  return t;\n}\n");
  return parts.join("\n");
}

/** A git fast-import stream: `commits` commits over `files` files of text lines. */
function gitHistory(commits: number, files: number): string {
  const next = prng(11);
  const vocab = words(next, 3000);
  const line = () => Array.from({ length: 4 + (next() % 8) }, () => vocab[next() % vocab.length]).join(" ");
  const contents: string[][] = Array.from({ length: files }, () => Array.from({ length: 120 + (next() % 200) }, line));
  const out: string[] = [];
  for (let c = 0; c < commits; c++) {
    const changed = new Set<number>();
    for (let k = 0; k < (c === 0 ? files : 1 + (next() % 6)); k++) changed.add(c === 0 ? k : next() % files);
    const t = 1700000000 + c * 3600;
    out.push(`commit refs/heads/main`, `mark :${c + 1}`, `author Bench <bench@example.com> ${t} +0000`, `committer Bench <bench@example.com> ${t} +0000`);
    const msg = `change ${c}: ${line()}\n`;
    out.push(`data ${Buffer.byteLength(msg)}`, msg.slice(0, -1));
    if (c > 0) out.push(`from :${c}`);
    for (const f of changed) {
      const lines = contents[f];
      for (let e = 0; e < 1 + (next() % 12); e++) {
        const at = next() % lines.length;
        if (next() % 3 === 0) lines.splice(at, 1); else lines.splice(at, next() % 2, line());
      }
      const body = lines.join("\n") + "\n";
      out.push(`M 100644 inline dir${f % 10}/file${f}.txt`, `data ${Buffer.byteLength(body)}`, body.slice(0, -1));
    }
    out.push("");
  }
  return out.join("\n") + "\n";
}

function textFile(lines: number, seed: number): string {
  const next = prng(seed);
  const vocab = words(next, 20000);
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const k = 3 + (next() % 14);
    const w: string[] = [];
    for (let j = 0; j < k; j++) {
      // Zipf-like: low indexes far more often
      const r = next() / 2 ** 32;
      w.push(vocab[Math.floor(vocab.length * r * r * r)]);
    }
    out.push(w.join(" "));
  }
  return out.join("\n") + "\n";
}

function sortInput(lines: number): string {
  const next = prng(5);
  const vocab = words(next, 50000);
  const out: string[] = [];
  for (let i = 0; i < lines; i++) out.push(`${vocab[next() % vocab.length]}\t${next() % 1000000}\t${vocab[next() % vocab.length]}${next() % 100}`);
  return out.join("\n") + "\n";
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export const PROGRAMS: ProgramDef[] = [
  {
    name: "python dicts/strings/objects", needs: "python3",
    prepare: (dir, scale, t) => {
      if (!t.python) return null;
      writeFileSync(join(dir, "objects.py"), PYTHON_OBJECTS);
      return { name: "python dicts/strings/objects", shell: `${q(t.python)} objects.py ${n(100000, scale)}`, env: { PYTHONHASHSEED: "0", PYTHONDONTWRITEBYTECODE: "1" } };
    },
  },
  {
    name: "sqlite (python3 sqlite3)", needs: "python3 with its sqlite3 module",
    prepare: (dir, scale, t) => {
      if (!t.python || !t.sqlite) return null;
      writeFileSync(join(dir, "sqlite_load.py"), PYTHON_SQLITE);
      return { name: "sqlite inserts, indexes, queries", shell: `${q(t.python)} sqlite_load.py ${n(100000, scale)} bench.db`, env: { PYTHONHASHSEED: "0", PYTHONDONTWRITEBYTECODE: "1" } };
    },
  },
  {
    name: "gcc -O2", needs: "gcc",
    prepare: (dir, scale, t) => {
      if (!t.gcc) return null;
      writeFileSync(join(dir, "big.c"), bigC(n(60, scale)));
      return { name: "gcc -O2 -c (generated C file)", shell: `${q(t.gcc)} -O2 -c big.c -o big.o && cksum < big.o` };
    },
  },
  {
    name: "git", needs: "git",
    prepare: (dir, scale, t) => {
      if (!t.git) return null;
      const repo = join(dir, "repo");
      mkdirSync(repo);
      const env = { ...process.env, GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null", HOME: dir };
      execFileSync(t.git, ["init", "-q", "-b", "main", repo], { env, stdio: "ignore" });
      execFileSync(t.git, ["fast-import", "--quiet"], { cwd: repo, env, input: gitHistory(n(600, scale), 300), stdio: ["pipe", "ignore", "inherit"], maxBuffer: 1 << 30 });
      execFileSync(t.git, ["checkout", "-q", "main"], { cwd: repo, env, stdio: "ignore" });
      return {
        name: "git log -p, blame, grep (generated repo)",
        shell: `cd repo && ${q(t.git)} log -p --no-color | cksum && ${q(t.git)} blame -s dir1/file1.txt | cksum && ${q(t.git)} grep -c -e ab -e cd HEAD~50 | cksum`,
        env: { GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null", HOME: dir, GIT_PAGER: "cat", LC_ALL: "C" },
      };
    },
  },
  {
    name: "perl", needs: "perl",
    prepare: (dir, scale, t) => {
      if (!t.perl) return null;
      writeFileSync(join(dir, "words.pl"), PERL_TEXT);
      writeFileSync(join(dir, "text.txt"), textFile(n(25000, scale), 3));
      return { name: "perl word counts, regexes (text)", shell: `${q(t.perl)} words.pl < text.txt`, env: { PERL_HASH_SEED: "0", LC_ALL: "C" } };
    },
  },
  {
    name: "sort", needs: "sort (coreutils)",
    prepare: (dir, scale, t) => {
      if (!t.sort) return null;
      writeFileSync(join(dir, "lines.txt"), sortInput(n(600000, scale)));
      return { name: "sort -k2n -k1 (large file)", shell: `${q(t.sort)} -t '\t' -k2,2n -k1,1 lines.txt | cksum`, env: { LC_ALL: "C" } };
    },
  },
];

function which(name: string): string | null {
  return Bun.which(name);
}

/** The programs this machine has (python resolved past any version-manager shim). */
export function findTools(): Tools {
  let python: string | null = null, sqlite = false;
  const py = which("python3");
  if (py) {
    try {
      const out = execFileSync(py, ["-c", "import sys\ntry:\n import sqlite3; ok = 1\nexcept Exception:\n ok = 0\nprint(sys.executable); print(ok)"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim().split("\n");
      python = out[0] || py;
      sqlite = out[1] === "1";
    } catch { python = null; }
  }
  return { python, sqlite, gcc: which("gcc"), git: which("git"), perl: which("perl"), sort: which("sort") };
}

export interface PreparedPrograms { dir: string; rows: CommandRow[]; skipped: string[] }

/** Generates every input and returns the rows to run (and what was skipped, and why). */
export function preparePrograms(scale: number, filter: (name: string) => boolean, timeoutMs: number): PreparedPrograms {
  const dir = mkdtempSync(join(tmpdir(), "hakmem-bench-programs-"));
  const tools = findTools();
  const rows: CommandRow[] = [];
  const skipped: string[] = [];
  for (const p of PROGRAMS) {
    if (!filter(p.name)) continue;
    const row = p.prepare(dir, scale, tools);
    if (row === null) skipped.push(`${p.name}: ${p.needs} not installed — skipped`);
    else rows.push({ ...row, cwd: dir, timeoutMs });
  }
  return { dir, rows, skipped };
}

export function cleanupPrograms(p: PreparedPrograms): void {
  rmSync(p.dir, { recursive: true, force: true });
}
