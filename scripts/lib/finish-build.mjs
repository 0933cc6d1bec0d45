// The last step of the Worker's build, on what worker-build emitted in build/: cuts that
// wasm-bindgen and worker-build do not make, each checked.
//
// - The name section goes. worker-build runs wasm-opt with `--debuginfo` after the profile's own
//   arguments, which keeps the names of wasm-bindgen's glue in a release build whose Rust names
//   are stripped already; nothing reads them at run time (1.7 KB raw). So do the
//   `target_features` and `producers` sections, which wasm-bindgen writes after wasm-opt has run
//   and no runtime reads.
// - The wasm's imports get short names. wasm-bindgen names each function the wasm imports from its
//   JavaScript glue after the function and a hash (`__wbg_fetch_4f1a0c…`), and writes each name
//   twice: in the wasm's import section and as a key of the object the glue instantiates the wasm
//   with. Those 160-odd hashes are most of what gzip cannot shrink in the names (about 4 KB of
//   the upload, gzipped). Each is renamed in both places, only where it appears exactly once in
//   the glue, as a key; so is the module they are imported from (`./index_bg.js`, a key of the
//   same object, once). The module must still compile, with every import found in the glue.
// - So do the exports that are wasm-bindgen's own plumbing (`__wbindgen_export3`,
//   `__wasm_bindgen_func_elem_3494`, `__wbindgen_add_to_stack_pointer` …), which only the glue
//   reads, as properties of the instance's exports: renamed there too, each only where every
//   mention of it in the glue is such a read. The Worker's entry points keep their names.
//
// Usage: node scripts/lib/finish-build.mjs build    (rewrites build/index_bg.wasm and build/index.js)
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

const dir = process.argv[2];
if (!dir) throw new Error("usage: finish-build.mjs <build directory>");
const wasmFile = path.join(dir, "index_bg.wasm");
const jsFile = path.join(dir, "index.js");
const wasm = readFileSync(wasmFile);
let js = readFileSync(jsFile, "utf8");
if (wasm.readUInt32BE(0) !== 0x0061736d) throw new Error(`${wasmFile} is not a wasm module`);

/** Reads wasm's encodings from `bytes`, from `at` on. */
class Reader {
  constructor(bytes, at = 0) {
    this.bytes = bytes;
    this.at = at;
  }
  byte() {
    if (this.at >= this.bytes.length) throw new Error("the wasm module ends early");
    return this.bytes[this.at++];
  }
  /** An unsigned LEB128 number. */
  leb() {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const byte = this.byte();
      value += (byte & 0x7f) * 2 ** shift;
      if (!(byte & 0x80)) return value;
    }
  }
  name() {
    const length = this.leb();
    const text = this.bytes.subarray(this.at, this.at + length).toString();
    this.at += length;
    return text;
  }
  /** Moves past a table's or a memory's limits. */
  limits() {
    const flags = this.byte();
    this.leb();
    if (flags & 1) this.leb();
  }
}

const leb = (value) => {
  const out = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value) byte |= 0x80;
    out.push(byte);
  } while (value);
  return Buffer.from(out);
};
const name = (text) => {
  const bytes = Buffer.from(text);
  return Buffer.concat([leb(bytes.length), bytes]);
};

/** The import section, each import's names changed by `rename(module, field)`. */
function renamedImports(body, rename) {
  const r = new Reader(body);
  const out = [];
  const count = r.leb();
  out.push(leb(count));
  for (let i = 0; i < count; i++) {
    const module = r.name();
    const field = r.name();
    const descStart = r.at;
    const kind = r.byte();
    if (kind === 0) r.leb(); // a function: its type
    else if (kind === 1) (r.byte(), r.limits()); // a table: its element type and limits
    else if (kind === 2) r.limits(); // a memory
    else if (kind === 3) (r.byte(), r.byte()); // a global: its type and mutability
    else if (kind === 4) (r.byte(), r.leb()); // a tag: its attribute and type
    else throw new Error(`an import of unknown kind ${kind}`);
    out.push(name(renameModule(module)), name(rename(module, field)), body.subarray(descStart, r.at));
  }
  if (r.at !== body.length) throw new Error("the import section does not end where its imports do");
  return Buffer.concat(out);
}

// Short names: _0, _1, …, _z, _10, … (never a key the object already has: every key is renamed).
const shortName = (n) => `_${n.toString(36)}`;
const GLUE_MODULE = "./index_bg.js";
let renamed = 0;
const rename = (module, field) => {
  if (module !== GLUE_MODULE) return field;
  const key = new RegExp(`(?<![\\w$])${field.replace(/\$/g, "\\$")}(?![\\w$])`, "g");
  const found = js.match(key)?.length ?? 0;
  if (found !== 1 || !js.includes(`${field}:`)) throw new Error(`the import ${field} is not one key of the glue (${found} times in ${jsFile})`);
  const short = shortName(renamed++);
  js = js.replace(`${field}:`, `${short}:`);
  return short;
};

