// profile.ts — reads the heap profiles hakmem writes (HAKMEM_PROFILE=path, hak_profile_dump:
// pprof's profile.proto, zig/base/pprof.zig), names their frames, and draws them.
//
//   bun run profile -- FILE [--value inuse_space|inuse_objects|alloc_space|alloc_objects]
//                          [--top N] [--svg OUT.svg]
//
// prints a top-N table of call sites (the first frame outside the allocator: who called
// malloc) by the chosen value, and writes a flame graph SVG (default FILE.svg). Symbols come
// from addr2line (binutils) on each mapping's file, with the mapping's start and file
// offset from the profile (for an ET_DYN object the ELF address is the file offset).
import { spawnSync } from "node:child_process";
import { closeSync, openSync, readFileSync, readSync, writeFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";

export interface Mapping { id: number; start: number; limit: number; offset: number; file: string }
export interface Location { id: number; mappingId: number; address: number }
export interface Sample { locationIds: number[]; values: number[] }
export interface Profile {
  sampleTypes: { type: string; unit: string }[];
  samples: Sample[];
  mappings: Map<number, Mapping>;
  locations: Map<number, Location>;
  periodBytes: number;
}

// ---- protobuf decoding (varints, length-delimited fields; all this file needs)

class Reader {
  pos = 0;
  constructor(readonly buf: Uint8Array, readonly end = buf.length) {}
  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 128;
    }
    throw new Error("profile: malformed varint");
  }
  bytes(): Uint8Array {
    const len = this.varint();
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 2) this.bytes();
    else if (wire === 1) this.pos += 8;
    else if (wire === 5) this.pos += 4;
    else throw new Error(`profile: wire type ${wire}`);
  }
  /** Calls `field(number, wire)` for each field; the callback reads or skips it. */
  fields(field: (n: number, wire: number) => void): void {
    while (this.pos < this.end) {
      const key = this.varint();
      field(Math.floor(key / 8), key & 7);
    }
  }
}

function packed(r: Reader, wire: number): number[] {
  if (wire === 0) return [r.varint()];
  const sub = new Reader(r.bytes());
  const out: number[] = [];
  while (sub.pos < sub.end) out.push(sub.varint());
  return out;
}

function message(bytes: Uint8Array, field: (r: Reader, n: number, wire: number) => void): void {
  const r = new Reader(bytes);
  r.fields((n, wire) => field(r, n, wire));
}

/** Decodes a pprof profile (gzipped or not). */
export function parseProfile(data: Uint8Array): Profile {
  const buf = data[0] === 0x1f && data[1] === 0x8b ? new Uint8Array(gunzipSync(data)) : data;
  const strings: string[] = [];
  const rawTypes: [number, number][] = [];
  const samples: Sample[] = [];
  const mappings = new Map<number, Mapping>();
  const rawMappings: (Omit<Mapping, "file"> & { fileIndex: number })[] = [];
  const locations = new Map<number, Location>();
  let periodBytes = 0;
  const decoder = new TextDecoder();
  message(buf, (r, n, wire) => {
    if (n === 6) strings.push(decoder.decode(r.bytes()));
    else if (n === 1) {
      const vt: [number, number] = [0, 0];
      message(r.bytes(), (m, f, w) => (f === 1 || f === 2 ? (vt[f - 1] = m.varint()) : m.skip(w)));
      rawTypes.push(vt);
    } else if (n === 2) {
      const s: Sample = { locationIds: [], values: [] };
      message(r.bytes(), (m, f, w) => {
        if (f === 1) s.locationIds.push(...packed(m, w));
        else if (f === 2) s.values.push(...packed(m, w));
        else m.skip(w);
      });
      samples.push(s);
    } else if (n === 3) {
      const mp = { id: 0, start: 0, limit: 0, offset: 0, fileIndex: 0 };
      message(r.bytes(), (m, f, w) => {
        if (f === 1) mp.id = m.varint();
        else if (f === 2) mp.start = m.varint();
        else if (f === 3) mp.limit = m.varint();
        else if (f === 4) mp.offset = m.varint();
        else if (f === 5) mp.fileIndex = m.varint();
        else m.skip(w);
      });
      rawMappings.push(mp);
    } else if (n === 4) {
      const loc: Location = { id: 0, mappingId: 0, address: 0 };
      message(r.bytes(), (m, f, w) => {
        if (f === 1) loc.id = m.varint();
        else if (f === 2) loc.mappingId = m.varint();
        else if (f === 3) loc.address = m.varint();
        else m.skip(w);
      });
      locations.set(loc.id, loc);
    } else if (n === 12) periodBytes = r.varint();
    else r.skip(wire);
  });
  for (const m of rawMappings) mappings.set(m.id, { id: m.id, start: m.start, limit: m.limit, offset: m.offset, file: strings[m.fileIndex] ?? "?" });
  const sampleTypes = rawTypes.map(([t, u]) => ({ type: strings[t] ?? "?", unit: strings[u] ?? "?" }));
  return { sampleTypes, samples, mappings, locations, periodBytes };
}

