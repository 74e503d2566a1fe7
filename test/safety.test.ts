// safety.test.ts — heap safety beyond double frees (issue 21): the allocator's secrets, and
// (with test/check.test.ts) what check mode and guarded sampling catch, in every tier.
import { describe, test } from "bun:test";
import { expectPass, runC, systemMode } from "./helpers/c.ts";

// Regression: block.zig seeded free_key and link_secret from AT_RANDOM (glibc's canary and
// pointer guard) with an invertible mix; free_key is in every freed block.
describe.skipIf(systemMode())("secrets", () => {
  test("the words of freed blocks reveal nothing of AT_RANDOM, and hakmem never asks for it", async () => {
    expectPass(await runC("secrets", [], { compileFlags: ["-rdynamic"] }), "secrets");
  });
});
