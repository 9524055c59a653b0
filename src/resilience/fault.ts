import { BufferedBody } from '../pipeline/body.ts';
import type { Layer } from '../pipeline/compose.ts';
import type { ProxyRequest, ProxyResponse } from '../pipeline/exchange.ts';
import { sleep, type Clock } from './clock.ts';
import type { FaultPolicy } from './policy.ts';
import type { Target } from './targets.ts';

// Fault injection for chaos testing (off unless a policy sets `fault`): a delay before
// the request goes on (flag DI), or an answer made here instead of the upstream's
// (flag FI, `meshlet-error: fault_abort`), each for a percentage of requests.

const CAUSE = 'fault_abort';

function abortResponse(abort: NonNullable<FaultPolicy['abort']>, grpc: boolean): ProxyResponse {
  if (grpc) {
    return { status: 200, headers: ['content-type', 'application/grpc', 'grpc-status', String(abort.grpcStatus), 'grpc-message', 'fault%20injected', 'meshlet-error', CAUSE], body: undefined, flag: 'FI' };
  }
  const text = `${CAUSE}: injected by the resilience fault policy\n`;
  return {
    status: abort.status,
    headers: ['content-type', 'text/plain; charset=utf-8', 'content-length', String(Buffer.byteLength(text)), 'meshlet-error', CAUSE],
    body: new BufferedBody([Buffer.from(text)]),
    flag: 'FI',
  };
}

export function faultLayer(target: Target, clock: Clock): Layer<ProxyRequest, ProxyResponse> {
  const fault = target.policy.fault;
  if (fault === undefined) return (next) => next;
  const { delay, abort } = fault;
  const events = target.events;
  return (next) => async (req) => {
    let delayed = false;
    if (delay !== undefined && clock.random() * 100 < delay.percent) {
      events.fault('delay');
      delayed = true;
      await sleep(clock, delay.ms, req.abort);
    }
    if (abort !== undefined && clock.random() * 100 < abort.percent) {
      events.fault('abort');
      return abortResponse(abort, req.grpc);
    }
    const res = await next(req);
    return delayed && res.flag === '-' ? { ...res, flag: 'DI' } : res;
  };
}
