#!/usr/bin/env bash
# The bert4j vs ONNX Runtime comparison (see README.md): cases a-e in one run, ~10-15 minutes on
# 2 quiet cores. Builds the benchmarks module (and the library it needs) unless --no-build, then
# runs io.bert4j.bench.Compare from the module classpath. Every other argument goes to Compare:
#   --threads N (default 2)  --warmup W  --iters N  --cases abcde  --batches K (default 8)
#   --rss-rounds R (default 3)  --gap-ms G (minimum idle ms before each timed call, default 10;
#   then until the process's other threads are quiet)  --out FILE
# Smoke run: --iters 2 --warmup 1 --batches 1 --rss-rounds 1
# The build's bert4j.cuda default (AUTO) compiles the CUDA kernels wherever nvcc is installed; this
# harness needs only the CPU ones: MVN_FLAGS="-o -Dbert4j.cuda=OFF" skips those minutes.
# Environment: MVN_FLAGS (default -o), JAVA_OPTS (default -Xmx4g), BERT4J_HOME (model cache).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cp_file="$here/target/classpath.txt"

build=1
args=()
for a in "$@"; do
  if [[ "$a" == "--no-build" ]]; then build=0; else args+=("$a"); fi
done

if [[ $build == 1 || ! -f "$cp_file" ]]; then
  # -am builds the library too: the reactor resolves io.bert4j:bert4j to java/target, so nothing
  # has to be installed into ~/.m2. Tests are skipped: this is a benchmark run.
  (cd "$root" && mvn -B -q ${MVN_FLAGS--o} -DskipTests -pl benchmarks -am \
      package dependency:build-classpath -Dmdep.outputFile="$cp_file" -Dmdep.includeScope=runtime)
fi

cd "$root"
exec java ${JAVA_OPTS:--Xmx4g} -cp "$here/target/classes:$(cat "$cp_file")" io.bert4j.bench.Compare "${args[@]}"
