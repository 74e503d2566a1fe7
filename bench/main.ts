// main.ts — `bun run bench`: hakmem side by side with glibc, mimalloc, jemalloc and
// tcmalloc. Rebuilds libhakmem.so when its sources changed, compiles the C workloads,
// runs the FFI microbenchmarks, the workload programs (each preloaded with every
// allocator, interleaved, proven) and redis when installed, then prints a table per
// section and a summary and writes JSON (every sample), an SVG chart and a Markdown summary.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { type Allocator, discoverAllocators } from "./allocators.ts";
import { compileProgram, ensureLibrary, ROOT, snapshotLibrary } from "./build.ts";
import { allocatorInfo, busyWarning, gitInfo, hakmemIdentity, machineInfo } from "./machine.ts";
import { instructionsCount, runInstructions, valgrindAvailable } from "./instructions.ts";
import { microCount, runMicro } from "./micro.ts";
import { commandName, runCommandSection } from "./commands.ts";
import { cleanupPrograms, type PreparedPrograms, preparePrograms } from "./programs.ts";
import { HelpRequested, type Options, parseOptions, selected } from "./options.ts";
import { formatElapsed, Progress } from "./progress.ts";
import { redisAvailable, redisCount, runRedis } from "./redis.ts";
import { commandsMarkdown, sectionTable, summaryMarkdown, summaryRows, summaryText } from "./report.ts";
import type { Section } from "./results.ts";
import { runWorkload } from "./runner.ts";
import { memorySplitText, parseMemoryLines } from "./memory.ts";
import { runSafety, type SafetyReport, safetyCount, safetyMarkdown, safetySummary, safetyTable } from "./safety.ts";
import { CHECK_ALLOCATOR, CHECK_ENV, checkModeMarkdown, checkModeReport, checkModeSummary, checkModeTable } from "./check_mode.ts";
import { ratioChart } from "./svg.ts";
import { SECTION_TITLES, type Workload, WORKLOADS } from "./workloads.ts";

/** A path for messages: relative inside the repository, absolute outside. */
function shown(path: string): string {
  const rel = relative(ROOT, path);
  return rel && !rel.startsWith("..") ? rel : path;
}

function printSection(progress: Progress, section: Section, names: string[]): void {
  progress.clear();
  console.log(sectionTable(section, names));
}

