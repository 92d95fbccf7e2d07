// The database reaches the edge functions on its own: the interactions insert
// trigger calls analyze-interaction after commit, and pg_cron calls
// process-queue every minute, both authenticated with the Vault secret.
import assert from "node:assert/strict";
import { createUser, db, stackTest, waitFor } from "./helpers.ts";

async function insertInteraction(userId: string, transcript: string) {
  const [{ id }] = await db()<{ id: string }[]>`
    insert into public.interactions (user_id, channel, transcript)
    values (${userId}, 'sms', ${transcript}) returning id`;
  const [job] = await db()<{ request_id: string }[]>`
    select last_request_id::text as request_id from public.analysis_jobs where interaction_id = ${id}`;
  return { id, requestId: job.request_id };
}

stackTest("an interaction insert records a job and reaches analyze-interaction", async () => {
  const sql = db();
  const user = await createUser(sql);
  const interaction = await insertInteraction(user.id, "Remind me to call the dentist tomorrow.");
  assert.ok(interaction.requestId, "the trigger queued a webhook request");
  const res = await waitFor("analyze-interaction's answer", async () => {
    const [row] = await sql<{ status_code: number; content: string }[]>`
      select status_code, content from net._http_response where id = ${interaction.requestId}`;
    return row;
  });
  // Only a caller that presented the right bearer secret gets past the 401.
  assert.equal(res.status_code, 200);
  assert.equal(JSON.parse(res.content).interaction_id, interaction.id);
  const [analysed] = await sql`
    select analysis_status from public.interactions where id = ${interaction.id}`;
  assert.equal(analysed.analysis_status, "done");
});

stackTest("a rolled-back interaction insert leaves no job and sends nothing", async () => {
  const sql = db();
  const user = await createUser(sql);
  let rolledBack = "";
  await sql.begin(async (tx) => {
    [{ id: rolledBack }] = await tx<{ id: string }[]>`
      insert into public.interactions (user_id, channel, transcript)
      values (${user.id}, 'sms', 'never mind') returning id`;
    throw new Error("roll back");
  }).catch((err) => assert.equal(err.message, "roll back"));

  // A committed insert afterwards is the barrier: once its webhook has been
  // answered, the dispatcher has had every chance to send the first one.
  const barrier = await insertInteraction(user.id, "barrier");
  await waitFor("the barrier's webhook", async () => {
    const [row] = await sql`select 1 from net._http_response where id = ${barrier.requestId}`;
    return row;
  });
  const [{ jobs }] = await sql<{ jobs: number }[]>`
    select count(*)::int as jobs from public.analysis_jobs where interaction_id = ${rolledBack}`;
  assert.equal(jobs, 0);
  const [{ sent }] = await sql<{ sent: number }[]>`
    select count(*)::int as sent from net._http_response
     where content like ${"%" + rolledBack + "%"}`;
  assert.equal(sent, 0);
});

stackTest("pg_cron holds the per-minute job and really runs it", async () => {
  const sql = db();
  const [job] = await sql<{ jobid: number; schedule: string; command: string }[]>`
    select jobid, schedule, command from cron.job where jobname = 'process-queue'`;
  assert.equal(job.schedule, "* * * * *");
  assert.match(job.command, /invoke_edge_function\('process-queue'/);
  // The next minute boundary is at most 60 s away.
  const run = await waitFor("a pg_cron run that reached process-queue", async () => {
    const [row] = await sql<{ status_code: number; content: string }[]>`
      select r.status_code, r.content
        from net._http_response r
       where r.content like '%"source":"pg_cron"%'
         and r.content like '%"function":"process-queue"%'
       order by r.created desc limit 1`;
    return row;
  }, 75_000);
  assert.equal(run.status_code, 200);
  assert.equal(JSON.parse(run.content).function, "process-queue");
  const [details] = await sql<{ status: string }[]>`
    select status from cron.job_run_details where jobid = ${job.jobid}
     order by start_time desc limit 1`;
  assert.equal(details.status, "succeeded");
});
