"""The Flink harness for the bench tests: builds bench/flink's job jar (bench/flink/build.sh,
Maven) into a directory of the test's choosing and returns the jar and its classpath."""

import os
import subprocess

from weirtest import SRC, check


def build(out_dir):
    """Builds the job jar into @p out_dir; returns (jar, classpath: the jar and Flink's jars)."""
    r = subprocess.run([os.path.join(SRC, "bench", "flink", "build.sh"), out_dir], capture_output=True,
                       text=True, timeout=900)
    check(r.returncode == 0, f"bench/flink/build.sh failed:\n{r.stdout}{r.stderr}")
    jar = r.stdout.strip().splitlines()[-1]
    with open(os.path.join(out_dir, "classpath.txt")) as f:
        return jar, jar + ":" + f.read().strip()
