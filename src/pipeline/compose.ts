// The shape every proxy stack is built from (see design.md): a stack is composed once
// per listener, then only run per connection (or, with L7, per request).

export type Handler<Req, Res> = (req: Req) => Promise<Res>;
export type Layer<Req, Res> = (next: Handler<Req, Res>) => Handler<Req, Res>;

/** layers[0] is outermost: it sees the request first and the result last. */
export function compose<Req, Res>(layers: ReadonlyArray<Layer<Req, Res>>, terminal: Handler<Req, Res>): Handler<Req, Res> {
  return layers.reduceRight<Handler<Req, Res>>((next, layer) => layer(next), terminal);
}
