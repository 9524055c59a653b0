// Writes a benchmark run to bench/results/: <timestamp>.json and <timestamp>.md, and
// the same as latest.json / latest.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MachineInfo } from './lib/machine.ts';
import type { BenchOptions, ScenarioResult, Table } from './scenario.ts';

export const RESULTS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');

export interface BenchReport {
  schema: 1;
  startedAt: string;
  finishedAt: string;
  durationS: number;
  command: string;
  options: BenchOptions;
  machine: MachineInfo;
  /** Share of all cores busy in the second before and after the scenarios (other work on the machine skews every figure). */
  background: {
    busyBefore: number;
    busyAfter: number;
    /** With --wait-quiet: the waits before each round of runs. */
    rounds?: { count: number; waitedS: number; notQuiet: number; quietThreshold: number; maxWaitS: number; maxTotalWaitS: number };
  };
  scenarios: ScenarioResult[];
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function renderTable(table: Table): string {
  const lines: string[] = [];
  if (table.title) lines.push(`**${table.title}**`, '');
  lines.push(`| ${table.headers.map(escapeCell).join(' | ')} |`);
  lines.push(`| ${table.headers.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`);
  for (const row of table.rows) lines.push(`| ${row.map(escapeCell).join(' | ')} |`);
  return lines.join('\n');
}

export function renderMarkdown(report: BenchReport): string {
  const m = report.machine;
  const o = report.options;
  const out: string[] = [];
  out.push(`# meshlet benchmark — ${report.startedAt}`, '');
  out.push(
    `- Machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB; ${m.os}; kernel ${m.kernel}; node ${m.node}; ${m.iptables}`,
    `- Code: ${m.git ? `${m.git.commit.slice(0, 12)}${m.git.dirty ? ' (with uncommitted changes)' : ''}` : 'unknown'}`,
    `- Command: \`${report.command}\`${o.quick ? ' (quick: smoke check, not a result)' : ''}`,
    `- Runs per mode: ${o.runs} (median reported, modes interleaved); bulk ${o.sizeBytes / 1e6} MB; ` +
      `${o.pings} × ${o.msgBytes}-byte exchanges per latency run; ${o.conns} new connections (${o.concurrency} at a time, at most ${o.connSeconds} s) per connection-rate run; ` +
      `IPv${o.family}; rules by \`meshlet init\``,
    `- Machine busy before / after the run (other work skews the figures): ${Math.round(report.background.busyBefore * 100)} % / ${Math.round(report.background.busyAfter * 100)} %` +
      (report.background.rounds
        ? `; before each of ${report.background.rounds.count} rounds it waited for the machine to be under ${Math.round(report.background.rounds.quietThreshold * 100)} % busy ` +
          `(${report.background.rounds.waitedS.toFixed(0)} s in all; ${report.background.rounds.notQuiet} round(s) started without it, ` +
          `after ${report.background.rounds.maxWaitS} s or once ${report.background.rounds.maxTotalWaitS} s of waiting were used up)`
        : ''),
    `- Took ${report.durationS.toFixed(0)} s`,
    '',
  );
  for (const s of report.scenarios) {
    out.push(`## ${s.title}`, '');
    for (const t of s.tables) out.push(renderTable(t), '');
    if (s.notes.length > 0) out.push(...s.notes.map((n) => `- ${n}`), '');
  }
  return out.join('\n');
}

/**
 * Writes the JSON and markdown; returns the paths written. A quick run is a smoke check,
 * not a result: it is written with a -quick suffix and leaves latest.* alone.
 */
export function writeReport(report: BenchReport, dir = RESULTS_DIR): { json: string; md: string } {
  mkdirSync(dir, { recursive: true });
  // A quick run or a run of some modes only is not the reference: never latest.*.
  const partial = report.options.l7Modes !== undefined;
  const stamp = report.startedAt.replace(/[:]/g, '-').replace(/\.\d+Z$/, 'Z') + (report.options.quick ? '-quick' : '') + (partial ? '-partial' : '');
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const md = renderMarkdown(report);
  const files = { json: path.join(dir, `${stamp}.json`), md: path.join(dir, `${stamp}.md`) };
  writeFileSync(files.json, json);
  writeFileSync(files.md, md);
  if (!report.options.quick && !partial) {
    writeFileSync(path.join(dir, 'latest.json'), json);
    writeFileSync(path.join(dir, 'latest.md'), md);
  }
  return files;
}
