// safety.test.ts — heap safety beyond double frees (issue 21): the allocator's secrets, what
// check mode reports for each class of misuse in every tier (test/c/safety_cases.c), what
// normal mode survives, and guarded sampling.
import { describe, expect, test } from "bun:test";
import { expectPass, explain, runC, systemMode } from "./helpers/c.ts";

// Regression: block.zig seeded free_key and link_secret from AT_RANDOM (glibc's canary and
// pointer guard) with an invertible mix; free_key is in every freed block.
describe.skipIf(systemMode())("secrets", () => {
  test("the words of freed blocks reveal nothing of AT_RANDOM, and hakmem never asks for it", async () => {
    expectPass(await runC("secrets", [], { compileFlags: ["-rdynamic"] }), "secrets");
  });
});

const TIERS = { tiny: 40, mid: 3000, large: 1 << 20 } as const;
const HEX = "0x[0-9a-f]+";
const FLAGS = ["-fno-builtin-memcpy", "-fno-builtin-memset"];

/** What check mode says, per case: the problem line, then the detail line. */
function expected(name: string, size: number): RegExp[] {
  switch (name) {
    case "overflow_1":
      return [new RegExp(`hakmem: CHECK: write past the requested size of ${HEX} \\(.*offset ${size},`), new RegExp(`overflow of 1 byte past a ${size}-byte block`)];
    case "overflow_32":
      return [new RegExp(`hakmem: CHECK: write past the requested size of ${HEX} \\(.*offset ${size},`), /overflow of (at least )?\d+ bytes past/];
    case "underflow_1":
      return [new RegExp(`hakmem: CHECK: write before the start of ${HEX}`), new RegExp(`underflow of 1 byte before a ${size}-byte block`)];
    case "underflow_32":
      return [new RegExp(`hakmem: CHECK: write before the start of ${HEX}`), /underflow of (at least )?\d+ bytes before/];
    case "write_after_free_0":
    case "zero_after_free":
      return [new RegExp(`hakmem: CHECK: write to a freed block.* ${HEX} \\(.*offset 0,`), /write after free at offset 0 from the freed pointer/];
    case "double_free_thread":
      return [new RegExp(`hakmem: CHECK: double free of ${HEX}`)];
    default:
      return [];
  }
}

const CASES = ["overflow_1", "overflow_32", "underflow_1", "underflow_32", "write_after_free_0", "zero_after_free", "double_free_thread"];

describe.skipIf(systemMode())("check mode: large blocks fault on an overflow past the guard and on a use after free", () => {
  const size = TIERS.large;
  for (const name of ["write_after_free_0", "zero_after_free"]) {
    test(`large ${name}: the quarantined block's pages fault, reported with the offset`, async () => {
      const r = await runC("safety_cases", [name, size], { env: { HAKMEM_CHECK: "1" }, compileFlags: FLAGS });
      expect(r.signal, explain(r)).toBe("SIGSEGV");
      expect(r.stderr, explain(r)).toMatch(/^hakmem: CHECK: access to a freed block 0x[0-9a-f]+ \(large tier, \d+-byte block, offset \d+ from the freed pointer, thread \d+\): a use after free/);
    });
  }
  test("large overflow_1m: a 1 MiB memset past a 1 MiB block meets the guard page", async () => {
    const r = await runC("safety_cases", ["overflow_1m", size], { env: { HAKMEM_CHECK: "1" }, compileFlags: FLAGS });
    expect(r.signal, explain(r)).toBe("SIGSEGV");
    expect(r.stderr, explain(r)).toMatch(new RegExp(`^hakmem: CHECK: write past the requested size of ${HEX} \\(large tier, \\d+-byte block, thread \\d+\\): an access at offset \\d+, \\d+ bytes past the end of the ${size}-byte block, in the guard page after it`));
  });
});

