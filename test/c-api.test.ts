// The C API for programs that link libhakmem.so (rather than preload it): the pkg-config
// file the build installs gives flags with which a program builds, starts without
// LD_LIBRARY_PATH and uses hakmem for malloc too; hakmem.h states the realloc(p, 0) rule
// of each interface; the README says how to link and what linking means.
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { explain, hakmemLib, REPO, runC, systemMode } from "./helpers/c.ts";

/** Cflags and Libs of a .pc file, with ${variables} expanded (what pkg-config prints). */
function pkgConfigFlags(pcFile: string): string[] {
  const vars: Record<string, string> = {};
  const fields: Record<string, string> = {};
  const expand = (text: string) => text.replace(/\$\{(\w+)\}/g, (_, name: string) => vars[name] ?? "");
  for (const line of readFileSync(pcFile, "utf8").split("\n")) {
    const v = line.match(/^(\w+)=(.*)$/);
    if (v) vars[v[1]] = expand(v[2].trim());
    const f = line.match(/^(\w+):\s*(.*)$/);
    if (f) fields[f[1]] = expand(f[2].trim());
  }
  return [fields.Cflags ?? "", fields.Libs ?? ""].join(" ").split(/\s+/).filter(Boolean);
}

// Regression: `gcc prog.c -L zig-out/lib -lhakmem` built a program that could not start
// (no rpath), and nothing said how to link or what linking means.
describe.skipIf(systemMode())("linking against libhakmem.so", () => {
  const pc = join(dirname(hakmemLib()), "pkgconfig", "hakmem.pc");

  test("the build installs hakmem.pc and hakmem.h", () => {
    expect(existsSync(pc)).toBe(true);
    const flags = pkgConfigFlags(pc);
    expect(flags).toContain("-lhakmem");
    expect(flags.some((f) => f.startsWith("-Wl,-rpath,/"))).toBe(true);
    const include = flags.find((f) => f.startsWith("-I"))!.slice(2);
    expect(readFileSync(join(include, "hakmem.h"), "utf8")).toBe(readFileSync(join(REPO, "zig/hakmem.h"), "utf8"));
    const pkgConfig = Bun.spawnSync(["pkg-config", "--cflags", "--libs", "hakmem"], {
      env: { ...process.env, PKG_CONFIG_PATH: dirname(pc) }, stdout: "pipe", stderr: "pipe",
    });
    if (pkgConfig.exitCode === 0) expect(pkgConfig.stdout.toString().trim().split(/\s+/)).toEqual(flags);
  });

  test("a program built with its flags starts without LD_LIBRARY_PATH; malloc is hakmem's; the header agrees with the library", async () => {
    const r = await runC("link_api", [], { preload: false, compileFlags: pkgConfigFlags(pc), env: { LD_LIBRARY_PATH: "" } });
    expect(r.code, explain(r)).toBe(0);
    expect(r.stdout, explain(r)).toContain("PASS link_api");
    expect(r.stderr).toBe("");
  }, 60_000);
});

describe("documentation of the C API", () => {
  const header = readFileSync(join(REPO, "zig/hakmem.h"), "utf8");
  const readme = readFileSync(join(REPO, "README.md"), "utf8");

  // Regression: hak_realloc(p, 0) returned a block and the preloaded realloc(p, 0) freed p,
  // and neither rule was written down.
  const says = (text: string, what: string) => ({ what, found: text.includes(what) });

  test("hakmem.h states the realloc(p, 0) rule of each interface", () => {
    for (const what of ["hak_realloc(p, 0) returns a valid minimum-size block", "realloc(p, 0) (the libc name, preloaded or linked) frees p and returns NULL"]) {
      expect(says(header, what)).toEqual({ what, found: true });
    }
  });

  test("the README says how to link, and that linking replaces malloc for the whole program", () => {
    for (const what of ["pkg-config --cflags --libs hakmem", "rpath", "hak_free(malloc(10))", "realloc(p, 0)"]) {
      expect(says(readme, what)).toEqual({ what, found: true });
    }
  });
});
