import { getSystemErrorName } from 'node:util';

/** The error node:net destroys a socket with when a read or write fails (code, errno, syscall), so callers decide on the code alike. */
export function errnoError(errno: number, syscall: 'read' | 'write'): NodeJS.ErrnoException {
  const code = getSystemErrorName(errno);
  return Object.assign(new Error(`${syscall} ${code}`), { errno, code, syscall });
}