// malloc(0) in check mode: an address in a region that is never accessible.
describe.skipIf(systemMode())("check mode: a zero-size block", () => {
  for (const name of ["zero_size_write", "zero_size_read"]) {
    test(`${name}: faults and is reported, in both check modes`, async () => {
      for (const mode of ["1", "warn"]) {
        const r = await runC("safety_cases", [name, 40], { env: { HAKMEM_CHECK: mode }, compileFlags: FLAGS });
        expect(r.signal, explain(r)).toBe("SIGSEGV");
        expect(r.stderr, explain(r)).toMatch(/^hakmem: CHECK: access to a zero-size block 0x[0-9a-f]+ \(malloc\(0\): no byte of it may be read or written; offset 0, thread \d+\)/);
      }
    });
    test(`${name}: normal mode survives it`, async () => {
      const r = await runC("safety_cases", [name, 40], { compileFlags: FLAGS });
      expect(r.code, explain(r)).toBe(0);
    });
  }
});

describe.skipIf(systemMode())("check mode: every class of misuse, in every tier", () => {
  for (const [tier, size] of Object.entries(TIERS)) {
    test(`${tier}: a clean run reports nothing`, async () => {
      const r = await runC("safety_cases", ["clean", size], { env: { HAKMEM_CHECK: "1" }, compileFlags: FLAGS });
      expect(r.stderr, explain(r)).toBe("");
      expect(r.stdout, explain(r)).toContain("reached end");
    });
    // Regression: the first 8 bytes of a freed block kept the program's bytes.
    test(`${tier}: a freed block is poisoned whole, its first bytes too`, async () => {
      const r = await runC("safety_cases", ["read_after_free", size], { env: { HAKMEM_CHECK: "1" }, compileFlags: FLAGS });
      expect(r.stdout, explain(r)).toContain(`FREED${" df".repeat(16)}`);
    });
    for (const name of CASES) {
      if (tier === "large" && name.includes("after_free")) continue; // faults: below
      test(`${tier} ${name}: reported as what happened (HAKMEM_CHECK=1 aborts, =warn goes on)`, async () => {
        const abort = await runC("safety_cases", [name, size], { env: { HAKMEM_CHECK: "1" }, compileFlags: FLAGS });
        for (const line of expected(name, size)) expect(abort.stderr, explain(abort)).toMatch(line);
        expect(abort.signal, explain(abort)).toBe("SIGABRT");
        const warn = await runC("safety_cases", [name, size], { env: { HAKMEM_CHECK: "warn" }, compileFlags: FLAGS });
        for (const line of expected(name, size)) expect(warn.stderr, explain(warn)).toMatch(line);
        expect(warn.stdout, explain(warn)).toContain("reached end");
        expect(warn.code, explain(warn)).toBe(0);
      });
      test(`${tier} ${name}: normal mode survives it (runs on, or reports and aborts)`, async () => {
        const r = await runC("safety_cases", [name, size], { compileFlags: FLAGS });
        if (r.signal === null) {
          expect(r.code, explain(r)).toBe(0);
          expect(r.stdout, explain(r)).toContain("reached end");
        } else {
          expect(r.signal, explain(r)).toBe("SIGABRT");
          expect(r.stderr, explain(r)).toMatch(/^hakmem: /);
        }
      });
    }
  }
});

