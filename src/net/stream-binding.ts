// node's stream binding, for the modules that read and write sockets' handles past
// node:net's streams (direct-write.ts, read-into.ts): its shared state array, where the
// handle reports a read's size and whether a write completed at once, the write request
// class, and the TCP handle class. Undefined where the runtime does not have them as
// expected; those modules then leave sockets to node:net.

export interface StreamBinding {
  readonly WriteWrap: new () => object;
  readonly state: Int32Array;
  readonly readBytesOrError: number;
  readonly lastWriteWasAsync: number;
  readonly TCP: abstract new (...args: never[]) => unknown;
}

export const streamBinding: StreamBinding | undefined = load();

function load(): StreamBinding | undefined {
  try {
    const legacy = process as unknown as { binding(name: string): Record<string, unknown> };
    const { WriteWrap, streamBaseState, kReadBytesOrError, kLastWriteWasAsync } = legacy.binding('stream_wrap');
    const { TCP } = legacy.binding('tcp_wrap');
    if (typeof WriteWrap !== 'function' || !(streamBaseState instanceof Int32Array) || typeof kReadBytesOrError !== 'number' || typeof kLastWriteWasAsync !== 'number' || typeof TCP !== 'function') return undefined;
    return { WriteWrap: WriteWrap as StreamBinding['WriteWrap'], state: streamBaseState, readBytesOrError: kReadBytesOrError, lastWriteWasAsync: kLastWriteWasAsync, TCP: TCP as StreamBinding['TCP'] };
  } catch {
    return undefined;
  }
}
