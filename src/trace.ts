// trace.ts — allocation traces recorded with HAKMEM_TRACE=path (zig/process/trace.zig; the format
// is zig/abi.zig's "allocation traces", its constants in src/abi.ts): load one (every block
// and event checked: a bad file is a TraceError naming the file, the offset and what was
// expected), summarize it, flatten it into one order, and replay it in this process through
// the kernels library (zig/tools/kernels.zig hak_kernel_replay), i.e. under hakmem.
//
//   const trace = loadTrace("app.trace");
//   const s = summarizeTrace(trace);      // events, threads, sizes, live bytes, peak, cross-thread share
//   const r = replayInProcess(trace);     // { ns, peakLiveBytes, failed, skipped }
//
// The native replayer (bench/c/replay.c, `bun run replay`) runs a trace with its threads
// under any allocator; this one runs the flattened order on the calling thread.
import { readFileSync } from "node:fs";
import { ptr } from "bun:ffi";
import * as abi from "./abi.ts";
import { kernelsNative } from "./ffi.ts";

/** A trace file that is truncated, corrupted, or not a trace; or a trace that misuses memory. */
export class TraceError extends Error {
  constructor(
    readonly path: string,
    readonly offset: number,
    what: string,
  ) {
    super(`${path}: offset ${offset}: ${what}`);
    this.name = "TraceError";
  }
}

/** Decoded events of one recorded thread, in its order (parallel arrays). */
export interface ThreadEvents {
  thread: number;
  /** abi.HAK_TRACE_EV_* */
  tags: Uint8Array;
  /** the object (allocations, free, usable_size) */
  ids: Float64Array;
  /** realloc: the old id; aligned: log2 alignment; thread_begin: threads ended before */
  args: Float64Array;
  /** requested bytes */
  sizes: Float64Array;
  /** milliseconds since the trace began, at this event */
  ms: Float64Array;
  /** byte offset of the event in the file */
  offsets: Float64Array;
}

export interface Trace {
  path: string;
  pid: number;
  fileBytes: number;
  threads: ThreadEvents[];
  events: number;
  /** every id is below this */
  idLimit: number;
}

const ALLOCATES = new Set([abi.HAK_TRACE_EV_MALLOC, abi.HAK_TRACE_EV_CALLOC, abi.HAK_TRACE_EV_ALIGNED, abi.HAK_TRACE_EV_REALLOC]);

function fnv1a(bytes: Uint8Array): number {
  let h = abi.HAK_TRACE_FNV_OFFSET;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], abi.HAK_TRACE_FNV_PRIME) >>> 0;
  return h >>> 0;
}

interface Block { payloadAt: number; bytes: number; events: number }

