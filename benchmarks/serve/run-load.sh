#!/usr/bin/env bash
# Load benchmark of `bert4j serve` on loopback (see io.bert4j.bench.ServeLoad): closed-loop clients
# at concurrency 1, 8 and 64 with SST-2 sentences, dynamic batching on and off, then resident
# memory after 10,000 and 100,000 requests. Builds the benchmarks module unless --no-build; other
# arguments go to ServeLoad (--concurrency 1,8,64 --seconds 20 --warmup 3 --rss-requests 100000
# --out FILE; --server-jvm-opt=OPT, repeatable, adds a JVM option to the server's child JVM, e.g.
# --server-jvm-opt=-Dbert4j.packedLinearMaxRows=0). Takes about 13 minutes with the defaults on 2 cores (most of it the 100,000-request memory run).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cp_file="$root/benchmarks/target/classpath.txt"
build=1
args=()
for a in "$@"; do
  if [[ "$a" == "--no-build" ]]; then build=0; else args+=("$a"); fi
done
if [[ $build == 1 || ! -f "$cp_file" ]]; then
  (cd "$root" && mvn -B -q ${MVN_FLAGS--o} -DskipTests -pl benchmarks -am \
      package dependency:build-classpath -Dmdep.outputFile="$cp_file" -Dmdep.includeScope=runtime)
fi
cd "$root"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
exec java -Xmx1g -Dbert4j.shared.data="$root/../shared/data" \
  -cp "$root/benchmarks/target/classes:$(cat "$cp_file")" io.bert4j.bench.ServeLoad "${args[@]}"
