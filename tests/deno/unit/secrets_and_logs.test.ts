import assert from "node:assert/strict";
import { logError, logInfo, maskedJson, maskPhone } from "../../../shared/log.ts";
import { timingSafeEqual } from "../../../shared/secrets.ts";

Deno.test("timingSafeEqual accepts only the exact secret", () => {
  assert.equal(timingSafeEqual("s3cret-value", "s3cret-value"), true);
  assert.equal(timingSafeEqual("s3cret-valuf", "s3cret-value"), false);
  assert.equal(timingSafeEqual("s3cret-value-and-more", "s3cret-value"), false);
  assert.equal(timingSafeEqual("s3cret", "s3cret-value"), false);
  assert.equal(timingSafeEqual("", "s3cret-value"), false);
});

Deno.test("maskPhone keeps only the last four digits of every number", () => {
  assert.equal(maskPhone("to +12015550123 now"), "to +*******0123 now");
  assert.equal(
    maskPhone('{"from":"+442075550188","to":"+12015550101"}'),
    '{"from":"+********0188","to":"+*******0101"}',
  );
  assert.equal(maskPhone("no numbers here"), "no numbers here");
});

Deno.test("maskPhone masks numbers written with spaces, dashes, dots and parentheses", () => {
  const cases: [string, string][] = [
    ["call +1 201 555 0123 today", "call +*******0123 today"],
    ["+1-201-555-0142", "+*******0142"],
    ["+1 (201) 555-0143.", "+*******0143."],
    ["+44 20 7555 0188", "+********0188"],
    ["+44 (0)20 7555 0188", "+*********0188"],
    ["(201) 555-0144", "******0144"],
    ["201-555-0145, 201.555.0146", "******0145, ******0146"],
    ["1-201-555-0147", "*******0147"],
    ["To=%2B12015550148&Body=hi", "To=%2B*******0148&Body=hi"],
    ["line one\n+12015550149", "line one\n+*******0149"],
  ];
  for (const [input, masked] of cases) assert.equal(maskPhone(input), masked, input);
});

Deno.test("maskPhone leaves timestamps, dates, UUIDs, offsets and counts alone", () => {
  const untouched = [
    "2026-12-01T21:45:12.345Z",
    '"next_attempt_at":"2026-12-01T21:51:07.341722+00:00"',
    "2026-12-01 21:45:12+05:30",
    "514d006d-b217-4ccd-9560-a3a98f3c7342",
    "00000000-0000-4000-8000-000000001234",
    '"interaction_id":"11213a6d-ed12-4081-9c5d-6dba4657c3c8"',
    '"duration_ms":1234567,"claimed":100',
    "sid SM0123456789abcdef0123456789abcdef",
    "HTTP 503 after 120000 ms",
    "+1",
    "+12345",
  ];
  for (const text of untouched) assert.equal(maskPhone(text), text, text);
});

Deno.test("maskedJson masks strings at any depth and spells out errors", () => {
  const driver = Object.assign(
    new Error('duplicate key value violates unique constraint "users_phone_number_key"'),
    { code: "23505", detail: "Key (phone_number)=(+12015550150) already exists." },
  );
  const wrapped = new Error("insert failed for +12015550151", { cause: driver });
  const line = JSON.parse(maskedJson({
    at: "2026-12-01T21:45:12.345Z",
    user_id: "514d006d-b217-4ccd-9560-a3a98f3c7342",
    nested: { to: ["+12015550152"] },
    error: wrapped,
  }));
  assert.deepEqual(line, {
    at: "2026-12-01T21:45:12.345Z",
    user_id: "514d006d-b217-4ccd-9560-a3a98f3c7342",
    nested: { to: ["+*******0152"] },
    error: {
      name: "Error",
      message: "insert failed for +*******0151",
      cause: {
        name: "Error",
        message: 'duplicate key value violates unique constraint "users_phone_number_key"',
        code: "23505",
        detail: "Key (phone_number)=(+*******0150) already exists.",
      },
    },
  });
});

/** What `fn` writes to console.log and console.error. */
function captureConsole(fn: () => void): string[] {
  const lines: string[] = [];
  const { log, error } = console;
  console.log = (line: string) => lines.push(line);
  console.error = (line: string) => lines.push(line);
  try {
    fn();
  } finally {
    Object.assign(console, { log, error });
  }
  return lines;
}

Deno.test("logInfo and logError write masked JSON lines", () => {
  const lines = captureConsole(() => {
    logInfo("process-queue", "sent to +12015550153", {
      sent_at: "2026-12-01T21:45:12.345Z",
      error: new TypeError("fetch to +12015550154 failed"),
    });
    logError("health", "database check failed", new Error("host +12015550155 refused"), {
      attempt: 2,
    });
  });
  assert.deepEqual(lines.map((l) => JSON.parse(l)), [
    {
      level: "info",
      scope: "process-queue",
      message: "sent to +*******0153",
      sent_at: "2026-12-01T21:45:12.345Z",
      error: { name: "TypeError", message: "fetch to +*******0154 failed" },
    },
    {
      level: "error",
      scope: "health",
      message: "database check failed",
      attempt: 2,
      error: { name: "Error", message: "host +*******0155 refused" },
    },
  ]);
});
