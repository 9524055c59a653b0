// `npm test`: runs tap (arguments pass through) and ends with one line,
// "N passed, N failed[, N skipped]", counted over all assertions.
import { spawn } from 'node:child_process';

const child = spawn('tap', process.argv.slice(2), { stdio: ['inherit', 'pipe', 'inherit'] });
let tail = '';
child.stdout.on('data', (chunk: Buffer) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-4096);
});
child.on('close', (code, signal) => {
  const summary = [...tail.matchAll(/# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, skip: (\d+))?(?:, todo: (\d+))?/g)].at(-1);
  if (!summary) {
    process.stdout.write(`0 passed, 1 failed (tap ended with ${code ?? signal} and no summary)\n`);
    process.exit(1);
  }
  const [, , pass = '0', fail = '0', skip = '0'] = summary;
  const failed = Number(fail) + (code !== 0 && fail === '0' ? 1 : 0);
  process.stdout.write(`${pass} passed, ${failed} failed${skip !== '0' ? `, ${skip} skipped` : ''}\n`);
  process.exit(code ?? 1);
});
