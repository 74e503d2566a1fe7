// progress.ts — the one-line progress display on stderr: what runs, n/total, elapsed.
// On a terminal the line is rewritten in place; otherwise a line is printed now and then.

export class Progress {
  private done = 0;
  private lastPrint = 0;
  private readonly start = performance.now();
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(private total: number) {}

  addToTotal(n: number): void {
    this.total += n;
  }

  step(what: string): void {
    this.done++;
    const now = performance.now();
    const line = `[${this.done}/${this.total} ${formatElapsed(now - this.start)}] ${what}`;
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${line.slice(0, (process.stderr.columns ?? 100) - 1)}`);
    } else if (now - this.lastPrint > 5000 || this.done === 1) {
      process.stderr.write(`${line}\n`);
      this.lastPrint = now;
    }
  }

  clear(): void {
    if (this.tty) process.stderr.write("\r\x1b[2K");
  }

  elapsedMs(): number {
    return performance.now() - this.start;
  }
}

export function formatElapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