async function runWorkloads(workloads: Workload[], allocators: Allocator[], opts: Options, progress: Progress,
  buildId: string | null, onSection: (s: Section) => void): Promise<Section[]> {
  const sections: Section[] = [];
  const binaries = new Map(workloads.map((w) => [w.program, compileProgram(w.program)]));
  for (const w of workloads) {
    let section = sections.find((s) => s.name === w.section);
    if (!section) {
      if (sections.length) onSection(sections[sections.length - 1]);
      section = { name: w.section, title: SECTION_TITLES[w.section] ?? w.section, unit: "ops/s", higherIsBetter: true, rows: [],
        metrics: [{ key: "faults_per_op", label: "page faults/op" }] };
      sections.push(section);
    }
    const cmd = [binaries.get(w.program)!, ...w.args(opts.scale).map(String)];
    const row = { name: w.row, command: [`bench/c/${w.program}`, ...cmd.slice(1)], samples: [] as Section["rows"][0]["samples"], errors: [] as Section["rows"][0]["errors"] };
    section.rows.push(row);
    // check mode's runs (single-thread rows): hakmem again with HAKMEM_CHECK=1, right after its
    // normal run, on the row's command or a shorter one (w.check: its share of the work)
    const checkCmd = w.check !== undefined ? [cmd[0], ...w.args(opts.scale * w.check).map(String)] : null;
    for (let run = 1; run <= opts.runs; run++) {
      for (const alloc of allocators) {
        const modes: [string, string[], Record<string, string>][] = [[alloc.name, cmd, {}]];
        if (alloc.name === "hakmem" && checkCmd) modes.push([CHECK_ALLOCATOR, checkCmd, CHECK_ENV]);
        for (const [name, argv, env] of modes) {
          progress.step(`${w.section} ${w.row} · ${name} · run ${run}/${opts.runs}`);
          const r = await runWorkload(argv, alloc, { hakmemBuildId: buildId, minAllocsPerOp: w.minAllocsPerOp }, env);
          if (!r.ok) { row.errors.push({ allocator: name, run, message: r.message ?? "failed" }); continue; }
          const f = r.fields!;
          const extra: Record<string, number | string> = { secs: Number(f.secs), ops: Number(f.ops) };
          if (f.final_rss_kb !== undefined) extra.final_rss_kb = Number(f.final_rss_kb);
          if (f.hakmem_allocs) extra.hakmem_allocs = Number(f.hakmem_allocs);
          const m = r.measured!;
          extra.faults = m.faults;
          extra.faults_per_op = m.faults / Math.max(1, Number(f.ops));
          extra.cpu_secs = Number(m.cpuSec.toFixed(4));
          extra.malloc_from = f.malloc_from;
          if (name === "hakmem" && r.stderr) Object.assign(extra, parseMemoryLines(r.stderr));
          row.samples.push({ allocator: name, run, value: Number(f.ops_per_sec), peakRssKb: r.peakRssKb ?? null, extra });
        }
      }
    }
  }
  if (sections.length) onSection(sections[sections.length - 1]);
  return sections;
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (e) {
    if (e instanceof HelpRequested) {
      console.log(e.message);
      return 0;
    }
    console.error((e as Error).message);
    return 2;
  }
  const started = new Date();
  const builtLib = ensureLibrary(opts.build);
  const hakmemLib = snapshotLibrary(builtLib);
  const hakmem = { ...hakmemIdentity(hakmemLib), built: builtLib };
  const found = discoverAllocators(hakmemLib, opts.allocators);
  const allocators = found.allocators;
  const names = allocators.map((a) => a.name);
  console.log(`hakmem ${hakmem.version ?? "?"} build ${hakmem.buildId ?? "?"} (${shown(builtLib)}, measured as ${shown(hakmemLib)})`);
  console.log(`allocators: ${allocators.map((a) => `${a.name}${a.preload ? ` (${a.preload})` : ""}`).join(", ")}`);
  if (found.missing.length) console.log(`missing peers: ${found.missing.join(", ")} — install with: ${found.installHint}`);
  console.log(`runs: ${opts.runs} per allocator and row, interleaved; ${opts.runs > 1 ? "medians reported" : "one run per row (no median)"}${opts.quick ? "; --quick" : ""}${opts.scale !== 1 ? `; scale ${opts.scale}` : ""}`);

  const busyAtStart = busyWarning();
  if (busyAtStart.warning) console.log(busyAtStart.warning);
  const workloads = WORKLOADS.filter((w) => selected(opts, w.section, w.row));
  const wantFfi = selected(opts, "micro_ffi micro");
  const wantKernel = selected(opts, "micro_kernel micro");
  const wantInstructions = selected(opts, "instructions") && valgrindAvailable();
  if (selected(opts, "instructions") && !wantInstructions) console.log("instructions: valgrind not installed — skipped (apt-get install valgrind)");
  const wantRedis = selected(opts, "redis") && redisAvailable() !== null;
  if (selected(opts, "redis") && !wantRedis) console.log("redis: redis-server/redis-benchmark not installed — skipped (apt-get install redis-server redis-tools)");
  const wantSafety = selected(opts, "safety");
  let programs: PreparedPrograms | null = null;
  if (selected(opts, "programs")) {
    programs = preparePrograms(opts.scale, (name) => selected(opts, "programs", name), 300_000);
    for (const s of programs.skipped) console.log(`programs: ${s}`);
  }
  const total = (wantSafety ? safetyCount(allocators.length) : 0)
    + (programs ? programs.rows.length * opts.runs * allocators.length : 0)
    + opts.commands.length * opts.runs * allocators.length
    + workloads.length * opts.runs * allocators.length
    + (names.includes("hakmem") ? workloads.filter((w) => w.check !== undefined).length * opts.runs : 0)
    + microCount(opts, allocators.length, { ffi: wantFfi, kernel: wantKernel })
    + (wantInstructions ? instructionsCount(allocators.length) : 0)
    + (wantRedis ? redisCount(opts, allocators.length) : 0);
  const progress = new Progress(total);
  const sections: Section[] = [];
  const show = (s: Section) => printSection(progress, s, names);

  if (opts.commands.length) {
    const rows = opts.commands.map((line) => ({ name: commandName(line), shell: line, timeoutMs: 600_000 }));
    const s = await runCommandSection({ name: "cmd", title: "your commands (--cmd), each preloaded with every allocator" }, rows, allocators,
      { runs: opts.runs, progress, hakmemBuildId: hakmem.buildId });
    sections.push(s);
    show(s);
  }
  if (wantFfi || wantKernel) {
    for (const s of await runMicro(allocators, hakmemLib, opts, progress, { ffi: wantFfi, kernel: wantKernel })) {
      sections.push(s);
      show(s);
    }
  }
  sections.push(...await runWorkloads(workloads, allocators, opts, progress, hakmem.buildId, show));
  const checkMode = checkModeReport(sections, (section, row) => workloads.find((w) => w.section === section && w.row === row)?.check ?? null);
  if (checkMode) {
    progress.clear();
    console.log(checkModeTable(checkMode));
  }
  if (wantInstructions) {
    const s = await runInstructions(allocators, opts, progress, hakmem.buildId);
    sections.push(s);
    show(s);
  }
  if (programs && programs.rows.length) {
    try {
      const s = await runCommandSection({
        name: "programs", title: "programs — real programs on generated inputs, each preloaded with every allocator",
        note: "inputs generated by the bench (deterministic); redis has its own section",
      }, programs.rows, allocators, { runs: opts.runs, progress, hakmemBuildId: hakmem.buildId });
      sections.push(s);
      show(s);
    } finally {
      cleanupPrograms(programs);
    }
  }
  if (wantRedis) {
    const s = await runRedis(allocators, opts, progress, hakmem.buildId);
    if (s) { sections.push(s); show(s); }
  }
  let safety: SafetyReport | null = null;
  if (wantSafety) {
    safety = await runSafety(allocators, progress, opts.quick ? 3000 : 5000);
    progress.clear();
    console.log(safetyTable(safety, names));
  }
  progress.clear();

  const rows = summaryRows(sections, names);
  const errorCount = sections.reduce((n, s) => n + s.rows.reduce((m, r) => m + r.errors.length, 0), 0);
  console.log(summaryText(rows, errorCount));
  if (checkMode) console.log(checkModeSummary(checkMode));
  console.log(memorySplitText(sections, rows));
  if (safety) console.log(safetySummary(safety, names));
  const machine = machineInfo();
  const git = gitInfo();
  const command = `bun bench/main.ts ${process.argv.slice(2).join(" ")}`.trim();
  const report = {
    schema: 1, date: started.toISOString(), durationSec: Math.round(progress.elapsedMs() / 1000), command,
    options: opts, machine: { ...machine, loadAverageAtStart: Number(busyAtStart.load.toFixed(2)) }, git, hakmem, allocators: allocatorInfo(allocators, hakmem),
    missingPeers: found.missing, sections, summary: rows, checkMode, safety,
  };
  const jsonPath = resolve(ROOT, opts.jsonPath);
  const base = jsonPath.replace(/\.json$/, "");
  mkdirSync(dirname(jsonPath), { recursive: true });
  writeFileSync(jsonPath, JSON.stringify(report, null, 1) + "\n");
  const subtitle = `${started.toISOString().slice(0, 16).replace("T", " ")} UTC · ${machine.cpu}, ${machine.cores} cores · ${command} · hakmem build ${hakmem.buildId ?? "?"}`;
  writeFileSync(`${base}.svg`, ratioChart(sections, names, subtitle));
  const safetyMd = safety ? `\n${safety.title}\n\n${safetyMarkdown(safety, names)}\n` : "";
  const checkMd = checkMode ? `\n${checkMode.title}\n\n${checkModeMarkdown(checkMode)}\n` : "";
  const commandsMd = sections.filter((s) => s.outputCheck).map((s) => `\n${s.title}\n\n${commandsMarkdown(s, names)}\n`).join("");
  // The Markdown is what `npm run bench:readme` puts in the README's performance section:
  // everything in it comes from this run (its date, the machine and its load, the command).
  const header = `${subtitle} · load average ${busyAtStart.load.toFixed(1)} at the start · ${formatElapsed(progress.elapsedMs())}`;
  const summaryMd = "```\n" + summaryText(rows, errorCount).trim() + "\n```\n";
  writeFileSync(`${base}.md`, `${header}\n\n${summaryMd}\n${summaryMarkdown(rows)}\n${checkMd}${commandsMd}${safetyMd}`);
  console.log(`\nwrote ${shown(jsonPath)}, ${shown(base)}.svg, ${shown(base)}.md · ${formatElapsed(progress.elapsedMs())}`);
  const differing = differingCommandRuns(sections);
  if (differing > 0) console.error(`bench: ${differing} run(s) of your --cmd printed another stdout than glibc's (the reference): see "stdout = reference" above`);
  return errorCount > 0 || differing > 0 ? 1 : 0;
}

/** Runs of --cmd commands whose stdout differed from the reference run's. */
function differingCommandRuns(sections: Section[]): number {
  const cmd = sections.find((s) => s.name === "cmd");
  return cmd ? cmd.rows.reduce((n, r) => n + r.samples.filter((x) => x.mismatch).length, 0) : 0;
}

process.exitCode = await main().catch((e) => {
  console.error(`bench: ${(e as Error).message}`);
  return 2;
});