/** Reads and checks a whole trace file. Throws TraceError for a bad file or a double free. */
export function loadTrace(path: string): Trace {
  const file = new Uint8Array(readFileSync(path));
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const fail = (offset: number, what: string): never => {
    throw new TraceError(path, offset, what);
  };
  const u32 = (at: number) => view.getUint32(at, true);
  if (file.length < abi.HAK_TRACE_HEADER_BYTES) fail(0, `expected a ${abi.HAK_TRACE_HEADER_BYTES}-byte trace header, the file has ${file.length} bytes (truncated, or not a trace)`);
  if (u32(abi.HAK_TRACE_HEADER_AT_MAGIC) !== abi.HAK_TRACE_MAGIC) fail(0, `expected the trace magic "HKTR", found 0x${u32(0).toString(16)}: not a hakmem trace`);
  if (u32(abi.HAK_TRACE_HEADER_AT_VERSION) !== abi.HAK_TRACE_VERSION) fail(abi.HAK_TRACE_HEADER_AT_VERSION, `expected format version ${abi.HAK_TRACE_VERSION}, found ${u32(abi.HAK_TRACE_HEADER_AT_VERSION)}`);
  if (u32(abi.HAK_TRACE_HEADER_AT_ID_CHUNK) !== abi.HAK_TRACE_ID_CHUNK) fail(abi.HAK_TRACE_HEADER_AT_ID_CHUNK, `expected an id chunk of ${abi.HAK_TRACE_ID_CHUNK}`);
  const pid = u32(abi.HAK_TRACE_HEADER_AT_PID);

  const blocks: Block[][] = [];
  let at = abi.HAK_TRACE_HEADER_BYTES;
  while (at < file.length) {
    if (file.length - at < abi.HAK_TRACE_BLOCK_HEADER_BYTES) fail(at, `expected a ${abi.HAK_TRACE_BLOCK_HEADER_BYTES}-byte block header, the file ends after ${file.length - at} bytes (truncated)`);
    if (u32(at + abi.HAK_TRACE_BLOCK_AT_MAGIC) !== abi.HAK_TRACE_BLOCK_MAGIC) fail(at, `expected the block magic "HKTB", found 0x${u32(at).toString(16)} (corrupted)`);
    const blockPid = u32(at + abi.HAK_TRACE_BLOCK_AT_PID);
    if (blockPid !== pid) fail(at, `expected a block of process ${pid}, found one of process ${blockPid} (several processes wrote this file: record with %p in HAKMEM_TRACE)`);
    const thread = u32(at + abi.HAK_TRACE_BLOCK_AT_THREAD);
    if (thread >= 4096) fail(at, `expected a thread index below 4096, found ${thread} (corrupted)`);
    const bytes = u32(at + abi.HAK_TRACE_BLOCK_AT_PAYLOAD_BYTES);
    if (bytes > abi.HAK_TRACE_BLOCK_PAYLOAD_MAX + abi.HAK_TRACE_EVENT_BYTES_MAX) fail(at, `expected at most ${abi.HAK_TRACE_BLOCK_PAYLOAD_MAX + abi.HAK_TRACE_EVENT_BYTES_MAX} payload bytes, found ${bytes} (corrupted)`);
    const payloadAt = at + abi.HAK_TRACE_BLOCK_HEADER_BYTES;
    if (file.length - payloadAt < bytes) fail(payloadAt, `expected ${bytes} payload bytes, the file ends after ${file.length - payloadAt} (truncated)`);
    const sum = fnv1a(file.subarray(payloadAt, payloadAt + bytes));
    if (sum !== u32(at + abi.HAK_TRACE_BLOCK_AT_CHECKSUM)) fail(payloadAt, `expected payload checksum 0x${u32(at + abi.HAK_TRACE_BLOCK_AT_CHECKSUM).toString(16)}, computed 0x${sum.toString(16)} (corrupted)`);
    (blocks[thread] ??= []).push({ payloadAt, bytes, events: u32(at + abi.HAK_TRACE_BLOCK_AT_EVENTS) });
    at = payloadAt + bytes;
  }
  const threads: ThreadEvents[] = [];
  let events = 0;
  let idLimit = 0;
  for (let t = 0; t < blocks.length; t++) {
    const decoded = decodeThread(file, path, t, blocks[t] ?? []);
    threads.push(decoded.events);
    events += decoded.events.tags.length;
    idLimit = Math.max(idLimit, decoded.idLimit);
  }
  checkObjects(path, threads, idLimit);
  return { path, pid, fileBytes: file.length, threads, events, idLimit };
}