// ---- symbols

export interface Frame { name: string; where: string }

function elfIsExecutable(file: string): boolean {
  try {
    const fd = openSync(file, "r");
    const head = new Uint8Array(18);
    readSync(fd, head, 0, 18, 0);
    closeSync(fd);
    return head[16] === 2; // ET_EXEC: addresses are absolute
  } catch {
    return false;
  }
}

/** Names every location with addr2line, one run per mapped file. */
export function symbolize(p: Profile): Map<number, Frame> {
  const out = new Map<number, Frame>();
  const byFile = new Map<string, { ids: number[]; addrs: string[] }>();
  for (const loc of p.locations.values()) {
    const m = p.mappings.get(loc.mappingId);
    if (!m || loc.address === 0) {
      out.set(loc.id, { name: loc.address === 0 ? "(no stack)" : `0x${loc.address.toString(16)}`, where: "" });
      continue;
    }
    const elfAddress = elfIsExecutable(m.file) ? loc.address : loc.address - m.start + m.offset;
    const entry = byFile.get(m.file) ?? { ids: [], addrs: [] };
    entry.ids.push(loc.id);
    entry.addrs.push(`0x${elfAddress.toString(16)}`);
    byFile.set(m.file, entry);
  }
  for (const [file, { ids, addrs }] of byFile) {
    const base = file.split("/").pop() ?? file;
    const r = spawnSync("addr2line", ["-f", "-C", "-e", file, ...addrs], { encoding: "utf8", maxBuffer: 64 << 20 });
    const lines = r.status === 0 ? r.stdout.split("\n") : [];
    ids.forEach((id, i) => {
      const fn = lines[2 * i];
      const where = lines[2 * i + 1];
      const known = fn !== undefined && fn !== "??";
      out.set(id, { name: known ? fn! : `${base}+${addrs[i]}`, where: where && !where.startsWith("??") ? where.replace(/ \(discriminator \d+\)/, "") : base });
    });
  }
  return out;
}

// ---- views: the top table and the flame graph

export const VALUE_NAMES = ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space"] as const;
export type ValueName = (typeof VALUE_NAMES)[number];

function valueIndex(p: Profile, value: ValueName): number {
  const i = p.sampleTypes.findIndex((t) => t.type === value);
  if (i < 0) throw new Error(`profile: no ${value} in ${p.sampleTypes.map((t) => t.type).join(", ")}`);
  return i;
}

export interface Site { name: string; where: string; value: number; share: number; allocBytes: number }

/** Call sites (a stack's first frame: the caller of malloc), by `value`, largest first. */
export function topSites(p: Profile, frames: Map<number, Frame>, value: ValueName = "inuse_space"): Site[] {
  const vi = valueIndex(p, value);
  const ai = valueIndex(p, "alloc_space");
  const sites = new Map<string, Site>();
  let total = 0;
  for (const s of p.samples) {
    const f = frames.get(s.locationIds[0] ?? -1) ?? { name: "(no stack)", where: "" };
    const key = `${f.name}\u0000${f.where}`;
    const site = sites.get(key) ?? { name: f.name, where: f.where, value: 0, share: 0, allocBytes: 0 };
    site.value += s.values[vi] ?? 0;
    site.allocBytes += s.values[ai] ?? 0;
    total += s.values[vi] ?? 0;
    sites.set(key, site);
  }
  const list = [...sites.values()].sort((a, b) => b.value - a.value);
  for (const s of list) s.share = total > 0 ? s.value / total : 0;
  return list;
}

/** The total of one value over every sample (inuse_space: the estimated live bytes). */
export function total(p: Profile, value: ValueName): number {
  const vi = valueIndex(p, value);
  return p.samples.reduce((sum, s) => sum + (s.values[vi] ?? 0), 0);
}

function mib(n: number): string {
  return n >= 1 << 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
}

