// export: everything the product holds about one user (export_user), as JSON
// or as Markdown for a data-access request. Nothing is masked: it is theirs.
import { type Ctx, type Outcome, userId } from "../context.ts";

interface Export {
  exported_at: string;
  user: Record<string, unknown>;
  tables: Record<string, Record<string, unknown>[]>;
}

export async function exportUser(ctx: Ctx): Promise<Outcome> {
  const id = await userId(ctx.sql, ctx.target!);
  const [{ data }] = await ctx.sql<{ data: Export }[]>`select public.export_user(${id}) as data`;
  const markdown = ctx.flags.format === "markdown" && !ctx.flags.json;
  return { data, text: markdown ? renderMarkdown(data) : JSON.stringify(data, null, 2) };
}

const mdCell = (v: unknown) =>
  (v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v))
    .replaceAll("|", "\\|")
    .replace(/\r?\n/g, "<br>");

function mdTable(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return "_none_";
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return [
    `| ${columns.join(" | ")} |`,
    `| ${columns.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${columns.map((c) => mdCell(r[c])).join(" | ")} |`),
  ].join("\n");
}

export function renderMarkdown(e: Export): string {
  const sections = Object.entries(e.tables)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, rows]) => `## ${name} (${rows.length})\n\n${mdTable(rows)}`);
  return [
    `# Data held about user ${e.user.id}`,
    `Exported ${e.exported_at}.`,
    "## user",
    mdTable([e.user]),
    ...sections,
  ].join("\n\n");
}
