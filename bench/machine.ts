// machine.ts — what the numbers were measured on and with: CPU, cores, kernel, glibc,
// allocator versions and paths, hakmem's build id, the git commit.
import { readFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem } from "node:os";
import type { Allocator } from "./allocators.ts";
import { ROOT } from "./build.ts";
import { glibcVersion, openLibrary, readCString } from "./native.ts";

export interface HakmemIdentity { lib: string; version: string | null; buildId: string | null }

export function hakmemIdentity(lib: string): HakmemIdentity {
  try {
    const h = openLibrary(lib);
    return { lib, version: readCString(h, "hak_version"), buildId: readCString(h, "hak_build_id") };
  } catch {
    return { lib, version: null, buildId: null };
  }
}

function cpuModel(): string {
  try {
    const m = readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.+)$/m);
    if (m) return m[1].trim();
  } catch { /* fall back to os.cpus() */ }
  return cpus()[0]?.model ?? "unknown";
}

function packageVersion(pkg: string): string | null {
  try {
    const r = Bun.spawnSync(["dpkg-query", "-W", "-f", "${Version}", pkg], { stdout: "pipe", stderr: "ignore" });
    const v = r.stdout.toString().trim();
    return r.exitCode === 0 && v ? v : null;
  } catch {
    return null;
  }
}

function git(args: string[]): string | null {
  try {
    const r = Bun.spawnSync(["git", ...args], { cwd: ROOT, stdout: "pipe", stderr: "ignore" });
    return r.exitCode === 0 ? r.stdout.toString().trim() : null;
  } catch {
    return null;
  }
}

export function gitInfo(): { commit: string | null; dirty: boolean | null } {
  const commit = git(["rev-parse", "HEAD"]);
  const status = git(["status", "--porcelain", "--untracked-files=no"]);
  return { commit, dirty: status === null ? null : status.length > 0 };
}

/** The 1-minute load average, and a warning when other work competes for the cores. */
export function busyWarning(): { load: number; warning: string | null } {
  const load = loadavg()[0];
  const cores = cpus().length;
  const warning = load > cores * 0.5
    ? `warning: the machine is busy (load average ${load.toFixed(1)} on ${cores} cores): timings will be noisy`
    : null;
  return { load, warning };
}

export function machineInfo() {
  return {
    cpu: cpuModel(),
    cores: cpus().length,
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    kernel: release(),
    glibc: glibcVersion(),
    bun: Bun.version,
    loadAverage: loadavg().map((x) => Number(x.toFixed(2))),
  };
}

export function allocatorInfo(allocators: Allocator[], hakmem: HakmemIdentity) {
  return allocators.map((a) => ({
    name: a.name,
    lib: a.lib,
    preload: a.preload,
    version: a.name === "hakmem" ? hakmem.version : a.pkg ? packageVersion(a.pkg) : null,
    buildId: a.name === "hakmem" ? hakmem.buildId : undefined,
  }));
}
