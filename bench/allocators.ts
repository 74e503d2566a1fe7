// allocators.ts — which allocators the bench compares: hakmem, glibc (always) and each
// installed Debian peer, found at its standard path or through `ldconfig -p`.
import { existsSync, realpathSync } from "node:fs";

export interface Allocator {
  name: string;
  /** Shared object to LD_PRELOAD; null for glibc (the default malloc). */
  preload: string | null;
  /** Shared object that defines its malloc (for glibc: libc.so.6). */
  lib: string;
  /** Symbols for the FFI microbenchmarks. */
  allocSymbol: string;
  freeSymbol: string;
  /** Debian package it comes from (for versions and the install hint). */
  pkg: string | null;
}

interface Peer { name: string; soname: string; pkg: string }

const PEERS: Peer[] = [
  { name: "mimalloc", soname: "libmimalloc.so.2", pkg: "libmimalloc2.0" },
  { name: "jemalloc", soname: "libjemalloc.so.2", pkg: "libjemalloc2" },
  { name: "tcmalloc", soname: "libtcmalloc_minimal.so.4", pkg: "libtcmalloc-minimal4" },
];

const LIB_DIRS = ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"];

export const ALL_NAMES = ["hakmem", "glibc", ...PEERS.map((p) => p.name)];

export interface Discovery { allocators: Allocator[]; missing: string[]; installHint: string | null }

export function discoverAllocators(hakmemLib: string, wanted: string[] | null): Discovery {
  for (const w of wanted ?? []) {
    if (!ALL_NAMES.includes(w)) throw new Error(`unknown allocator ${w} (known: ${ALL_NAMES.join(", ")})`);
  }
  const want = (name: string) => wanted === null || wanted.includes(name);
  const allocators: Allocator[] = [];
  if (want("hakmem")) {
    allocators.push({ name: "hakmem", preload: hakmemLib, lib: hakmemLib, allocSymbol: "hak_alloc", freeSymbol: "hak_free", pkg: null });
  }
  if (want("glibc")) {
    allocators.push({ name: "glibc", preload: null, lib: findLibrary("libc.so.6") ?? "libc.so.6", allocSymbol: "malloc", freeSymbol: "free", pkg: "libc6" });
  }
  const missing: Peer[] = [];
  for (const peer of PEERS) {
    if (!want(peer.name)) continue;
    const path = findLibrary(peer.soname);
    if (path === null) { missing.push(peer); continue; }
    allocators.push({ name: peer.name, preload: path, lib: path, allocSymbol: "malloc", freeSymbol: "free", pkg: peer.pkg });
  }
  const installHint = missing.length === 0 ? null : `sudo apt-get install ${missing.map((p) => p.pkg).join(" ")}`;
  return { allocators, missing: missing.map((p) => p.name), installHint };
}

let ldconfigCache: string | null = null;

function ldconfigListing(): string {
  if (ldconfigCache === null) {
    ldconfigCache = "";
    for (const exe of ["ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"]) {
      try {
        const r = Bun.spawnSync([exe, "-p"], { stdout: "pipe", stderr: "ignore" });
        if (r.exitCode === 0) { ldconfigCache = r.stdout.toString(); break; }
      } catch { /* not on PATH: try the next spelling */ }
    }
  }
  return ldconfigCache;
}

/** Absolute path of a shared object by soname, or null when it is not installed. */
export function findLibrary(soname: string): string | null {
  for (const dir of LIB_DIRS) {
    const path = `${dir}/${soname}`;
    if (existsSync(path)) return path;
  }
  for (const line of ldconfigListing().split("\n")) {
    const m = line.match(/^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)/);
    if (m && m[1] === soname && m[2].includes("x86-64") && existsSync(m[3])) return m[3];
  }
  return null;
}

/** Same file, whatever the path spelling (/lib vs /usr/lib, symlinks). */
export function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return a === b;
  }
}
