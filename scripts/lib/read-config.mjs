// Prints the [vars.X402] table of wrangler.toml (or of one of its environments) as JSON, read by
// wrangler's own parser so that what is checked is what wrangler will deploy.
//   node scripts/lib/read-config.mjs [--env NAME] [--config FILE]
import path from "node:path";

process.env.WRANGLER_SEND_METRICS ??= "false";
process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const env = opt("--env");
const file = path.resolve(opt("--config") ?? "wrangler.toml");
const { experimental_readRawConfig } = await import("wrangler");
const { rawConfig } = experimental_readRawConfig({ config: file });
const vars = env ? rawConfig.env?.[env]?.vars : rawConfig.vars;
if (env && !rawConfig.env?.[env]) {
  console.error(`${file}: no environment "${env}"`);
  process.exit(2);
}
if (!vars?.X402) {
  console.error(`${file}: no [${env ? `env.${env}.` : ""}vars.X402] table`);
  process.exit(2);
}
process.stdout.write(JSON.stringify(vars.X402));
