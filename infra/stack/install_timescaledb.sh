#!/usr/bin/env bash
# Builds TimescaleDB (Apache-licensed edition) from Debian 13's source package against the
# local PostgreSQL and installs it. Usage: install_timescaledb.sh CACHE_DIR PG_CONFIG
# The system's apt configuration is left untouched: a private sources list and lists dir.
set -euo pipefail
cache=$1
pg_config=$2
version=2.19.3
mkdir -p "$cache/lists/partial"
cd "$cache"
src=$(ls -d timescaledb-"$version"/ 2>/dev/null || true)
if [ -z "$src" ]; then
  echo "deb-src http://deb.debian.org/debian trixie main" > sources.list
  apt_opts=(-o Dir::Etc::SourceList="$cache/sources.list" -o Dir::Etc::SourceParts=/dev/null
            -o Dir::State::Lists="$cache/lists" -o APT::Sandbox::User=root)
  echo "fetching timescaledb $version source from Debian trixie"
  apt-get "${apt_opts[@]}" update -q
  apt-get "${apt_opts[@]}" source --download-only "timescaledb=$version*" 2>/dev/null \
    || apt-get "${apt_opts[@]}" source --download-only timescaledb
  tar xf timescaledb_*.orig.tar.*
  src=$(ls -d timescaledb-*/ | head -1)
fi
cd "$src"
if [ ! -f build/src/timescaledb.so ] && [ ! -f build/src/timescaledb-"$version".so ]; then
  rm -rf build
  ./bootstrap -DAPACHE_ONLY=ON -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
    -DPG_CONFIG="$pg_config"
  make -C build -j"$(nproc)"
fi
if [ -w "$("$pg_config" --pkglibdir)" ]; then
  make -C build install
else
  echo "built in $PWD/build; installing needs root: sudo make -C $PWD/build install" >&2
  exit 3
fi
