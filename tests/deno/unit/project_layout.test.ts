// Deploying with the Supabase CLI depends on these files agreeing.
import assert from "node:assert/strict";
import { parseDotenv } from "../../../scripts/local/env.ts";
import { listFunctions } from "../../../scripts/local/functions.ts";

const root = new URL("../../../", import.meta.url).pathname;
const readJson = async (path: string) => JSON.parse(await Deno.readTextFile(root + path));

Deno.test("config.toml declares every function with verify_jwt = false", async () => {
  const toml = await Deno.readTextFile(root + "supabase/config.toml");
  const names = await listFunctions(root);
  assert.ok(names.includes("health"));
  for (const name of names) {
    const section = new RegExp(`\\[functions\\.${name}\\]([^\\[]*)`).exec(toml);
    assert.ok(section, `[functions.${name}] is missing`);
    assert.match(section[1], /verify_jwt\s*=\s*false/, name);
    assert.match(section[1], new RegExp(`import_map\\s*=\\s*"\\./functions/${name}/deno\\.json"`));
  }
});

Deno.test("each function's deno.json pins the same versions as the root", async () => {
  const rootImports: Record<string, string> = (await readJson("deno.json")).imports;
  const pkg = await readJson("package.json");
  const npmVersions = { ...pkg.dependencies, ...pkg.devDependencies };
  for (const [key, spec] of Object.entries(rootImports)) {
    // "pkg/" maps a package's subpaths: "npm:/pkg@version/".
    const name = key.replace(/\/$/, "");
    const expected = key.endsWith("/")
      ? `npm:/${name}@${npmVersions[name]}/`
      : `npm:${name}@${npmVersions[name]}`;
    assert.ok(npmVersions[name], `${name} is in deno.json but not in package.json`);
    assert.equal(spec, expected, `${name} in deno.json vs package.json`);
  }
  for (const name of await listFunctions(root)) {
    const imports: Record<string, string> = (await readJson(`supabase/functions/${name}/deno.json`))
      .imports;
    for (const [dep, spec] of Object.entries(imports)) {
      assert.equal(spec, rootImports[dep], `${name}: ${dep}`);
    }
  }
});

Deno.test("parseDotenv reads KEY=VALUE lines, quotes and comments", () => {
  assert.deepEqual(
    parseDotenv("# comment\nA=1\nexport B=\"two words\"\nC='x=y'\n\nnot a line\n"),
    { A: "1", B: "two words", C: "x=y" },
  );
});