function decodeThread(file: Uint8Array, path: string, thread: number, blocks: Block[]): { events: ThreadEvents; idLimit: number } {
  const total = blocks.reduce((n, b) => n + b.events, 0);
  const out: ThreadEvents = {
    thread, tags: new Uint8Array(total), ids: new Float64Array(total), args: new Float64Array(total),
    sizes: new Float64Array(total), ms: new Float64Array(total), offsets: new Float64Array(total),
  };
  let nextId = 0, idEnd = 0, ms = 0, n = 0, idLimit = 0;
  for (const b of blocks) {
    let p = b.payloadAt;
    const end = b.payloadAt + b.bytes;
    const fail = (what: string): never => {
      throw new TraceError(path, p, what);
    };
    const varint = (what: string): number => {
      let v = 0, scale = 1;
      for (let i = 0; i < 10; i++) {
        if (p >= end) fail(`expected ${what} (a varint), the block's payload ended (corrupted)`);
        const byte = file[p++];
        v += (byte & 0x7f) * scale;
        if (!(byte & 0x80)) return v;
        scale *= 128;
      }
      return fail(`expected ${what}, found a varint longer than 10 bytes (corrupted)`);
    };
    const objectId = (): number => {
      const z = varint("an object id");
      const delta = z % 2 === 0 ? z / 2 : -(z + 1) / 2;
      return nextId - 1 - delta;
    };
    const takeId = (): number => {
      if (nextId === idEnd) fail(`expected an id_base event before thread ${thread}'s allocation (corrupted)`);
      return nextId++;
    };
    for (let e = 0; e < b.events; e++) {
      if (p >= end) fail(`expected ${b.events - e} more events in thread ${thread}'s block, its payload ended (corrupted)`);
      const offset = p;
      const tag = file[p++];
      let id = 0, arg = 0, size = 0;
      switch (tag) {
        case abi.HAK_TRACE_EV_MALLOC:
        case abi.HAK_TRACE_EV_CALLOC:
          size = varint("a size");
          id = takeId();
          break;
        case abi.HAK_TRACE_EV_ALIGNED:
          arg = varint("an alignment");
          size = varint("a size");
          id = takeId();
          break;
        case abi.HAK_TRACE_EV_REALLOC:
          arg = objectId();
          size = varint("a size");
          id = takeId();
          break;
        case abi.HAK_TRACE_EV_FREE:
        case abi.HAK_TRACE_EV_USABLE_SIZE:
          id = objectId();
          break;
        case abi.HAK_TRACE_EV_THREAD_BEGIN:
          arg = varint("a thread count");
          break;
        case abi.HAK_TRACE_EV_TIME:
          ms += varint("milliseconds");
          break;
        case abi.HAK_TRACE_EV_ID_BASE:
          arg = varint("an id base");
          if (arg % abi.HAK_TRACE_ID_CHUNK !== 0) fail(`expected an id base that is a multiple of ${abi.HAK_TRACE_ID_CHUNK}, found ${arg} (corrupted)`);
          nextId = arg;
          idEnd = arg + abi.HAK_TRACE_ID_CHUNK;
          idLimit = Math.max(idLimit, idEnd);
          break;
        case abi.HAK_TRACE_EV_FREE_UNKNOWN:
        case abi.HAK_TRACE_EV_THREAD_END:
          break;
        default:
          p = offset;
          fail(`expected an event tag below ${abi.TRACE_EVENTS.length}, found ${tag} (corrupted)`);
      }
      out.tags[n] = tag;
      out.ids[n] = id;
      out.args[n] = arg;
      out.sizes[n] = size;
      out.ms[n] = ms;
      out.offsets[n] = offset;
      n++;
    }
    if (p !== end) fail(`expected the end of thread ${thread}'s block after its ${b.events} events, ${end - p} bytes remain (corrupted)`);
  }
  return { events: out, idLimit };
}

/** Every object allocated once and freed at most once (ids out of any chunk are corrupt). */
function checkObjects(path: string, threads: ThreadEvents[], idLimit: number): void {
  const allocatedBy = new Int32Array(idLimit).fill(-1);
  const freedBy = new Int32Array(idLimit).fill(-1);
  const freedAt = new Float64Array(idLimit);
  const inRange = (id: number, t: ThreadEvents, i: number) => {
    if (id < 0 || id >= idLimit) throw new TraceError(path, t.offsets[i], `thread ${t.thread} names object ${id}, which no id_base covers (corrupted)`);
  };
  for (const t of threads) {
    for (let i = 0; i < t.tags.length; i++) {
      const tag = t.tags[i];
      if (tag === abi.HAK_TRACE_EV_FREE || tag === abi.HAK_TRACE_EV_REALLOC) {
        const id = tag === abi.HAK_TRACE_EV_REALLOC ? t.args[i] : t.ids[i];
        inRange(id, t, i);
        if (freedBy[id] >= 0) {
          throw new TraceError(path, t.offsets[i], `double free in the trace: object ${id} is freed by thread ${t.thread} here and by thread ${freedBy[id]} at offset ${freedAt[id]}`);
        }
        freedBy[id] = t.thread;
        freedAt[id] = t.offsets[i];
      }
      if (tag === abi.HAK_TRACE_EV_USABLE_SIZE) inRange(t.ids[i], t, i);
      if (ALLOCATES.has(tag)) {
        inRange(t.ids[i], t, i);
        if (allocatedBy[t.ids[i]] >= 0) throw new TraceError(path, t.offsets[i], `object ${t.ids[i]} is allocated a second time (corrupted)`);
        allocatedBy[t.ids[i]] = t.thread;
      }
    }
  }
  for (let id = 0; id < idLimit; id++) {
    if (freedBy[id] >= 0 && allocatedBy[id] < 0) {
      throw new TraceError(path, freedAt[id], `object ${id} is freed by thread ${freedBy[id]} but never allocated in the trace (a free of a dead or foreign object)`);
    }
  }
}

