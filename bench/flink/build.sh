#!/usr/bin/env bash
# Builds weir's Flink harness (bench/flink: the Nexmark generator port and queries) with Maven.
#   bench/flink/build.sh [OUT]      OUT: default ~/.cache/weir/flink/target (never the repo)
# Writes OUT/weir-flink-nexmark-1.0.jar (the job; Flink "provided") and OUT/classpath.txt (Flink
# 2.3.0's jars from ~/.m2, for local MiniCluster runs: java -cp JAR:$(cat classpath.txt)).
# Maven's repository stays in ~/.m2. Needs Java 17 and Maven (apt: openjdk-17-jdk-headless maven).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$HOME/.cache/weir/flink/target}"
command -v mvn >/dev/null || { echo "bench/flink/build.sh: mvn not found (apt-get install maven openjdk-17-jdk-headless)" >&2; exit 1; }
mkdir -p "$out"
cd "$here"
mvn -q -B -Dweir.flink.out="$out" package dependency:build-classpath \
    -Dmdep.includeScope=test -Dmdep.outputFile="$out/classpath.txt" >"$out/build.log" 2>&1 \
  || { tail -40 "$out/build.log" >&2; echo "bench/flink/build.sh: maven failed (log: $out/build.log)" >&2; exit 1; }
echo "$out/weir-flink-nexmark-1.0.jar"
