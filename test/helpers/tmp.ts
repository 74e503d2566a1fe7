// tmp.ts — the one way the tests make temporary directories: under the system temp dir,
// named hakmem-<what>-XXXXXX, removed when the callback ends (also when it throws).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A fresh directory hakmem-<what>-XXXXXX; the caller removes it (prefer withTempDir). */
export function makeTempDir(what: string): string {
  return mkdtempSync(join(tmpdir(), `hakmem-${what}-`));
}

/** Runs `body` with a fresh directory and removes the directory afterwards. */
export async function withTempDir<T>(what: string, body: (dir: string) => T | Promise<T>): Promise<T> {
  const dir = makeTempDir(what);
  try {
    return await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
