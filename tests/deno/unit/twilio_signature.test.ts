import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { isValidTwilioSignature, twilioSignature } from "../../../shared/twilio/signature.ts";

// An independent implementation of the documented algorithm, to check the WebCrypto one.
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

Deno.test("parameters are signed sorted by name, case-sensitively, whatever their order", async () => {
  const shuffled = { b: "2", NumMedia: "0", a: "1", Body: "hi" };
  const expected = reference(TOKEN, `${URL_}Bodyhi` + `NumMedia0` + `a1` + `b2`);
  assert.equal(await twilioSignature(TOKEN, URL_, shuffled), expected);
  assert.equal(await twilioSignature(TOKEN, URL_, new URLSearchParams(shuffled)), expected);
});

Deno.test("a repeated parameter name signs each value, values sorted", async () => {
  const params = new URLSearchParams([
    ["MediaUrl", "https://m.example/2"],
    ["Body", "x"],
    ["MediaUrl", "https://m.example/1"],
  ]);
  const expected = reference(
    TOKEN,
    `${URL_}Bodyx` + `MediaUrlhttps://m.example/1` + `MediaUrlhttps://m.example/2`,
  );
  assert.equal(await twilioSignature(TOKEN, URL_, params), expected);
});

Deno.test("a webhook signed with the auth token is accepted", async () => {
  const signature = await twilioSignature(TOKEN, URL_, PARAMS);
  assert.equal(await isValidTwilioSignature(TOKEN, URL_, PARAMS, signature), true);
  assert.equal(
    await isValidTwilioSignature(TOKEN, URL_, new URLSearchParams(PARAMS), signature),
    true,
  );
});

Deno.test("a forged or altered webhook is refused", async () => {
  const signature = await twilioSignature(TOKEN, URL_, PARAMS);
  const refused = async (
    token: string,
    url: string,
    params: Record<string, string>,
    sig: string | null,
  ) => assert.equal(await isValidTwilioSignature(token, url, params, sig), false);
  await refused(TOKEN, URL_, { ...PARAMS, Body: "No" }, signature);
  await refused(TOKEN, URL_, { ...PARAMS, Extra: "" }, signature);
  const { NumMedia: _, ...withoutOne } = PARAMS;
  await refused(TOKEN, URL_, withoutOne, signature);
  await refused(TOKEN, URL_.replace("tenant=a", "tenant=b"), PARAMS, signature);
  await refused("another-token", URL_, PARAMS, signature);
  await refused(TOKEN, URL_, PARAMS, signature.slice(0, -1));
  await refused(TOKEN, URL_, PARAMS, `${signature}=`);
  await refused(TOKEN, URL_, PARAMS, "");
  await refused(TOKEN, URL_, PARAMS, null);
  await refused("", URL_, PARAMS, signature);
});

Deno.test("a signature over the URL with or without the default port is accepted", async () => {
  const bare = "https://orchestrator.example.com/hook?x=1";
  const withPort = "https://orchestrator.example.com:443/hook?x=1";
  const sigBare = await twilioSignature(TOKEN, bare, PARAMS);
  const sigWithPort = await twilioSignature(TOKEN, withPort, PARAMS);
  assert.notEqual(sigBare, sigWithPort);
  assert.equal(await isValidTwilioSignature(TOKEN, bare, PARAMS, sigWithPort), true);
  assert.equal(await isValidTwilioSignature(TOKEN, withPort, PARAMS, sigBare), true);

  const local = "http://127.0.0.1:54321/functions/v1/hook";
  const sigOtherPort = await twilioSignature(TOKEN, "http://127.0.0.1:8080/functions/v1/hook", {});
  assert.equal(await isValidTwilioSignature(TOKEN, local, {}, sigOtherPort), false);
});
