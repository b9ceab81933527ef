"""Integration: authenticated control and data planes (ZeroMQ CURVE, docs/security.md).

A cluster with a cluster key (`weir keygen`, security.curve.key-file on the job manager and both
task managers) runs wordcount at -p 4 over 3,000,000 words while tests/tools/weir_forge.c attacks
it from three kinds of ZeroMQ peers:
- no CURVE at all, and CURVE with a key pair of its own that knows the cluster's public key: they
  cannot deliver anything, to a data port or to the job manager (the ZAP handler refuses the
  second; the task managers' and the job manager's logs say so);
- a cluster member that lies: with the cluster key but a routing id that is no channel's peer,
  300,000 rounds of data frames and credits for the job's real channel keys and for random ones to
  each task manager (dropped: a frame is accepted only from its channel's peer; nothing is
  allocated for unknown channels, so the task managers' RSS grows by less than 16 MiB), and
  TASK_STATE FAILED / HEARTBEAT messages naming task manager tm-0 in their body from routing id
  "forger" (dropped: a task manager is its connection's routing id).
The forgers start together once the job is RUNNING (the test checks the job ended after they
started). The job must end FINISHED without restarts, with output exactly the oracle's
(tr | sort | uniq -c, as 01_wordcount)."""

import os
import subprocess
import time

from weirtest import BUILD, EXAMPLES, Cluster, check, check_wordcount_output, gen_text, oracle_counts, proc_rss_kib, run_test

N_WORDS = 3_000_000
ROUNDS = 300_000
FORGE = os.path.join(BUILD, "tests", "weir-forge")


def forge(*args):
    return subprocess.Popen([FORGE] + [str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_all(procs):
    for p in procs:
        _, err = p.communicate(timeout=300)
        check(p.returncode == 0, f"weir-forge {' '.join(p.args[1:])} exited {p.returncode}: {err}")


def test():
    # Under AddressSanitizer every freed block waits in a quarantine (256 MiB by default) before it
    # is reused, so the RSS of a task manager that frees each dropped frame grows anyway; a small
    # quarantine makes RSS measure what is kept, as in a release build.
    opts = os.environ.get("ASAN_OPTIONS", "")
    os.environ["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "quarantine_size_mb=4"
    with Cluster("curve", tms=2, slots=2, curve=True) as c:
        key = c.curve_key_file
        check(os.stat(key).st_mode & 0o777 == 0o600, "weir keygen did not write a 0600 file")
        text = os.path.join(c.dir, "input.txt")
        gen_text(text, N_WORDS)
        out = os.path.join(c.dir, "out")
        jobid = c.submit("-p", "4", os.path.join(EXAMPLES, "wordcount.so"), "--input", text, "--output", out)
        c.wait_state(jobid, {"RUNNING"}, timeout=120)
        tms = c.get("/taskmanagers")["taskmanagers"]
        check(len(tms) == 2, f"{len(tms)} task managers registered with CURVE, expected 2")
        rpc = f"tcp://127.0.0.1:{c.rpc_port}"

        # every forger at once, while the job runs
        t0_ms = int(time.time() * 1000)
        procs = []
        for tm in tms:
            for mode in ("none", f"wrong:{key}"):
                procs.append(forge("data", tm["data_address"], 20_000, mode, tm["data_address"], jobid))
            procs.append(forge("data", tm["data_address"], ROUNDS, f"member:{key}", "tcp://forger:1", jobid))
        for mode in ("none", f"wrong:{key}"):
            procs.append(forge("control", rpc, 2_000, mode, "tm-0", "tm-0", jobid))
        procs.append(forge("control", rpc, 2_000, f"member:{key}", "forger", "tm-0", jobid))
        wait_all(procs)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=600)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        check(job["end_time"] > t0_ms, "the job ended before the forgers started")
        print(f"forgers started {job['end_time'] - t0_ms} ms before the job ended")
        check(job["restarts"] == 0, f"the job restarted {job['restarts']} times")

        # Memory, measured on idle task managers (a running job's own state would grow RSS too):
        # two equal rounds of forged frames and credits for the finished job's channel keys and
        # random ones; a leak per frame grows RSS in the second round as much as in the first, a
        # warm-up (allocator caches, ZeroMQ's buffers) only in the first.
        def forge_round():
            wait_all([forge("data", tm["data_address"], ROUNDS // 2, f"member:{key}", "tcp://forger:1",
                            jobid) for tm in tms])
            return [proc_rss_kib(p.pid) for p in c.tms]
        rss0 = [proc_rss_kib(p.pid) for p in c.tms]
        rss1 = forge_round()
        rss2 = forge_round()
        for i in range(len(c.tms)):
            print(f"task manager {i}: RSS {rss0[i]} KiB -> {rss1[i]} KiB -> {rss2[i]} KiB after two "
                  f"rounds of {ROUNDS // 2} forged frames and credits")
            check(rss2[i] - rss1[i] < 4 * 1024,
                  f"task manager {i} grew by {rss2[i] - rss1[i]} KiB in the second round of forged "
                  f"frames (a leak)")
        logs = c.log_tail(lines=100000)
        check("refused a ZeroMQ peer" in logs, "no ZAP refusal logged")
        check("names task manager tm-0 in its body: dropped" in logs,
              "the job manager did not log the forged control messages")
        check("forged failure" not in logs, "a forged task failure was acted on")

        oracle = oracle_counts(text)
        lines = check_wordcount_output(out, oracle)
        print(f"{lines} lines, {len(oracle)} distinct words, all counts match the oracle")


run_test(test)
