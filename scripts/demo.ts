// npm run demo: the whole path on a throw-away stack, step by step. A voice
// call's transcript is stored; the webhook fires; the model acts through its
// tools; process-queue delivers the queued SMS to the local catcher at an
// allowed local time, and defers the same text for a user in quiet hours.
// Uses Claude when ANTHROPIC_API_KEY is set, the scripted model otherwise.
// Never real Twilio: a demo must not text anyone.
import { DEV_SECRET, FUNCTION_ENV_KEYS, loadLocalEnv, pick } from "./local/env.ts";
import { repoRoot, startThrowawayStack } from "./local/stack.ts";
import { maskPhone } from "../shared/log.ts";
import { localParts, zonedToInstant } from "../shared/time/zoned.ts";

const root = repoRoot();
const env = await loadLocalEnv(root);
const realClaude = Boolean(env.ANTHROPIC_API_KEY);
const say = (line = "") => console.log(line);
const pad = (n: number) => String(n).padStart(2, "0");
const localTime = (at: Date, tz: string) => {
  const p = localParts(at, tz);
  return `${p.year}-${pad(p.month)}-${pad(p.day)} ${pad(p.hour)}:${pad(p.minute)}`;
};

/** A zone where it is now between `from` and `to` o'clock, local time. */
function zoneAt(from: number, to: number): string {
  const zones = [
    "Pacific/Honolulu",
    "America/Los_Angeles",
    "America/New_York",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Chisinau",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
  ];
  return zones.find((tz) => {
    const h = localParts(new Date(), tz).hour;
    return h >= from && h < to;
  }) ?? "UTC";
}

const stack = await startThrowawayStack({
  name: "demo",
  secret: env.ORCHESTRATOR_SECRET || DEV_SECRET,
  // Claude when a key is set; never Twilio: the catcher stands in.
  functionEnv: realClaude
    ? pick(env, FUNCTION_ENV_KEYS.filter((k) => !k.startsWith("TWILIO")))
    : undefined,
  fakes: { smsCatcherPort: 0, scriptedClaudePort: realClaude ? undefined : 0 },
  log: () => {},
});
const sql = stack.sql;

