// V8 sizes its young generation at start-up only: a flag set later (v8.setFlagsFromString)
// changes nothing. Left to grow, each of its two semi-spaces reaches 16 MiB and more under
// load, memory a sidecar holds in every pod. The proxy's per-request objects die young,
// so a small young generation costs only more frequent, short scavenges: measured through
// a sidecar pair in pods after 180 000 requests, RSS 143 MiB by default, 121 MiB with
// 2 MiB semi-spaces (96 MiB from the compiled build), with no CPU cost per HTTP/1.1
// request that could be told from noise; HTTP/2 loses about 15 % of its rate
// (docs/performance.md). `meshlet proxy` therefore starts over, in the same process (execve keeps the
// PID, the environment and the open descriptors), with the flag set, unless the user set
// it already.

const FLAG = '--max-semi-space-size';
const SEMI_SPACE_MB = 2;

export function restartWithProxyHeap(): void {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((arg) => arg.startsWith(FLAG));
  if (given || typeof process.execve !== 'function') return;
  process.execve(process.execPath, [process.execPath, ...process.execArgv, `${FLAG}=${SEMI_SPACE_MB}`, ...process.argv.slice(1)], process.env);
}
