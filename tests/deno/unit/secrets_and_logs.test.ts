import assert from "node:assert/strict";
import { maskPhone } from "../../../shared/log.ts";
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