// Guarded sampling is on by default; HAKMEM_GUARD_SAMPLE_MB=1 samples often enough for a
// short program to get one. Requests up to 16 KiB are sampled (tiny and small mid blocks).
describe.skipIf(systemMode())("guarded sampling", () => {
  const SAMPLED = { tiny: 48, "tiny, 40 bytes": 40, mid: 4000 } as const;
  const env = { HAKMEM_GUARD_SAMPLE_MB: "1" };
  for (const [tier, size] of Object.entries(SAMPLED)) {
    test(`${tier}: a clean sample is used and freed quietly`, async () => {
      const r = await runC("guarded_sample", ["clean", size], { env });
      expect(r.stdout, explain(r)).toContain("SAMPLED");
      expect(r.stdout, explain(r)).toContain("reached end");
      expect(r.stderr, explain(r)).toBe("");
    });
    test(`${tier}: an overflow of a sample faults and is reported`, async () => {
      const r = await runC("guarded_sample", ["overflow", size], { env });
      expect(r.signal, explain(r)).toBe("SIGSEGV");
      expect(r.stderr, explain(r)).toMatch(/^hakmem: guarded sample: overflow: an access at offset (\d+) of the \1-byte block 0x[0-9a-f]+, past its end/);
    });
    for (const [name, offset] of [["use_after_free", 8], ["read_after_free", 0]] as const) {
      test(`${tier}: ${name} of a sample faults and is reported with the offset`, async () => {
        const r = await runC("guarded_sample", [name, size], { env });
        expect(r.signal, explain(r)).toBe("SIGSEGV");
        expect(r.stderr, explain(r)).toMatch(new RegExp(`^hakmem: guarded sample: use after free: an access at offset ${offset} of the \\d+-byte block 0x[0-9a-f]+, freed by thread \\d+`));
      });
    }
    test(`${tier}: an underflow of a sample is reported (at free; at once when the block starts its page)`, async () => {
      const r = await runC("guarded_sample", ["underflow", size], { env });
      expect(["SIGABRT", "SIGSEGV"]).toContain(r.signal ?? "exit");
      expect(r.stderr, explain(r)).toMatch(/^hakmem: guarded sample: underflow: (an access )?1 byte before the \d+-byte block/);
    });
    test(`${tier}: a double free of a sample is a double free`, async () => {
      const r = await runC("guarded_sample", ["double_free", size], { env });
      expect(r.signal, explain(r)).toBe("SIGABRT");
      expect(r.stderr, explain(r)).toMatch(/^hakmem: double free of 0x[0-9a-f]+/);
    });
  }

  test("HAKMEM_GUARD_SAMPLE_MB=0 turns sampling off", async () => {
    const r = await runC("guarded_sample", ["clean", 48], { env: { HAKMEM_GUARD_SAMPLE_MB: "0" } });
    expect(r.stdout, explain(r)).toContain("NO SAMPLE");
    expect(r.code, explain(r)).toBe(3);
  });

  test("only blocks a slot can hold count toward the next sample (big ones do not make small ones due)", async () => {
    const r = await runC("guarded_sample", ["after_big", 48], { env });
    expect(r.stdout, explain(r)).toContain("NO SAMPLE");
    expect(r.code, explain(r)).toBe(0);
  });

  test("on by default: a long enough run gets samples", async () => {
    const r = await runC("guarded_sample", ["clean", 4000], {});
    expect(r.stdout, explain(r)).toContain("SAMPLED");
  });

  test("check mode does not sample (it checks every block)", async () => {
    const r = await runC("guarded_sample", ["clean", 48], { env: { ...env, HAKMEM_CHECK: "1" } });
    expect(r.stdout, explain(r)).toContain("NO SAMPLE");
  });
});

// Through bun:ffi too: samples come from hak_alloc, count in the stats as their bin's blocks,
// and go back through hak_free (a second free is refused).
describe.skipIf(systemMode())("guarded sampling from Bun", () => {
  test("hak_alloc hands out samples; the stats stay exact; a second free throws", async () => {
    const source = `
      import * as h from "./src/index.ts";
      const before = h.stats();
      const blocks = [];
      for (let i = 0; i < 200000; i++) blocks.push(h.alloc(64 + (i % 4) * 100));
      const samples = blocks.filter((p) => h.sampled(p));
      for (const p of samples) { h.view(p, 64).fill(7); }
      for (const p of blocks) h.free(p);
      let refused = 0;
      try { h.free(samples[0]); } catch (e) { if (e instanceof RangeError) refused++; }
      const after = h.stats();
      console.log(JSON.stringify({ samples: samples.length, refused, tiny: after.tiny.liveBlocks - before.tiny.liveBlocks, mid: after.mid.liveBlocks - before.mid.liveBlocks }));`;
    const proc = Bun.spawn([process.execPath, "-e", source], { cwd: `${import.meta.dir}/..`, stdout: "pipe", stderr: "pipe", env: { ...process.env, HAKMEM_GUARD_SAMPLE_MB: "1" } });
    const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
    expect(await proc.exited, err).toBe(0);
    const r = JSON.parse(out.trim().split("\n").pop()!);
    expect(r.samples).toBeGreaterThan(0);
    expect(r.refused).toBe(1);
    expect([r.tiny, r.mid]).toEqual([0, 0]);
  }, 60_000);
});
