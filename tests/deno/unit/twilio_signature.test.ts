import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { isValidTwilioSignature, twilioSignature } from "../../../shared/twilio/signature.ts";

// Twilio's worked example from its webhook security docs (www.twilio.com/docs/usage/webhooks/
// webhooks-security): this URL, these parameters and the auth token 12345 sign to this value.
// Twilio's own example numbers, kept as published: changing one changes the signature.
const DOC_TOKEN = "12345";
const DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2";
const DOC_PARAMS = {
  CallSid: "CA1234567890ABCDE",
  Caller: "+12349013030",
  Digits: "1234",
  From: "+12349013030",
  To: "+18005551212",
};
const DOC_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

// An independent implementation of the documented algorithm.
const reference = (token: string, data: string) =>
  createHmac("sha1", token).update(data, "utf8").digest("base64");

const TOKEN = "test-auth-token";
const URL_ = "https://orchestrator.example.com/functions/v1/twilio-inbound?tenant=a";
const PARAMS = {
  MessageSid: "SM0123456789abcdef0123456789abcdef",
  From: "+12015550123",
  To: "+12015550100",
  Body: "Yes, 3pm works",
  NumMedia: "0",
};

Deno.test("Twilio's documented example signature is accepted, and reproduced", () => {
  assert.equal(isValidTwilioSignature(DOC_TOKEN, DOC_URL, DOC_PARAMS, DOC_SIGNATURE), true);
  assert.equal(
    isValidTwilioSignature(DOC_TOKEN, DOC_URL, new URLSearchParams(DOC_PARAMS), DOC_SIGNATURE),
    true,
  );
  assert.equal(twilioSignature(DOC_TOKEN, DOC_URL, DOC_PARAMS), DOC_SIGNATURE);
  assert.equal(
    isValidTwilioSignature(DOC_TOKEN, DOC_URL, { ...DOC_PARAMS, Digits: "1235" }, DOC_SIGNATURE),
    false,
  );
});

Deno.test("parameters are signed sorted by name, case-sensitively, whatever their order", () => {
  const shuffled = { b: "2", NumMedia: "0", a: "1", Body: "hi" };
  const expected = reference(TOKEN, `${URL_}Bodyhi` + `NumMedia0` + `a1` + `b2`);
  assert.equal(twilioSignature(TOKEN, URL_, shuffled), expected);
  assert.equal(twilioSignature(TOKEN, URL_, new URLSearchParams(shuffled)), expected);
});

Deno.test("a repeated parameter name signs each value, values sorted", () => {
  const params = new URLSearchParams([
    ["MediaUrl", "https://m.example/2"],
    ["Body", "x"],
    ["MediaUrl", "https://m.example/1"],
  ]);
  const expected = reference(
    TOKEN,
    `${URL_}Bodyx` + `MediaUrlhttps://m.example/1` + `MediaUrlhttps://m.example/2`,
  );
  assert.equal(twilioSignature(TOKEN, URL_, params), expected);
  assert.equal(isValidTwilioSignature(TOKEN, URL_, params, expected), true);
});

Deno.test("a webhook signed with the auth token is accepted", () => {
  const signature = twilioSignature(TOKEN, URL_, PARAMS);
  assert.equal(isValidTwilioSignature(TOKEN, URL_, PARAMS, signature), true);
  assert.equal(isValidTwilioSignature(TOKEN, URL_, new URLSearchParams(PARAMS), signature), true);
});

Deno.test("a forged or altered webhook is refused", () => {
  const signature = twilioSignature(TOKEN, URL_, PARAMS);
  const refused = (
    token: string,
    url: string,
    params: Record<string, string>,
    sig: string | null,
  ) => assert.equal(isValidTwilioSignature(token, url, params, sig), false);
  refused(TOKEN, URL_, { ...PARAMS, Body: "No" }, signature);
  refused(TOKEN, URL_, { ...PARAMS, Extra: "" }, signature);
  const { NumMedia: _, ...withoutOne } = PARAMS;
  refused(TOKEN, URL_, withoutOne, signature);
  refused(TOKEN, URL_.replace("tenant=a", "tenant=b"), PARAMS, signature);
  refused("another-token", URL_, PARAMS, signature);
  refused(TOKEN, URL_, PARAMS, signature.slice(0, -1));
  refused(TOKEN, URL_, PARAMS, `${signature}=`);
  refused(TOKEN, URL_, PARAMS, "");
  refused(TOKEN, URL_, PARAMS, null);
});

Deno.test("an empty auth token verifies nothing, not even a signature made with it", () => {
  const signedWithEmpty = reference("", URL_ + "Bodyx");
  assert.equal(isValidTwilioSignature("", URL_, { Body: "x" }, signedWithEmpty), false);
});

Deno.test("a URL that is not absolute is refused, not thrown on", () => {
  // A mismatch sends the validator on to new URL(), which throws for a relative URL.
  assert.equal(isValidTwilioSignature(TOKEN, "/functions/v1/hook", { Body: "x" }, "forged"), false);
});

Deno.test("a signature over the URL with or without the default port is accepted", () => {
  const bare = "https://orchestrator.example.com/hook?x=1";
  const withPort = "https://orchestrator.example.com:443/hook?x=1";
  const sigBare = twilioSignature(TOKEN, bare, PARAMS);
  const sigWithPort = twilioSignature(TOKEN, withPort, PARAMS);
  assert.notEqual(sigBare, sigWithPort);
  assert.equal(isValidTwilioSignature(TOKEN, bare, PARAMS, sigWithPort), true);
  assert.equal(isValidTwilioSignature(TOKEN, withPort, PARAMS, sigBare), true);

  const local = "http://127.0.0.1:54321/functions/v1/hook";
  const sigOtherPort = twilioSignature(TOKEN, "http://127.0.0.1:8080/functions/v1/hook", {});
  assert.equal(isValidTwilioSignature(TOKEN, local, {}, sigOtherPort), false);
});
