// The local stand-in for the voice system, used by `npm start` when
// VOICE_DISPATCH_URL is not set: it accepts dispatched calls (checking the
// shared secret, as the real one must) and lists them at GET /__voice/calls.
import { timingSafeEqual } from "../../shared/secrets.ts";

export interface VoiceCatcher {
  url: string;
  secret: string;
  stop(): Promise<void>;
}

export function startVoiceCatcher(opts: { port: number; secret: string }): VoiceCatcher {
  const calls: { receivedAt: string; idempotencyKey: string | null; body: unknown }[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: opts.port, onListen: () => {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      if (req.method === "GET" && path === "/__voice/calls") return Response.json(calls);
      if (req.method !== "POST" || path !== "/calls") {
        return Response.json({ error: "not_found" }, { status: 404 });
      }
      const auth = req.headers.get("authorization") ?? "";
      if (!timingSafeEqual(auth, `Bearer ${opts.secret}`)) {
        return Response.json({ error: "unauthorized" }, { status: 401 });
      }
      const body = await req.json().catch(() => null);
      calls.push({
        receivedAt: new Date().toISOString(),
        idempotencyKey: req.headers.get("idempotency-key"),
        body,
      });
      return Response.json({ accepted: true }, { status: 202 });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    secret: opts.secret,
    stop: () => server.shutdown(),
  };
}
