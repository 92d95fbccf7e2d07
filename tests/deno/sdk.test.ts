// The SDK on a real supabase-js client: functions.invoke('agents') against the
// local stack, on Deno from source and on Node from its bundle.
import assert from "node:assert/strict";
import { join } from "node:path";
import { createClient } from "@supabase/supabase-js";
import { createOrchestrator, OrchestratorError } from "../../sdk/mod.ts";
import { createUser, db, stack, stackTest } from "./helpers.ts";
import { agentKey, inAnHour } from "./agents_helpers.ts";

// The local gateway checks no API key; supabase-js still wants one.
const supabase = (url = stack.apiUrl) =>
  createClient(url, "local-anon-key", {
    auth: {
      persistSession: false,
      autoRefreshToken: false,
      detectSessionInUrl: false,
    },
  });

stackTest(
  "sdk: one typed method per tool, through supabase-js functions.invoke",
  async () => {
    const user = await createUser(db());
    const { key } = await agentKey();
    const orchestrator = createOrchestrator({
      supabase: supabase(),
      agentKey: key,
    });

    const queued = await orchestrator.queueMessage({
      user_id: user.id,
      text: "From the SDK",
    });
    assert.equal(queued.error, null);
    assert.equal(queued.data?.status, "queued");
    const status = await orchestrator.getMessageStatus({
      message_id: queued.data!.message_id,
    });
    assert.equal(status.data?.status, "queued");

    const call = await orchestrator.scheduleCall({
      user_id: user.id,
      call_type: "check_in",
      scheduled_for: inAnHour(),
    });
    assert.equal(call.data?.status, "pending");
    const cancelled = await orchestrator.cancelScheduledCall({
      call_id: call.data!.call_id,
      scope: "series",
      reason: "changed plans",
    });
    assert.equal(cancelled.data?.cancelled, true);

    const recorded = await orchestrator.recordInteraction({
      user_id: user.id,
      channel: "sms",
      transcript: "Remind me about the piano lesson",
    });
    assert.ok(recorded.data?.interaction_id);
    const found = await orchestrator.searchInteractions({
      user_id: user.id,
      query: "piano",
    });
    assert.equal(
      found.data?.results[0].interaction_id,
      recorded.data!.interaction_id,
    );
    const remembered = await orchestrator.remember({
      user_id: user.id,
      items: [{ key: "instrument", value: "piano", category: "fact" }],
    });
    assert.deepEqual(remembered.data?.added, ["instrument"]);
    const prefs = await orchestrator.setContactPreferences({
      user_id: user.id,
      quiet_hours_start: "23:00",
      quiet_hours_end: "07:00",
    });
    assert.equal(prefs.data?.quiet_hours_end, "07:00");
    const ctx = await orchestrator.getUserContext({ user_id: user.id });
    assert.equal(ctx.data?.memory[0].key, "instrument");
    assert.equal(ctx.data?.queued_messages.length, 1);
  },
);

stackTest(
  "sdk: API errors are { data: null, error }, never a throw",
  async () => {
    const user = await createUser(db());
    const { key } = await agentKey({ requestsPerMinute: 2 });
    const orchestrator = createOrchestrator({
      supabase: supabase(),
      agentKey: key,
    });

    const bad = await orchestrator.scheduleCall({
      user_id: user.id,
      call_type: "Not A Slug",
      scheduled_for: inAnHour(),
    });
    assert.equal(bad.data, null);
    assert.ok(bad.error instanceof OrchestratorError);
    assert.equal(bad.error.code, "invalid_input");
    assert.equal(bad.error.field, "call_type");
    assert.equal(bad.error.status, 400);

    const missing = await orchestrator.getMessageStatus({
      message_id: crypto.randomUUID(),
    });
    assert.equal(missing.error?.code, "not_found");
    assert.equal(missing.error?.field, "message_id");

    const limited = await orchestrator.getUserContext({ user_id: user.id });
    assert.equal(limited.error?.code, "rate_limited");
    assert.ok((limited.error?.retryAfterSeconds ?? 0) >= 1);

    const wrongKey = createOrchestrator({
      supabase: supabase(),
      agentKey: "oak_" + "1".repeat(64),
    });
    const denied = await wrongKey.getUserContext({ user_id: user.id });
    assert.equal(denied.error?.code, "unauthorized");
    assert.equal(denied.error?.status, 401);

    // Nothing listens on port 9 of the loopback: a network failure, not a throw.
    const offline = createOrchestrator({
      supabase: supabase("http://127.0.0.1:9"),
      agentKey: key,
    });
    const unreachable = await offline.getUserContext({ user_id: user.id });
    assert.equal(unreachable.error?.code, "network");
    assert.equal(unreachable.error?.status, 0);
  },
);

stackTest("sdk: the Node bundle works with supabase-js on Node", async () => {
  const root = new URL("../../", import.meta.url).pathname;
  // Inside the repository (git-ignored), so Node finds @supabase/supabase-js in node_modules.
  const dir = join(root, ".local", `sdk-node-${crypto.randomUUID()}`);
  await Deno.mkdir(dir, { recursive: true });
  try {
    const bundle = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        "--platform",
        "browser",
        "-o",
        join(dir, "mod.js"),
        "sdk/mod.ts",
      ],
      cwd: root,
    }).output();
    assert.equal(bundle.code, 0, new TextDecoder().decode(bundle.stderr));
    await Deno.writeTextFile(
      join(dir, "run.mjs"),
      `import { createClient } from "@supabase/supabase-js";
import { createOrchestrator } from "./mod.js";
const supabase = createClient(process.env.API_URL, "local-anon-key",
  { auth: { persistSession: false, autoRefreshToken: false } });
const orchestrator = createOrchestrator({ supabase, agentKey: process.env.AGENT_KEY });
const ok = await orchestrator.queueMessage({ user_id: process.env.USER_ID, text: "From Node" });
const bad = await orchestrator.queueMessage({ user_id: process.env.USER_ID });
console.log(JSON.stringify({ ok, bad: { code: bad.error.code, field: bad.error.field } }));
`,
    );
    const user = await createUser(db());
    const { key } = await agentKey();
    const node = await new Deno.Command("node", {
      // supabase-js needs a WebSocket, which Node 20 has behind this flag (22+ by default).
      args: ["--experimental-websocket", join(dir, "run.mjs")],
      env: { API_URL: stack.apiUrl, AGENT_KEY: key, USER_ID: user.id },
    }).output();
    assert.equal(node.code, 0, new TextDecoder().decode(node.stderr));
    const out = JSON.parse(new TextDecoder().decode(node.stdout));
    assert.equal(out.ok.error, null);
    assert.equal(out.ok.data.status, "queued");
    assert.deepEqual(out.bad, { code: "invalid_input", field: "text" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