/** One replayable step of a flattened trace. */
export interface FlatTrace {
  tags: Uint8Array;
  ids: Uint32Array;
  /** realloc: old id; aligned: log2 alignment */
  args: Uint32Array;
  sizes: Float64Array;
  ms: Float64Array;
  /** events that free an object the allocating thread did not */
  crossThreadFrees: number;
}

/**
 * The allocation events of every thread in one order: by the threads' coarse timestamps,
 * a thread's own order kept, and never a free (or realloc) before the object's allocation.
 * Bounded: each step takes one event or proves the trace inconsistent.
 */
export function flattenTrace(trace: Trace): FlatTrace {
  const keep = (tag: number) => ALLOCATES.has(tag) || tag === abi.HAK_TRACE_EV_FREE;
  const total = trace.threads.reduce((n, t) => n + t.tags.reduce((m, tag) => m + (keep(tag) ? 1 : 0), 0), 0);
  const out: FlatTrace = { tags: new Uint8Array(total), ids: new Uint32Array(total), args: new Uint32Array(total), sizes: new Float64Array(total), ms: new Float64Array(total), crossThreadFrees: 0 };
  const allocatedBy = new Int32Array(trace.idLimit).fill(-1);
  const next = trace.threads.map(() => 0);
  const ready = (t: ThreadEvents, i: number) => {
    const tag = t.tags[i];
    if (tag === abi.HAK_TRACE_EV_FREE) return allocatedBy[t.ids[i]] >= 0;
    if (tag === abi.HAK_TRACE_EV_REALLOC) return allocatedBy[t.args[i]] >= 0;
    return true;
  };
  let n = 0;
  for (let step = 0; step < trace.events + 1 && n < total; step++) {
    let pick = -1;
    for (let k = 0; k < trace.threads.length; k++) {
      const t = trace.threads[k];
      while (next[k] < t.tags.length && !keep(t.tags[next[k]])) next[k]++;
      if (next[k] >= t.tags.length || !ready(t, next[k])) continue;
      if (pick < 0 || t.ms[next[k]] < trace.threads[pick].ms[next[pick]]) pick = k;
    }
    if (pick < 0) throw new TraceError(trace.path, 0, "no thread can go on: every next event frees an object not allocated yet (inconsistent trace)");
    const t = trace.threads[pick];
    const i = next[pick]++;
    const tag = t.tags[i];
    const freedId = tag === abi.HAK_TRACE_EV_FREE ? t.ids[i] : tag === abi.HAK_TRACE_EV_REALLOC ? t.args[i] : -1;
    if (freedId >= 0 && allocatedBy[freedId] !== t.thread) out.crossThreadFrees++;
    if (ALLOCATES.has(tag)) allocatedBy[t.ids[i]] = t.thread;
    out.tags[n] = tag;
    out.ids[n] = t.ids[i];
    out.args[n] = t.args[i];
    out.sizes[n] = t.sizes[i];
    out.ms[n] = t.ms[i];
    n++;
  }
  return out;
}

export interface TraceSummary {
  path: string;
  fileBytes: number;
  events: number;
  bytesPerEvent: number;
  threads: number;
  counts: Record<abi.TraceEventName, number>;
  /** allocations by requested size: [upper bound in bytes (a power of two), count] */
  sizeHistogram: [number, number][];
  /** requested bytes live after each millisecond that had events, in the flattened order */
  liveOverTime: { ms: number; liveBytes: number }[];
  peakLiveBytes: number;
  crossThreadFrees: number;
  /** crossThreadFrees / all frees (realloc's included) */
  crossThreadShare: number;
  durationMs: number;
}

