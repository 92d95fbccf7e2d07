// GSM-7 normalisation and segment counting against the published limits:
// GSM-7 160 alone, 153 per segment; UCS-2 70 alone, 67 per segment; the
// extension characters { } [ ] ~ ^ \ | € take two positions.
import assert from "node:assert/strict";
import { gsm7Segments, isGsm7, toSmsText, ucs2Segments } from "../../../shared/delivery/gsm.ts";

Deno.test("GSM-7: 160 characters are one segment, 161 are two of at most 153", () => {
  assert.equal(gsm7Segments("a".repeat(160)), 1);
  assert.equal(gsm7Segments("a".repeat(161)), 2);
  assert.equal(gsm7Segments("a".repeat(306)), 2);
  assert.equal(gsm7Segments("a".repeat(307)), 3);
});

Deno.test("GSM-7: extension characters count two and are never split across segments", () => {
  for (const ch of ["{", "}", "[", "]", "~", "^", "\\", "|", "€"]) {
    assert.equal(gsm7Segments(ch.repeat(80)), 1, `${ch} x 80 is 160 positions`);
    assert.equal(gsm7Segments(ch.repeat(81)), 2, `${ch} x 81 is 162 positions`);
  }
  // 152 plain, then a two-position character: it starts the second segment.
  assert.equal(gsm7Segments("a".repeat(152) + "€" + "a".repeat(152)), 3);
  assert.equal(gsm7Segments("a".repeat(151) + "€" + "a".repeat(153)), 2);
});

Deno.test("UCS-2: 70 alone, 67 per segment, surrogate pairs kept whole", () => {
  assert.equal(ucs2Segments("ж".repeat(70)), 1);
  assert.equal(ucs2Segments("ж".repeat(71)), 2);
  assert.equal(ucs2Segments("ж".repeat(134)), 2);
  assert.equal(ucs2Segments("ж".repeat(135)), 3);
  // 35 emoji are 70 UTF-16 units: one segment; one more needs two.
  assert.equal(ucs2Segments("😀".repeat(35)), 1);
  assert.equal(ucs2Segments("😀".repeat(36)), 2);
  // 66 units then a pair: the pair moves to the next segment.
  assert.equal(ucs2Segments("ж".repeat(66) + "😀" + "ж".repeat(66)), 3);
});

Deno.test("typography is normalised to GSM-7 when that is all that stands in the way", () => {
  const sms = toSmsText("It\u2019s \u201cready\u201d \u2014 see you at 7\u2026\u00a0ok");
  assert.deepEqual(sms, {
    text: 'It\'s "ready" - see you at 7... ok',
    encoding: "GSM-7",
    segments: 1,
  });
});

Deno.test("text with a character GSM-7 cannot hold stays as written, in UCS-2", () => {
  const sms = toSmsText("\u201cBon app\u00e9tit\u201d \ud83d\ude00");
  assert.equal(sms.encoding, "UCS-2");
  assert.equal(sms.text, "\u201cBon app\u00e9tit\u201d \ud83d\ude00");
  assert.equal(sms.segments, 1);
});

Deno.test("plain GSM-7 text, accents of the basic set included, is left alone", () => {
  assert.ok(isGsm7("Café à 8h, Øre £5 ¿Qué? ñ ü Ä"));
  assert.deepEqual(toSmsText("Café à 8h"), { text: "Café à 8h", encoding: "GSM-7", segments: 1 });
  assert.equal(isGsm7("naïve"), false, "ï is not in GSM-7");
  assert.equal(isGsm7("sí"), false, "í is not in GSM-7 (ì is)");
});
