// Logging that never carries a full phone number.
const PHONE = /\+?\d[\d\s().-]{6,}\d/g;

export function maskPhone(value: string): string {
  return value.replace(PHONE, (match) => {
    const digits = match.replace(/\D/g, "");
    return `${match.startsWith("+") ? "+" : ""}${"*".repeat(Math.max(0, digits.length - 4))}${
      digits.slice(-4)
    }`;
  });
}

export function logInfo(
  scope: string,
  message: string,
  fields: Record<string, unknown> = {},
): void {
  console.log(maskPhone(JSON.stringify({ level: "info", scope, message, ...fields })));
}
