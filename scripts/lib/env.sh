# Shared environment for the project's scripts. Sourced, never run.
# Paths are relative to the project root; every script cds there first.
export TOOLS_DIR="$PWD/.tools"
export WORKER_BUILD_VERSION=0.8.7
export PATH="$PWD/node_modules/.bin:$TOOLS_DIR/bin:$HOME/.cargo/bin:$PATH"

# worker-build would otherwise download wasm-bindgen and wasm-opt from the internet.
export WASM_BINDGEN_BIN="$TOOLS_DIR/bin/wasm-bindgen"
export ESBUILD_BIN="$PWD/node_modules/.bin/esbuild"
export WASM_OPT_BIN="$PWD/node_modules/.bin/wasm-opt"

# wrangler makes no outside lookups in local mode with these.
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export WRANGLER_HIDE_BANNER=true
export NO_UPDATE_NOTIFIER=1
