// CPU cost of one payment verification, inside wasm and natively: the same Rust code
// (bench/verify-case.rs: the x402 specification's example payment through
// x402_edge::paywall::decide at a fixed clock), built twice with the Worker's release profile:
//
//   bench/verify-wasm    cdylib for wasm32-unknown-unknown, optimised by wasm-opt as the
//                        Worker is (its optimising flags from Cargo.toml), run here under Node
//                        (V8, as in workerd)
//   bench/verify-native  a native binary that times its own loop
//
// Both crates have their own [workspace] and build into target/bench/cargo, so the project's own
// build is untouched.
import { execFile } from "node:child_process";
import { copyFile, readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const run = promisify(execFile);
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const CARGO_TARGET = path.join(ROOT, "target/bench/cargo");

// What rustc's wasm32-unknown-unknown target emits by default, which wasm-opt must be told.
const WASM_FEATURES = [
  "--enable-bulk-memory",
  "--enable-bulk-memory-opt",
  "--enable-multivalue",
  "--enable-mutable-globals",
  "--enable-nontrapping-float-to-int",
  "--enable-reference-types",
  "--enable-sign-ext",
];

const cargoEnv = () => ({ ...process.env, CARGO_TARGET_DIR: CARGO_TARGET, CARGO_TERM_COLOR: "never" });

/**
 * The root Cargo.toml's per-package release settings (`[profile.release.package.NAME]`), as
 * `cargo --config` arguments: the bench crates are workspaces of their own, so the root profile's
 * overrides would not reach them, and the bench would time code the Worker does not run.
 */
async function packageProfiles() {
  const toml = await readFile(path.join(ROOT, "Cargo.toml"), "utf8");
  const args = [];
  const section = /^\[profile\.release\.package\.([A-Za-z0-9_-]+)\]\s*\n((?:[a-z-]+\s*=\s*[^\n]+\n?)+)/gm;
  for (const [, pkg, body] of toml.matchAll(section)) {
    for (const [, key, value] of body.matchAll(/^([a-z-]+)\s*=\s*([^\n]+)$/gm)) {
      args.push("--config", `profile.release.package.${pkg}.${key}=${value.trim()}`);
    }
  }
  return args;
}

async function cargo(crate, args) {
  // The project's own Cargo.lock, so that the bench builds exactly the dependency versions the
  // Worker is built with (cargo only adds the bench crate itself). bench/.gitignore keeps the copy
  // out of git.
  await copyFile(path.join(ROOT, "Cargo.lock"), path.join(ROOT, "bench", crate, "Cargo.lock"));
  try {
    await run("cargo", ["build", "--release", "--quiet", ...(await packageProfiles()), ...args], {
      cwd: path.join(ROOT, "bench", crate),
      env: cargoEnv(),
      maxBuffer: 64 << 20,
    });
  } catch (err) {
    throw new Error(`cargo build of bench/${crate} failed:\n${String(err.stderr || err.message).slice(-4000)}`);
  }
}

/**
 * The Worker's `wasm-opt` arguments (Cargo.toml's `[package.metadata.wasm-pack.profile.release]`)
 * that optimise: not the removal of the Worker's own unused exports, nor what strips sections.
 */
async function workerOptFlags() {
  const toml = await readFile(path.join(ROOT, "Cargo.toml"), "utf8");
  const list = /^wasm-opt = \[([^\]]*)\]/m.exec(toml);
  if (!list) throw new Error("Cargo.toml has no wasm-opt list");
  return [...list[1].matchAll(/"([^"]*)"/g)]
    .map((m) => m[1])
    .filter((f) => !/^--(remove-exports|pass-arg=remove-exports|strip-)/.test(f));
}