export function summarizeTrace(trace: Trace, flat: FlatTrace = flattenTrace(trace)): TraceSummary {
  const counts = Object.fromEntries(abi.TRACE_EVENTS.map((name) => [name, 0])) as Record<abi.TraceEventName, number>;
  for (const t of trace.threads) for (const tag of t.tags) counts[abi.TRACE_EVENTS[tag]]++;
  const histogram = new Map<number, number>();
  const size = new Float64Array(trace.idLimit);
  let live = 0, peak = 0, frees = 0;
  const liveOverTime: { ms: number; liveBytes: number }[] = [];
  for (let i = 0; i < flat.tags.length; i++) {
    const tag = flat.tags[i];
    if (tag === abi.HAK_TRACE_EV_FREE || tag === abi.HAK_TRACE_EV_REALLOC) {
      const old = tag === abi.HAK_TRACE_EV_FREE ? flat.ids[i] : flat.args[i];
      live -= size[old];
      size[old] = 0;
      frees++;
    }
    if (ALLOCATES.has(tag)) {
      size[flat.ids[i]] = flat.sizes[i];
      live += flat.sizes[i];
      peak = Math.max(peak, live);
      const bound = flat.sizes[i] <= 16 ? 16 : 2 ** Math.ceil(Math.log2(flat.sizes[i]));
      histogram.set(bound, (histogram.get(bound) ?? 0) + 1);
    }
    const last = liveOverTime[liveOverTime.length - 1];
    if (last && last.ms === flat.ms[i]) last.liveBytes = live;
    else liveOverTime.push({ ms: flat.ms[i], liveBytes: live });
  }
  return {
    path: trace.path, fileBytes: trace.fileBytes, events: trace.events,
    bytesPerEvent: trace.events ? trace.fileBytes / trace.events : 0,
    threads: trace.threads.length, counts,
    sizeHistogram: [...histogram.entries()].sort((a, b) => a[0] - b[0]),
    liveOverTime, peakLiveBytes: peak,
    crossThreadFrees: flat.crossThreadFrees, crossThreadShare: frees ? flat.crossThreadFrees / frees : 0,
    durationMs: liveOverTime.length ? liveOverTime[liveOverTime.length - 1].ms : 0,
  };
}

export interface InProcessReplay {
  ns: number;
  /** requested bytes live at the peak, as the replay saw them */
  peakLiveBytes: number;
  failed: number;
  skipped: number;
}

/** Replays the flattened trace on this thread through hak_alloc/hak_free (the kernels library). */
export function replayInProcess(trace: Trace, flat: FlatTrace = flattenTrace(trace)): InProcessReplay {
  const slots = new BigUint64Array(Math.max(1, trace.idLimit));
  const liveSizes = new BigUint64Array(Math.max(1, trace.idLimit));
  const out = new BigUint64Array(3);
  const n = flat.tags.length;
  const k = kernelsNative();
  const ns = k.hak_kernel_replay(
    ptr(flat.tags.length ? flat.tags : new Uint8Array(1)), ptr(flat.ids.length ? flat.ids : new Uint32Array(1)),
    ptr(flat.args.length ? flat.args : new Uint32Array(1)), ptr(flat.sizes.length ? flat.sizes : new Float64Array(1)),
    n, ptr(slots), ptr(liveSizes), trace.idLimit, ptr(out),
  );
  return { ns: Number(ns), peakLiveBytes: Number(out[0]), failed: Number(out[1]), skipped: Number(out[2]) };
}

/** A short text report of a summary (bun run replay prints it before the table). */
export function formatSummary(s: TraceSummary): string {
  const mib = (b: number) => `${(b / 1048576).toFixed(2)} MiB`;
  const top = [...s.sizeHistogram].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([bound, c]) => `≤${bound} B: ${c}`).join(", ");
  return [
    `trace ${s.path}: ${s.events} events in ${s.fileBytes} bytes (${s.bytesPerEvent.toFixed(2)} bytes/event, uncompressed), ${s.threads} thread${s.threads === 1 ? "" : "s"}, ${s.durationMs} ms recorded`,
    `  malloc ${s.counts.malloc}, calloc ${s.counts.calloc}, realloc ${s.counts.realloc}, aligned ${s.counts.aligned}, free ${s.counts.free}, usable_size ${s.counts.usable_size}, unknown frees ${s.counts.free_unknown}`,
    `  peak live ${mib(s.peakLiveBytes)} requested; cross-thread frees ${s.crossThreadFrees} (${(s.crossThreadShare * 100).toFixed(1)}%); commonest sizes ${top}`,
  ].join("\n");
}