// The module's own short name ("$", which no import is named), its key renamed once.
const SHORT_MODULE = "$";
const moduleKey = `"${GLUE_MODULE}":`;
if (js.split(moduleKey).length !== 2 || js.split(GLUE_MODULE).length !== 2) throw new Error(`${GLUE_MODULE} is not one key of ${jsFile}`);
js = js.replace(moduleKey, `${SHORT_MODULE}:`);
const renameModule = (module) => (module === GLUE_MODULE ? SHORT_MODULE : module);

/** The export section, each plumbing export renamed in the wasm and the glue alike. */
const PLUMBING = /^__(wbindgen|wasm_bindgen)_\w+$/;
const shortExports = [];
function renamedExports(body) {
  const r = new Reader(body);
  const out = [];
  const count = r.leb();
  out.push(leb(count));
  for (let i = 0; i < count; i++) {
    let field = r.name();
    const descStart = r.at;
    r.byte();
    r.leb();
    if (PLUMBING.test(field)) {
      const escaped = field.replace(/\$/g, "\\$");
      const mentions = [...js.matchAll(new RegExp(`(?<![\\w$])${escaped}(?![\\w$])`, "g"))];
      const short = `$${shortExports.length.toString(36)}`;
      if (mentions.length === 0 || mentions.some((m) => js[m.index - 1] !== "." || !/[\w$)\]]/.test(js[m.index - 2]))) throw new Error(`the export ${field} is not only read as a property in ${jsFile}`);
      if (new RegExp(`(?<![\\w$])\\${short}(?![\\w$])`).test(js)) throw new Error(`the glue already has a ${short}`);
      js = js.replace(new RegExp(`\\.${escaped}(?![\\w$])`, "g"), `.${short}`);
      shortExports.push(short);
      field = short;
    }
    out.push(name(field), body.subarray(descStart, r.at));
  }
  if (r.at !== body.length) throw new Error("the export section does not end where its exports do");
  return Buffer.concat(out);
}
const CUT = new Set(["name", "target_features", "producers"]);

const r = new Reader(wasm, 8);
const sections = [wasm.subarray(0, 8)];
let cut = 0;
while (r.at < wasm.length) {
  const start = r.at;
  const id = r.byte();
  const size = r.leb();
  const bodyStart = r.at;
  const end = bodyStart + size;
  r.at = end;
  if (id === 0 && CUT.has(new Reader(wasm, bodyStart).name())) {
    cut += end - start;
    continue;
  }
  if (id === 2) {
    const body = renamedImports(wasm.subarray(bodyStart, end), rename);
    sections.push(Buffer.from([2]), leb(body.length), body);
    continue;
  }
  if (id === 7) {
    const body = renamedExports(wasm.subarray(bodyStart, end));
    sections.push(Buffer.from([7]), leb(body.length), body);
    continue;
  }
  sections.push(wasm.subarray(start, end));
}
const out = Buffer.concat(sections);

// The result must compile, and every import it asks of the glue must be a key there.
const imports = WebAssembly.Module.imports(new WebAssembly.Module(out));
for (const i of imports) {
  if (i.module === GLUE_MODULE) throw new Error(`the import ${i.name} is still from ${GLUE_MODULE}`);
  if (i.module === SHORT_MODULE && !new RegExp(`[{,]${i.name}:`).test(js)) throw new Error(`the import ${i.name} is not in the glue after renaming`);
}
// The glue's classes for what the wasm no longer exports (Cargo.toml's wasm-opt settings remove
// the exports of classes this Worker never builds): every method of such a class calls a function
// that is gone, so nothing can use it. Each becomes an empty class of the same name, which the
// glue's own exports still name. A class is known by the function that frees its instances.
const exported = new Set(WebAssembly.Module.exports(new WebAssembly.Module(out)).map((e) => e.name));
for (const short of shortExports) if (!exported.has(short)) throw new Error(`the export ${short} is missing after renaming`);
const classes = /var ([\w$]+)=class\{__destroy_into_raw\(\)\{[\s\S]*?;Symbol\.dispose&&\(\1\.prototype\[Symbol\.dispose\]=\1\.prototype\.free\);/g;
const emptied = [];
js = js.replace(classes, (whole, name) => {
  if (whole.indexOf("=class{", whole.indexOf("=class{") + 1) !== -1) throw new Error(`a class of the glue in ${jsFile} does not end where expected`);
  const free = /\.(__wbg_(\w+?)_free)\(/.exec(whole);
  if (!free || exported.has(free[1])) return whole;
  emptied.push([name, free[2]]);
  return `var ${name}=class{};`;
});
// Nothing may still reach into an emptied class (a static method, its prototype).
for (const [name, what] of emptied) {
  if (new RegExp(`(?<![\\w$.])${name.replace(/\$/g, "\\$")}\\.`).test(js)) throw new Error(`the glue still uses the class of ${what} (${name}), which was emptied`);
}

writeFileSync(wasmFile, out);
writeFileSync(jsFile, js);
// And the glue must still be a module that parses.
execFileSync(process.execPath, ["--check", jsFile], { stdio: "inherit" });
console.log(`[build] ${renamed} imports and ${shortExports.length} exports renamed, ${cut} bytes of names and notes cut: ${wasmFile} ${out.length} bytes`);
console.log(`[build] the glue's classes of removed exports emptied: ${emptied.map(([, what]) => what).join(", ") || "none"}`);