/** Builds both bench crates (incremental after the first time). Returns their artefacts. */
export async function buildVerifyBenches({ log = () => {} } = {}) {
  const started = performance.now();
  // One after the other: two cores, and cargo would only wait on the target directory's lock.
  await cargo("verify-native", []);
  await cargo("verify-wasm", ["--target", "wasm32-unknown-unknown"]);
  const rawWasm = path.join(CARGO_TARGET, "wasm32-unknown-unknown/release/x402_edge_verify_wasm.wasm");
  const optWasm = path.join(CARGO_TARGET, "x402_edge_verify_wasm.opt.wasm");
  const wasmOpt = path.join(ROOT, "node_modules/.bin/wasm-opt");
  try {
    await run(wasmOpt, [...(await workerOptFlags()), ...WASM_FEATURES, "--strip-debug", "--strip-producers", rawWasm, "-o", optWasm], { maxBuffer: 64 << 20 });
  } catch (err) {
    throw new Error(`wasm-opt failed:\n${String(err.stderr || err.message).slice(-2000)}`);
  }
  log(`verification benches built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return { native: path.join(CARGO_TARGET, "release/x402-edge-verify-native"), wasm: optWasm };
}

/**
 * Instantiates the bench module. The x402-edge crate carries its Worker shell on wasm32, whose
 * wasm-bindgen imports are never called on the verification path: each one is a stub that throws.
 */
async function instantiate(file) {
  const module = await WebAssembly.compile(await readFile(file));
  const imports = {};
  for (const { module: from, name, kind } of WebAssembly.Module.imports(module)) {
    imports[from] ??= {};
    if (kind === "function") {
      imports[from][name] = () => {
        throw new Error(`the verification path called the import ${from}.${name}`);
      };
    } else {
      throw new Error(`unexpected ${kind} import ${from}.${name}`);
    }
  }
  const instance = await WebAssembly.instantiate(module, imports);
  return instance.exports;
}

/**
 * Times verifications in wasm under this Node: a warm-up, then `rounds` timed calls of
 * verify_n(batch); the figure is the median round. Returns µs per verification and the spread.
 */
export async function timeWasm(file, { batch = 200, rounds = 7 } = {}) {
  const wasm = await instantiate(file);
  if (wasm.prepare() !== 1) throw new Error("the specification example did not verify in wasm");
  if (wasm.verify_n(batch) !== batch) throw new Error("a verification failed in wasm");
  const perRound = [];
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    const ok = wasm.verify_n(batch);
    const ms = performance.now() - t;
    if (ok !== batch) throw new Error("a verification failed in wasm");
    perRound.push((ms * 1000) / batch);
  }
  perRound.sort((a, b) => a - b);
  return {
    usPerVerification: perRound[Math.floor(perRound.length / 2)],
    minUs: perRound[0],
    maxUs: perRound.at(-1),
    iterations: batch * rounds,
    runtime: `Node ${process.versions.node} (V8 ${process.versions.v8})`,
  };
}

/** Runs the native bench: `iterations` verifications in one timed loop. */
export async function timeNative(file, { iterations = 2000, rounds = 3 } = {}) {
  const results = [];
  for (let i = 0; i < rounds; i++) {
    const { stdout } = await run(file, [String(iterations)]);
    results.push(JSON.parse(stdout.trim().split("\n").at(-1)));
  }
  const us = results.map((r) => r.usPerVerification).sort((a, b) => a - b);
  return {
    usPerVerification: us[Math.floor(us.length / 2)],
    minUs: us[0],
    maxUs: us.at(-1),
    iterations: iterations * rounds,
  };
}

/** Instruction count of one verification, from callgrind (null if valgrind is not installed). */
export async function callgrindInstructions(file, { iterations = 20 } = {}) {
  const count = async (n) => {
    const out = path.join(CARGO_TARGET, `callgrind.${n}.out`);
    const { stderr } = await run("valgrind", ["--tool=callgrind", `--callgrind-out-file=${out}`, file, String(n)], {
      maxBuffer: 64 << 20,
    });
    const m = /Collected\s*:\s*(\d+)/.exec(stderr);
    if (!m) throw new Error(`no instruction count in callgrind output:\n${stderr.slice(-500)}`);
    return { total: Number(m[1]), out };
  };
  try {
    // The difference between two counts removes the start-up and the warm-up's share.
    const small = await count(iterations);
    const large = await count(iterations * 2);
    const warm = (n) => Math.max(1, Math.floor(n / 20));
    const extra = iterations + (warm(iterations * 2) - warm(iterations));
    return { instructionsPerVerification: Math.round((large.total - small.total) / extra), profile: large.out };
  } catch (err) {
    if (err.code === "ENOENT") return null;
    throw err;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const built = await buildVerifyBenches({ log: console.log });
  console.log("wasm  ", await timeWasm(built.wasm));
  console.log("native", await timeNative(built.native));
  if (process.argv.includes("--callgrind")) console.log("callgrind", await callgrindInstructions(built.native));
}
