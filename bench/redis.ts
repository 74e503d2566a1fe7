// redis.ts — the optional real application: redis-server preloaded with each allocator on
// a free loopback port, driven by redis-benchmark (bounded request count). Reports
// requests/s per command and the server's peak RSS. Proof of the allocator: the dynamic
// linker's own record of where redis-server's `malloc` was bound (LD_DEBUG=bindings),
// plus hakmem's HAKMEM_STATS=1 counters at shutdown. Debian's redis-server links
// jemalloc, so the glibc column preloads libc.so.6 to put glibc's malloc first.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Allocator } from "./allocators.ts";
import { sameFile } from "./allocators.ts";
import type { Options } from "./options.ts";
import type { Progress } from "./progress.ts";
import { checkHakmemStats } from "./proof.ts";
import { childEnv } from "./runner.ts";
import type { Section } from "./results.ts";

const COMMANDS = ["SET", "GET", "LPUSH"];

function which(name: string): string | null {
  for (const dir of (process.env.PATH ?? "/usr/bin:/bin").split(":")) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

export function redisAvailable(): { server: string; benchmark: string; cli: string } | null {
  const server = which("redis-server"), benchmark = which("redis-benchmark"), cli = which("redis-cli");
  return server && benchmark && cli ? { server, benchmark, cli } : null;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPing(cli: string, port: number): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    const r = Bun.spawnSync([cli, "-h", "127.0.0.1", "-p", String(port), "ping"], { stdout: "pipe", stderr: "ignore" });
    if (r.stdout.toString().includes("PONG")) return true;
    await Bun.sleep(50);
  }
  return false;
}

/** The object redis-server's `malloc` was bound to, from the LD_DEBUG=bindings log. */
function mallocBinding(logDir: string): string | null {
  for (const file of readdirSync(logDir)) {
    const text = readFileSync(join(logDir, file), "utf8");
    const m = text.match(/binding file \S*redis-server \[\d+\] to (\S+) \[\d+\]: normal symbol `malloc'/);
    if (m) return m[1];
  }
  return null;
}

function peakRssKb(pid: number): number | null {
  try {
    const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmHWM:\s+(\d+) kB/);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** requests/s per command from redis-benchmark --csv output. */
export function parseBenchmarkCsv(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m = line.match(/^"([^"]+)","([\d.]+)"/);
    if (m) out[m[1].split(" ")[0].toUpperCase()] = Number(m[2]);
  }
  return out;
}

interface RedisRun { rps: Record<string, number>; peakRssKb: number | null }

async function runOnce(tools: NonNullable<ReturnType<typeof redisAvailable>>, alloc: Allocator, opts: Options, hakmemBuildId: string | null): Promise<RedisRun> {
  const port = await freePort();
  const logDir = mkdtempSync(join(tmpdir(), "hakmem-bench-redis-"));
  const preload = alloc.preload ?? alloc.lib; // glibc: preload libc.so.6 ahead of redis's jemalloc
  const env = { ...childEnv(alloc, preload), LD_DEBUG: "bindings", LD_DEBUG_OUTPUT: join(logDir, "ld") };
  const server = Bun.spawn([tools.server, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
    "--dir", logDir, "--protected-mode", "no", "--loglevel", "warning"], { env, stdout: "ignore", stderr: "pipe" });
  const stderrText = new Response(server.stderr).text();
  try {
    if (!(await waitForPing(tools.cli, port))) throw new Error("redis-server did not answer PING");
    const bench = Bun.spawnSync([tools.benchmark, "-h", "127.0.0.1", "-p", String(port), "-n", String(opts.redisRequests),
      "-t", COMMANDS.join(",").toLowerCase(), "--csv"], { stdout: "pipe", stderr: "pipe", timeout: 300_000 });
    const rps = parseBenchmarkCsv(bench.stdout.toString());
    if (Object.keys(rps).length === 0) throw new Error(`redis-benchmark gave no numbers: ${bench.stderr.toString().trim()}`);
    const rss = peakRssKb(server.pid);
    server.kill("SIGTERM");
    const code = await Promise.race([server.exited, Bun.sleep(15_000).then(() => null)]);
    if (code === null) { server.kill("SIGKILL"); throw new Error("redis-server did not shut down"); }
    const bound = mallocBinding(logDir);
    if (!bound) throw new Error("no LD_DEBUG record of redis-server's malloc binding");
    if (!sameFile(bound, alloc.lib)) throw new Error(`preload did not take effect: redis-server's malloc is bound to ${bound}, expected ${alloc.lib}`);
    if (alloc.name === "hakmem") {
      const err = checkHakmemStats(await stderrText, hakmemBuildId, opts.redisRequests / 2);
      if (err) throw new Error(err);
    }
    return { rps, peakRssKb: rss };
  } finally {
    if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
    rmSync(logDir, { recursive: true, force: true });
  }
}

export function redisCount(opts: Options, allocators: number): number {
  return opts.runs * allocators;
}

export async function runRedis(allocators: Allocator[], opts: Options, progress: Progress, hakmemBuildId: string | null): Promise<Section | null> {
  const tools = redisAvailable();
  if (!tools) return null;
  const section: Section = {
    name: "redis", title: `redis-server ${redisVersion(tools.server)} driven by redis-benchmark (-n ${opts.redisRequests}, 50 clients, loopback)`,
    unit: "req/s", higherIsBetter: true, rows: COMMANDS.map((c) => ({ name: c, samples: [], errors: [] })),
    note: "glibc column: LD_PRELOAD=libc.so.6 (Debian's redis-server links jemalloc); allocator proven by LD_DEBUG=bindings",
  };
  for (let run = 1; run <= opts.runs; run++) {
    for (const alloc of allocators) {
      progress.step(`redis · ${alloc.name} · run ${run}`);
      try {
        const r = await runOnce(tools, alloc, opts, hakmemBuildId);
        for (const row of section.rows) {
          const v = r.rps[row.name];
          if (v === undefined) row.errors.push({ allocator: alloc.name, run, message: "no result for this command" });
          else row.samples.push({ allocator: alloc.name, run, value: v, peakRssKb: r.peakRssKb });
        }
      } catch (e) {
        for (const row of section.rows) row.errors.push({ allocator: alloc.name, run, message: (e as Error).message });
      }
    }
  }
  return section;
}

function redisVersion(server: string): string {
  const out = Bun.spawnSync([server, "--version"], { stdout: "pipe" }).stdout.toString();
  return out.match(/v=(\S+)/)?.[1] ?? "";
}