try {
  say(`Agent orchestrator demo, on a throw-away local stack.`);
  say(
    realClaude
      ? "Model: Claude (ANTHROPIC_API_KEY is set)."
      : "Model: the local SCRIPTED model, not Claude; set ANTHROPIC_API_KEY to use Claude.",
  );
  say();

  const tz = zoneAt(10, 19);
  const [user] = await sql<{ id: string; phone_number: string }[]>`
    insert into public.users (phone_number, timezone) values ('+12015550142', ${tz})
    returning id, phone_number`;
  say(
    `1. A user, ${maskPhone(user.phone_number)}, lives in ${tz}; it is ${
      localTime(new Date(), tz)
    } there. Quiet hours 22:00-08:00, 10 texts a day, 2 an hour.`,
  );

  const transcript = [
    "Assistant: Hi Sam, how did the week go?",
    "User: Stressful, honestly. I still haven't booked the dentist, I keep putting it off.",
    "Assistant: Would it help if I kept you on it?",
    "User: Yes. I'll call the clinic tomorrow morning. Check in with me tomorrow at 8:30 to make",
    "sure I did it, and text me a nudge today that they open at 9.",
    "User: Mornings are best for me, by the way. I'm useless after 9 pm.",
  ].join("\n");

  if (!realClaude) {
    const p = localParts(new Date(Date.now() + 86_400_000), tz);
    const tomorrow830 = zonedToInstant({ ...p, hour: 8, minute: 30, second: 0 }, tz).toISOString();
    await fetch(`${stack.fakes.scriptedClaudeUrl}/__scripted/script`, {
      method: "POST",
      body: JSON.stringify([
        {
          kind: "tool_use",
          match: "ANALYZE_INTERACTION",
          calls: [
            {
              name: "schedule_call",
              input: {
                call_type: "check_in",
                scheduled_for: tomorrow830,
                custom_instructions: "Ask whether Sam booked the dentist; encourage if not.",
              },
            },
            {
              name: "record_commitment",
              input: { description: "Call the dentist's clinic to book", due_at: tomorrow830 },
            },
            {
              name: "queue_message",
              input: { text: "Quick nudge: the dentist opens at 9 tomorrow. You've got this." },
            },
            {
              name: "update_user_insights",
              input: {
                items: [
                  {
                    key: "best time",
                    value: "Prefers mornings; not after 9 pm",
                    category: "routine",
                  },
                  { key: "dentist", value: "Has been putting off the dentist", category: "health" },
                ],
              },
            },
          ],
        },
        {
          kind: "tool_use",
          match: "ANALYZE_INTERACTION",
          calls: [{
            name: "record_analysis",
            input: {
              sentiment: "mixed",
              session_summary: "Sam is stressed and avoiding the dentist; committed to call the " +
                "clinic tomorrow morning; check-in call booked for 08:30.",
            },
          }],
        },
      ]),
    }).then((r) => r.body?.cancel());
  }

  const started = performance.now();
  const [interaction] = await sql<{ id: string }[]>`
    insert into public.interactions (user_id, call_type, channel, transcript)
    values (${user.id}, 'evening_check_in', 'voice', ${transcript}) returning id`;
  say(`2. The voice call ended and its transcript was stored in public.interactions:`);
  for (const line of transcript.split("\n")) say(`     ${line}`);

  const [job] = await sql<{ request_id: string }[]>`
    select last_request_id::text as request_id from public.analysis_jobs
     where interaction_id = ${interaction.id}`;
  let done: { analysis_status: string; sentiment: string | null } | undefined;
  while (!done) {
    const [row] = await sql<{ analysis_status: string; sentiment: string | null }[]>`
      select analysis_status, sentiment from public.interactions where id = ${interaction.id}`;
    if (["done", "failed"].includes(row.analysis_status)) done = row;
    else await new Promise((r) => setTimeout(r, 50));
  }
  // The function answers the webhook after the analysis is stored; its answer is recorded then.
  let webhook: { status_code: number } | undefined;
  while (!webhook) {
    [webhook] = await sql<{ status_code: number }[]>`
      select status_code from net._http_response where id = ${job.request_id}`;
    if (!webhook) await new Promise((r) => setTimeout(r, 50));
  }
  say(`3. The insert trigger recorded a durable analysis job and, after commit, pg_net posted the`);
  say(
    `   Database Webhook to analyze-interaction: HTTP ${webhook?.status_code} after ${
      Math.round(performance.now() - started)
    } ms. Analysis: ${done.analysis_status}, sentiment ${done.sentiment ?? "not given"}.`,
  );

  const [run] = await sql<
    {
      model: string;
      input_tokens: number;
      output_tokens: number;
      cache_read_tokens: number;
      cache_write_tokens: number;
      cost_usd: string;
      duration_ms: number;
      actions: { tool: string; status?: string; ok?: boolean }[];
    }[]
  >`select model, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
           cost_usd::text, duration_ms, actions
      from public.sdk_actions where interaction_id = ${interaction.id}
     order by created_at desc limit 1`;
  say(`4. The model acted through its tools (sdk_actions): ${run.model}, ${run.duration_ms} ms,`);
  say(
    `   tokens in ${run.input_tokens} / out ${run.output_tokens} / cache read ${run.cache_read_tokens}` +
      ` / cache write ${run.cache_write_tokens}, cost $${run.cost_usd}.`,
  );
  for (const action of run.actions) say(`     - ${JSON.stringify(action).slice(0, 150)}`);

  const calls = await sql<{ call_type: string; scheduled_for: Date; status: string }[]>`
    select call_type, scheduled_for, status from public.scheduled_calls where user_id = ${user.id}`;
  const queued = await sql<{ id: string; final_message: string; status: string }[]>`
    select id, final_message, status from public.message_queue where user_id = ${user.id}`;
  const [profile] = await sql<{ insights: unknown }[]>`
    select insights from public.users where id = ${user.id}`;
  say(`5. What it left behind:`);
  for (const c of calls) {
    say(`     call     ${c.call_type} at ${localTime(c.scheduled_for, tz)} ${tz} (${c.status})`);
  }
  for (const m of queued) say(`     message  "${m.final_message}" (${m.status})`);
  say(`     insights ${JSON.stringify(profile.insights).slice(0, 200)}`);

  // A second user, where it is night, gets the same text: quiet hours hold it.
  const nightTz = zoneAt(0, 6) === "UTC" ? zoneAt(23, 24) : zoneAt(0, 6);
  const [night] = await sql<{ id: string }[]>`
    insert into public.users (phone_number, timezone) values ('+12015550143', ${nightTz})
    returning id`;
  const [{ id: nightMessage }] = await sql<{ id: string }[]>`
    select public.enqueue_message(${night.id}, 'demo', 'medium',
      p_final_message := 'Quick nudge: the dentist opens at 9 tomorrow.') as id`;

  const res = await fetch(`${stack.apiUrl}/functions/v1/process-queue`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${env.ORCHESTRATOR_SECRET || DEV_SECRET}`,
      "content-type": "application/json",
    },
    body: JSON.stringify({ source: "demo" }),
  });
  const summary = await res.json();
  say(
    `6. process-queue ran (pg_cron calls it every minute): sent ${summary.sent}, deferred ${summary.deferred}, failed ${summary.failed}.`,
  );

  const caught: { to: string; body: string; createdAt: string }[] =
    await (await fetch(`${stack.fakes.smsCatcherUrl}/__catcher/messages`)).json();
  for (const m of caught) {
    say(
      `7. The SMS catcher (Twilio's wire format) received for ${maskPhone(m.to)} at ${
        localTime(new Date(m.createdAt), tz)
      } local time: "${m.body}"`,
    );
  }
  const [held] = await sql<{ next_attempt_at: Date; status_reason: string }[]>`
    select next_attempt_at, status_reason from public.message_queue where id = ${nightMessage}`;
  say(
    `8. For a user in ${nightTz}, where it is ${localTime(new Date(), nightTz)}, the same text is`,
  );
  say(
    `   ${held.status_reason}; it goes at ${localTime(held.next_attempt_at, nightTz)} local time.`,
  );
} finally {
  await stack.stop();
}
