// SMS-native text. A single character outside GSM-7 makes a whole SMS UCS-2:
// 70 characters a segment instead of 160, so a curly quote from Claude doubles
// the cost. Text whose only non-GSM-7 characters are typography with a GSM-7
// equivalent is normalised; anything else is left as written (UCS-2). Segment
// counts follow the published limits: GSM-7 160 alone or 153 per segment of a
// longer message, extension characters taking two positions and never split
// across segments; UCS-2 70 alone or 67 per segment, surrogate pairs never split.

const GSM7_BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
  "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENSION = "\f^{}\\[~]|€";

const basic = new Set(GSM7_BASIC);
const extension = new Set(GSM7_EXTENSION);

/** Typography with a GSM-7 equivalent that loses nothing but typography. */
const TYPOGRAPHY: Record<string, string> = {
  "\u2018": "'", // left single quote
  "\u2019": "'", // right single quote, apostrophe
  "\u201a": "'",
  "\u201b": "'",
  "\u2032": "'", // prime
  "\u201c": '"',
  "\u201d": '"',
  "\u201e": '"',
  "\u201f": '"',
  "\u2033": '"',
  "\u2010": "-", // hyphen
  "\u2011": "-", // non-breaking hyphen
  "\u2012": "-", // figure dash
  "\u2013": "-", // en dash
  "\u2014": "-", // em dash
  "\u2015": "-",
  "\u2212": "-", // minus sign
  "\u2026": "...",
  "\u00a0": " ", // non-breaking space
  "\u2002": " ",
  "\u2003": " ",
  "\u2007": " ",
  "\u2009": " ", // thin space
  "\u200a": " ",
  "\u202f": " ", // narrow non-breaking space
};

export type SmsEncoding = "GSM-7" | "UCS-2";

export interface SmsText {
  text: string;
  encoding: SmsEncoding;
  segments: number;
}

export const isGsm7 = (text: string) => [...text].every((ch) => basic.has(ch) || extension.has(ch));

/** The text as it should be sent, its encoding and its segment count. */
export function toSmsText(text: string): SmsText {
  const normalised = [...text].map((ch) => TYPOGRAPHY[ch] ?? ch).join("");
  if (isGsm7(normalised)) {
    return { text: normalised, encoding: "GSM-7", segments: gsm7Segments(normalised) };
  }
  return { text, encoding: "UCS-2", segments: ucs2Segments(text) };
}

/** Packs units of the given sizes into segments: one of `single`, or many of `each`. */
function pack(sizes: number[], single: number, each: number): number {
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total <= single) return 1;
  let segments = 1;
  let used = 0;
  for (const size of sizes) {
    if (used + size > each) {
      segments++;
      used = 0;
    }
    used += size;
  }
  return segments;
}

export function gsm7Segments(text: string): number {
  return pack([...text].map((ch) => (extension.has(ch) ? 2 : 1)), 160, 153);
}

export function ucs2Segments(text: string): number {
  // Code points: a character outside the BMP is a surrogate pair, two UTF-16 units.
  return pack([...text].map((ch) => ch.length), 70, 67);
}
