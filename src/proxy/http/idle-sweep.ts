/**
 * An unref'd interval that closes connections idle longer than `idleTimeoutMs`, at a
 * quarter of it (between 250 ms and 5 s): one timer for a whole pool or server instead of
 * a socket timeout, which Node re-arms on every read and write of every connection.
 */
export function idleSweep(idleTimeoutMs: number, sweep: () => void): NodeJS.Timeout {
  return setInterval(sweep, Math.max(250, Math.min(5000, idleTimeoutMs / 4))).unref();
}
