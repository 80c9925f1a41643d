#!/usr/bin/env bash
# Build the web trading UI (web/) into web/dist: `npm ci` from the lockfile, then the type
# check (tsc --noEmit), the unit tests (Vitest) and the production build (Vite).
# Skips each step whose inputs did not change since it last succeeded, so a repeated
# `make web` takes well under a second. FORCE=1 redoes everything.
set -euo pipefail
cd "$(dirname "$0")/../web"

say() { echo "==> web: $*"; }
die() { echo "web: error: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
  die "Node.js (18 or newer) and npm are needed to build the web UI: on Debian, 'apt-get install -y nodejs npm' (or use nodesource's Node 20)"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 18 ] || die "Node.js $(node --version) is too old: the web UI needs 18 or newer"
[ -f package-lock.json ] || die "web/package-lock.json is missing: it is committed; restore it with git"

digest() { sha1sum "$@" | sha1sum | cut -c1-16; }
deps_hash=$(digest package.json package-lock.json)
build_inputs=$(find src index.html package.json package-lock.json tsconfig.json vite.config.ts -type f | LC_ALL=C sort)
# shellcheck disable=SC2086 # file names in web/ have no spaces
build_hash=$(digest $build_inputs)
deps_stamp=node_modules/.tradecore-deps-$deps_hash
build_stamp=node_modules/.tradecore-build-$build_hash

if [ "${FORCE:-0}" != 1 ] && [ -f "$deps_stamp" ]; then
  :
else
  say "installing the npm packages from package-lock.json (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error ||
    die "'npm ci' failed (see above): is the npm registry reachable, and does package-lock.json match package.json?"
  rm -f node_modules/.tradecore-deps-* && touch "$deps_stamp"
fi

if [ "${FORCE:-0}" != 1 ] && [ -f "$build_stamp" ] && [ -f dist/index.html ]; then
  say "up to date (web/dist)"
  exit 0
fi
say "type check (tsc --noEmit)"
npx --no-install tsc --noEmit || die "the TypeScript type check failed (see above)"
say "unit tests (vitest)"
npx --no-install vitest run --reporter=dot || die "the web unit tests failed (see above)"
say "production build (vite) into web/dist"
npx --no-install vite build --logLevel warn || die "the Vite build failed (see above)"
[ -f dist/index.html ] || die "the build finished without web/dist/index.html"
rm -f node_modules/.tradecore-build-* && touch "$build_stamp"
say "built web/dist"