export function formatTop(sites: Site[], n: number, value: ValueName): string {
  const bytes = value.endsWith("space");
  const lines = [`${"#".padStart(3)} ${value.padStart(12)} ${"share".padStart(7)} ${"allocated".padStart(12)}  call site`];
  sites.slice(0, n).forEach((s, i) => {
    const v = bytes ? mib(s.value) : String(s.value);
    lines.push(`${String(i + 1).padStart(3)} ${v.padStart(12)} ${`${(100 * s.share).toFixed(1)}%`.padStart(7)} ${mib(s.allocBytes).padStart(12)}  ${s.name}  ${s.where}`);
  });
  return lines.join("\n");
}

interface Node { name: string; value: number; children: Map<string, Node> }

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** A flame graph (root at the bottom: the outermost frame; the top: the caller of malloc). */
export function flameGraph(p: Profile, frames: Map<number, Frame>, value: ValueName = "inuse_space", title = "hakmem heap profile"): string {
  const vi = valueIndex(p, value);
  const root: Node = { name: "all", value: 0, children: new Map() };
  for (const s of p.samples) {
    const v = s.values[vi] ?? 0;
    if (v <= 0) continue;
    root.value += v;
    let node = root;
    for (const id of [...s.locationIds].reverse()) {
      const name = frames.get(id)?.name ?? "?";
      let child = node.children.get(name);
      if (!child) node.children.set(name, (child = { name, value: 0, children: new Map() }));
      child.value += v;
      node = child;
    }
  }
  const width = 1200;
  const row = 18;
  let depth = 0;
  const measure = (n: Node, d: number): void => {
    depth = Math.max(depth, d);
    for (const c of n.children.values()) measure(c, d + 1);
  };
  measure(root, 1);
  const height = (depth + 3) * row;
  const rects: string[] = [];
  const bytes = value.endsWith("space");
  const draw = (n: Node, x: number, d: number): void => {
    const w = root.value > 0 ? (n.value / root.value) * (width - 20) : 0;
    if (w < 0.5) return;
    const y = height - (d + 1) * row;
    const hue = 20 + ((n.name.length * 37) % 40);
    const label = `${n.name} (${bytes ? mib(n.value) : n.value}, ${((100 * n.value) / Math.max(1, root.value)).toFixed(1)}%)`;
    const text = w > 40 ? `<text x="${(x + 3).toFixed(1)}" y="${y + 13}" font-size="11" font-family="monospace">${escapeXml(label.slice(0, Math.floor(w / 7)))}</text>` : "";
    rects.push(`<g><title>${escapeXml(label)}</title><rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${row - 1}" fill="hsl(${hue},85%,60%)" rx="2"/>${text}</g>`);
    let cx = x;
    for (const c of [...n.children.values()].sort((a, b) => b.value - a.value)) {
      draw(c, cx, d + 1);
      cx += root.value > 0 ? (c.value / root.value) * (width - 20) : 0;
    }
  };
  draw(root, 10, 0);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">
<rect width="100%" height="100%" fill="#fdfdf8"/>
<text x="10" y="16" font-size="14" font-family="sans-serif">${escapeXml(`${title}: ${value}, ${bytes ? mib(root.value) : root.value} in ${p.samples.length} stacks`)}</text>
${rects.join("\n")}
</svg>
`;
}

// ---- the command

function main(argv: string[]): number {
  const file = argv.find((a) => !a.startsWith("--") && !argv[argv.indexOf(a) - 1]?.startsWith("--"));
  const opt = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  if (!file) {
    console.error("usage: bun run profile -- FILE [--value inuse_space|inuse_objects|alloc_space|alloc_objects] [--top N] [--svg OUT.svg]");
    return 2;
  }
  const value = (opt("value") ?? "inuse_space") as ValueName;
  if (!VALUE_NAMES.includes(value)) {
    console.error(`profile: --value must be one of ${VALUE_NAMES.join(", ")}`);
    return 2;
  }
  const p = parseProfile(new Uint8Array(readFileSync(file)));
  const frames = symbolize(p);
  const top = Number(opt("top") ?? 10);
  console.log(`${file}: ${p.samples.length} stacks, one sample per ${mib(p.periodBytes)} on average; live ${mib(total(p, "inuse_space"))}, allocated ${mib(total(p, "alloc_space"))} (estimates)`);
  console.log(formatTop(topSites(p, frames, value), top, value));
  const svg = opt("svg") ?? `${file}.svg`;
  writeFileSync(svg, flameGraph(p, frames, value, file.split("/").pop()));
  console.log(`flame graph: ${svg}`);
  return 0;
}

if (import.meta.main) process.exit(main(process.argv.slice(2)));
