"""Chaos: wordcount over >= 2,000,000 words (10,000,000 with WEIR_CHAOS_SIZE=large, i.e.
cmake -DWEIR_CHAOS_SIZE=large) with checkpoints every 500 ms and a throttled source, on three task
managers, while this script injects faults at random moments: kill -9 of a random task manager
(and of the job manager once, with HA on), a replacement with the same configuration started each
time; and SIGSTOP of a random task manager for longer than heartbeat.timeout, so that it is
declared lost while alive and the job is restored on the other two, then SIGCONT: the woken
zombie must stop its old tasks and register again without disturbing the running attempt. At
least 5 kills (15 large) and 2 freezes (4 large), and a new checkpoint completes between two faults
so the job makes progress. The job must FINISH and the committed output must equal the oracle
exactly: one line per word occurrence, no duplicate, every count 1..n (tr | sort | uniq -c).
Prints the seed (set WEIR_TEST_CHAOS_SEED to replay one), the faults, the restores and the faults
by kind."""

import os

from chaoslib import wordcount_chaos
from weirtest import run_test


def test():
    wordcount_chaos("chaos", os.environ.get("WEIR_CHAOS_SIZE") == "large")


run_test(test)
