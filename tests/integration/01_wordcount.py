"""Integration: 1 job manager + 2 task managers (separate processes), wordcount at -p 4 over a
generated text of 1,000,000 words. Checks against a shell pipeline (tr | sort | uniq -c):
- one output line per word occurrence;
- for every word, the counts written are exactly 1..n where n is the oracle's count (so the highest
  count equals the oracle and no update is lost or duplicated);
- subtasks ran in both task managers (REST placement) and records crossed ZeroMQ (channel metrics);
- no in-progress (hidden) file is left in the output directory."""

import os

from weirtest import EXAMPLES, Cluster, check, check_wordcount_output, gen_text, oracle_counts, run_test

N_WORDS = 1_000_000


def test():
    with Cluster("wordcount", tms=2, slots=2) as c:
        text = os.path.join(c.dir, "input.txt")
        gen_text(text, N_WORDS)
        out = os.path.join(c.dir, "out")
        jobid = c.submit("-p", "4", os.path.join(EXAMPLES, "wordcount.so"), "--input", text, "--output", out)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=600)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")

        # Placement and channel metrics from REST.
        tms = set()
        remote_bytes = 0
        for v in job["vertices"]:
            check(v["parallelism"] == 4, f"vertex {v['name']} has parallelism {v['parallelism']}")
            for st in v["subtasks"]:
                check(st["state"] == "FINISHED", f"subtask {v['name']}#{st['subtask']} is {st['state']}")
                tms.add(st["taskmanager"])
                remote_bytes += st["metrics"]["bytes_out_remote"]
        check(len(tms) == 2, f"subtasks ran on {sorted(tms)}, expected both task managers")
        check(remote_bytes > 0, "no bytes crossed ZeroMQ between task managers")
        print(f"placement: {sorted(tms)}; bytes sent over ZeroMQ: {remote_bytes}")

        hidden = [f for f in os.listdir(out) if f.startswith(".")]
        check(not hidden, f"in-progress files left behind: {hidden}")
        oracle = oracle_counts(text)
        check(sum(oracle.values()) == N_WORDS, f"oracle counted {sum(oracle.values())} words, generator wrote {N_WORDS}")
        lines = check_wordcount_output(out, oracle)
        print(f"{lines} lines, {len(oracle)} distinct words, all counts match the oracle")


run_test(test)
