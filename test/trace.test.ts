// trace.test.ts — HAKMEM_TRACE recording (zig/process/trace.zig) and its replays: the native
// replayer (bench/c/replay.c, built with cc) and the in-process one (src/trace.ts through
// the kernels library). A program (test/c/trace_workload.c) is recorded under hakmem, then
// the trace is summarized, replayed and damaged.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileC, explain, run } from "./helpers/c.ts";
import { replayerBinary } from "../bench/replay.ts";
import { loadTrace, replayInProcess, summarizeTrace, TraceError } from "../src/trace.ts";
import { HAK_TRACE_BLOCK_HEADER_BYTES, HAK_TRACE_HEADER_BYTES } from "../src/abi.ts";

const dir = mkdtempSync(join(tmpdir(), "hakmem-trace-test-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

/** Runs trace_workload in `mode` under hakmem with HAKMEM_TRACE; the trace files it wrote. */
async function record(mode: string): Promise<{ files: string[]; result: Awaited<ReturnType<typeof run>> }> {
  const exe = await compileC("trace_workload");
  const sub = mkdtempSync(join(dir, `${mode}-`));
  const result = await run([exe, mode], { preload: true, env: { HAKMEM_TRACE: join(sub, "trace-%p.bin") } });
  const files = readdirSync(sub).sort().map((f) => join(sub, f));
  return { files, result };
}

/** bench/c/replay.c on `trace`, preloaded with hakmem or (false) on glibc. */
async function replayNative(trace: string, hakmem: boolean, args: string[] = []) {
  const r = await run([replayerBinary(), ...args, trace], { preload: hakmem, timeoutMs: 60_000 });
  const line = r.stdout.split("\n").find((l) => l.startsWith("RESULT ")) ?? "";
  const fields = Object.fromEntries(line.split(/\s+/).slice(1).map((p) => p.split("=")));
  return { r, fields };
}

describe("HAKMEM_TRACE", () => {
  test("a single-threaded trace: every kind of call, <= 8 bytes an event, and both replays reach the summary's peak live bytes", async () => {
    const { files, result } = await record("single");
    expect(result.code, explain(result)).toBe(0);
    expect(result.stderr).toBe("");
    expect(files.length).toBe(1);
    const trace = loadTrace(files[0]);
    const s = summarizeTrace(trace);
    expect(s.threads).toBe(1);
    for (const kind of ["malloc", "calloc", "realloc", "aligned", "free", "usable_size"] as const) expect(s.counts[kind]).toBeGreaterThan(0);
    expect(s.bytesPerEvent).toBeLessThanOrEqual(8);
    expect(s.counts.free_unknown).toBe(0); // every allocation was seen: none took a fast path
    expect(s.peakLiveBytes).toBeGreaterThan(1 << 20);
    const inProcess = replayInProcess(trace);
    expect(inProcess.skipped).toBe(0);
    expect(inProcess.failed).toBe(0);
    expect(inProcess.peakLiveBytes).toBe(s.peakLiveBytes);
    const native = await replayNative(files[0], true, ["--peak"]);
    expect(native.r.code, explain(native.r)).toBe(0);
    expect(native.fields.malloc_from).toContain("libhakmem");
    expect(Number(native.fields.peak_live_bytes)).toBe(s.peakLiveBytes);
    expect(Number(native.fields.ops)).toBe(s.events);
  });

  test("a multi-threaded trace with cross-thread frees replays without deadlock, under hakmem and glibc", async () => {
    const { files, result } = await record("threads");
    expect(result.code, explain(result)).toBe(0);
    const trace = loadTrace(files[0]);
    const s = summarizeTrace(trace);
    expect(s.threads).toBeGreaterThanOrEqual(10); // main, 4 producers, 2 consumers, 3 workers
    expect(s.counts.thread_begin).toBe(s.threads);
    expect(s.crossThreadFrees).toBe(4 * 5000);
    expect(s.crossThreadShare).toBeGreaterThan(0.3);
    for (const hakmem of [true, false]) {
      const native = await replayNative(files[0], hakmem);
      expect(native.r.code, explain(native.r)).toBe(0);
      expect(Number(native.fields.threads)).toBe(s.threads);
      expect(Number(native.fields.cross_thread_frees)).toBe(s.crossThreadFrees);
    }
    expect(replayInProcess(trace).skipped).toBe(0);
  });

  test("a truncated or corrupted trace gets one clear error (file, offset, what was expected) from both readers", async () => {
    const { files } = await record("single");
    const good = readFileSync(files[0]);
    const firstPayload = HAK_TRACE_HEADER_BYTES + HAK_TRACE_BLOCK_HEADER_BYTES;
    const damaged: [string, Uint8Array, RegExp][] = [
      ["empty", good.subarray(0, 0), /offset 0: expected a 32-byte trace header/],
      ["header cut", good.subarray(0, 20), /offset 0: expected a 32-byte trace header/],
      ["block header cut", good.subarray(0, HAK_TRACE_HEADER_BYTES + 10), /offset 32: expected a 24-byte block header.*truncated/],
      ["payload cut", good.subarray(0, firstPayload + 100), /offset 56: expected \d+ payload bytes.*truncated/],
      ["last byte gone", good.subarray(0, good.length - 1), /expected \d+ payload bytes.*truncated/],
    ];
    const flip = (at: number) => {
      const copy = new Uint8Array(good);
      copy[at] ^= 0x40;
      return copy;
    };
    damaged.push(["not a trace", flip(0), /offset 0: expected the trace magic/]);
    damaged.push(["block magic", flip(HAK_TRACE_HEADER_BYTES), /offset 32: expected the block magic/]);
    damaged.push(["payload byte", flip(firstPayload + 50), /offset 56: expected payload checksum/]);
    for (const [name, bytes, expected] of damaged) {
      const path = join(dir, `damaged-${name.replace(/ /g, "-")}.bin`);
      writeFileSync(path, bytes);
      const native = await replayNative(path, true);
      expect(native.r.code, `${name}: ${explain(native.r)}`).toBe(2);
      expect(native.r.stderr).toContain(`replay: ${path}: `);
      expect(native.r.stderr, name).toMatch(expected);
      expect(native.r.signal).toBeNull();
      let error: unknown = null;
      try {
        loadTrace(path);
      } catch (e) {
        error = e;
      }
      expect(error, name).toBeInstanceOf(TraceError);
      expect((error as Error).message, name).toContain(path);
      expect((error as Error).message, name).toMatch(expected);
    }
  });

  test("a trace of a program that frees a block twice: the double free is reported at replay, not replayed", async () => {
    const { files, result } = await record("double");
    expect(result.signal, explain(result)).toBe("SIGABRT"); // hakmem stops the program
    expect(result.stderr).toContain("double free");
    expect(files.length).toBe(1);
    const native = await replayNative(files[0], true);
    expect(native.r.code, explain(native.r)).toBe(3);
    expect(native.r.stderr).toMatch(/double free in the trace: object 0 is freed by thread 0 \(event at offset \d+\) and by thread 0 \(event at offset \d+\); not replayed/);
    expect(() => loadTrace(files[0])).toThrow(/double free in the trace: object 0/);
  });

  test("threads still allocating when the program exits: their committed events are written once, the trace stays valid", async () => {
    const { files, result } = await record("exit");
    expect(result.code, explain(result)).toBe(0);
    const trace = loadTrace(files[0]); // throws on a block written twice (an object allocated twice)
    const s = summarizeTrace(trace);
    expect(s.threads).toBe(3);
    expect(s.counts.malloc).toBeGreaterThan(100);
    const native = await replayNative(files[0], true);
    expect(native.r.code, explain(native.r)).toBe(0);
  });

  test("fork with %p: the child records its own file; an object inherited from the parent is an unknown free there", async () => {
    const { files, result } = await record("fork");
    expect(result.code, explain(result)).toBe(0);
    expect(files.length).toBe(2);
    const [a, b] = files.map((f) => summarizeTrace(loadTrace(f)));
    const child = a.counts.malloc === 100 ? a : b;
    const parent = child === a ? b : a;
    expect(child.counts.malloc).toBe(100);
    expect(child.counts.free).toBe(100);
    expect(child.counts.free_unknown).toBe(1);
    expect(parent.counts.free).toBeGreaterThanOrEqual(1);
    for (const f of files) expect((await replayNative(f, true)).r.code).toBe(0);
  });
});
