// The web app's build: every asset gets its content hash in its name (cached for a year), and
// index.html (never cached) points at those names. No bundler: the sources are ES modules the
// browsers load as they are; tus-js-client's browser build is copied from node_modules.
//
//   node build.mjs [OUT]   (default: the web service's package, services/web/risingstars/web/static,
//                           which the service serves and its image installs)
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] || join(here, "..", "services", "web", "risingstars", "web", "static");
const sources = join(here, "src");
const PREFIX = "/assets/";

const files = new Map(readdirSync(sources).map((name) => [name, readFileSync(join(sources, name))]));
files.set("tus.min.js", readFileSync(join(here, "node_modules/tus-js-client/dist/tus.min.js")));

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
// A reference is a file's name in quotes, optionally after "./".
const reference = (name) => new RegExp(`(["'])(?:\\./)?${escape(name)}(["'])`, "g");
const textual = new Set([".js", ".css", ".html", ".svg"]);

const hashed = new Map();
function rewrite(text) {
  for (const [name, target] of hashed) text = text.replace(reference(name), `$1${PREFIX}${target}$2`);
  return text;
}
function mentions(name, body) {
  if (!textual.has(extname(name))) return [];
  const text = body.toString("utf8");
  return [...files.keys()].filter((other) => other !== name && reference(other).test(text));
}

// Leaves first: a file is named after its content once the names it mentions are final.
const pending = new Map([...files].filter(([name]) => name !== "index.html"));
while (pending.size) {
  const ready = [...pending].filter(([name, body]) => mentions(name, body).every((m) => hashed.has(m)));
  if (!ready.length) throw new Error(`circular references among ${[...pending.keys()].join(", ")}`);
  for (const [name, body] of ready) {
    const content = textual.has(extname(name)) && name !== "tus.min.js" ? Buffer.from(rewrite(body.toString("utf8"))) : body;
    const digest = createHash("sha256").update(content).digest("hex").slice(0, 12);
    const ext = extname(name);
    const target = `${name.slice(0, -ext.length)}.${digest}${ext}`;
    hashed.set(name, target);
    files.set(name, content);
    pending.delete(name);
  }
}

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });
const manifest = {};
const write = (path, content) => {
  writeFileSync(path, content);
  // Served as it is to clients that accept gzip: no compression work per request.
  if (textual.has(extname(path))) writeFileSync(`${path}.gz`, gzipSync(content, { level: 9 }));
};
for (const [name, target] of hashed) {
  write(join(out, "assets", target), files.get(name));
  manifest[name] = PREFIX + target;
}
write(join(out, "index.html"), Buffer.from(rewrite(files.get("index.html").toString("utf8"))));
writeFileSync(join(out, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
console.log(`web: ${hashed.size} assets and index.html in ${out}`);
