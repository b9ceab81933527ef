"""Zombie task managers, two cases, each with a checkpointed job with HA:
  (a) a task manager running part of the job is frozen with SIGSTOP, declared lost
      (heartbeat.timeout), the job is restored on the two other task managers and finishes there;
      then the frozen one is woken with SIGCONT. It must stop its old tasks before it registers
      again (it comes back with all its slots, the finished job is not disturbed).
  (b) an idle task manager is frozen just before a failover deploys the next attempt onto it (the
      DEPLOYs wait in its socket), is declared lost, the attempt after that runs and finishes
      elsewhere; woken, it must not start the deploys that waited while it was frozen.
In both, the committed output must be exactly the oracle's (tr | sort | uniq -c), and nothing an
old attempt could touch may change after the job ended: the output directory (every file, hidden
ones too: names, sizes, mtimes) is the same a few seconds after SIGCONT as when the job ended."""

import os
import re
import time

from weirtest import (EXAMPLES, Cluster, check, check_wordcount_output, dir_snapshot, gen_text,
                      oracle_counts, run_test)

N_WORDS = 400_000
RATE = 2000  # lines/s over all source subtasks: about 16 s of input, many checkpoints
HB_TIMEOUT_S = 3


def diff(before, after):
    out = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            out.append(f"{name} disappeared")
        elif name not in before:
            out.append(f"{name} appeared ({after[name][0]} bytes)")
        elif before[name] != after[name]:
            out.append(f"{name} changed: {before[name][0]} -> {after[name][0]} bytes, mtime "
                       f"{before[name][1]} -> {after[name][1]}")
    return out


def wait_attempt(c, jobid, above, timeout=120):
    """Waits until the job runs (or finished) an attempt newer than `above`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = c.job(jobid)
        if job["attempt"] > above and job["state"] in ("RUNNING", "FINISHED"):
            return job
        check(job["state"] not in ("FAILED", "CANCELED"), f"job {job['state']}: {job.get('message')}")
        time.sleep(0.05)
    raise AssertionError(f"job {jobid} did not run an attempt above {above} within {timeout} s")


def woken_lines(c, tm_index, offset):
    with open(os.path.join(c.dir, f"taskmanager-{tm_index}.log")) as f:
        f.seek(offset)
        return f.read().splitlines()


def log_size(c, tm_index):
    return os.path.getsize(os.path.join(c.dir, f"taskmanager-{tm_index}.log"))


def case_a():
    with Cluster("zombie", tms=3, slots=2, checkpoints="300ms", ha=True,
                 conf={"heartbeat.timeout": f"{HB_TIMEOUT_S}s"}) as c:
        text = os.path.join(c.dir, "input.txt")
        gen_text(text, N_WORDS, seed=10)
        out = os.path.join(c.dir, "out")
        jobid = c.submit("-p", "4", os.path.join(EXAMPLES, "wordcount.so"), "--input", text,
                         "--output", out, "--rate", str(RATE))
        c.wait_state(jobid, {"RUNNING"}, timeout=60)
        c.wait_checkpoints(jobid, 2)
        # 4 slots over 3 task managers of 2: one hosts two slots, the others one each. Freeze one
        # with a single slot: the other two then have the 4 slots the restored job needs.
        job = c.job(jobid)
        slots = {}
        for v in job["vertices"]:
            for st in v["subtasks"]:
                slots.setdefault(st["taskmanager"], set()).add(st["subtask"])
        victim = next(t for t in sorted(slots) if len(slots[t]) == 1)
        zombie = c.tms[int(victim.split("-")[1])]
        attempt = job["attempt"]
        done_before = c.checkpoints(jobid)["counts"]["completed"]
        print(f"freezing {victim} (pid {zombie.pid}), attempt {attempt}, "
              f"{done_before} checkpoints completed", flush=True)
        c.freeze(zombie)
        frozen_at = time.time()
        c.wait_taskmanager_gone(victim, timeout=HB_TIMEOUT_S + 30)
        print(f"{victim} declared lost after {time.time() - frozen_at:.1f} s", flush=True)
        # restored elsewhere: a newer attempt running on the two others only
        deadline = time.time() + 120
        while time.time() < deadline:
            job = c.job(jobid)
            if job["attempt"] > attempt and job["state"] in ("RUNNING", "FINISHED"):
                break
            check(job["state"] not in ("FAILED", "CANCELED"), f"job {job['state']}: {job.get('message')}")
            time.sleep(0.1)
        check(job["attempt"] > attempt, f"the job was not restored: {job['state']} attempt {job['attempt']}")
        hosts = c.job_taskmanagers(jobid)
        check(victim not in hosts, f"the restored attempt runs on the frozen {victim}: {hosts}")
        print(f"attempt {job['attempt']} restored on {sorted(hosts)}", flush=True)

        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=300)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        check(zombie.poll() is None, f"the frozen {victim} exited")
        ended = dir_snapshot(out)
        committed = sorted(n for n in ended if not n.startswith("."))
        print(f"job FINISHED (attempt {job['attempt']}, {job.get('restarts', 0)} restarts); "
              f"{len(committed)} committed files, {len(ended) - len(committed)} hidden; "
              f"waking {victim}", flush=True)

        log_path = os.path.join(c.dir, f"taskmanager-{victim.split('-')[1]}.log")
        log_offset = os.path.getsize(log_path)
        c.thaw(zombie)
        c.wait_taskmanager_back(victim, timeout=60)
        time.sleep(3)  # whatever the zombie would do after it registered
        after = dir_snapshot(out)
        changes = diff(ended, after)
        check(not changes, f"the output changed after {victim} woke up: " + "; ".join(changes[:10]))
        # Its old tasks ended (final states logged) before it registered again.
        with open(log_path) as f:
            f.seek(log_offset)
            woke = f.read().splitlines()
        ends = [i for i, line in enumerate(woke)
                if re.search(rf"task \S+ \(attempt {attempt}\) (CANCELED|FAILED|FINISHED)", line)]
        registered = [i for i, line in enumerate(woke) if "registered at" in line]
        check(ends and registered, f"{victim}: no old task ended or no registration after SIGCONT:\n"
                                   + "\n".join(woke[-30:]))
        check(max(ends) < registered[0],
              f"{victim} registered before its old tasks stopped:\n" + "\n".join(woke[-30:]))
        print(f"{victim}: {len(ends)} old tasks ended, then it registered again", flush=True)
        tms = {t["id"]: t for t in c.get("/taskmanagers")["taskmanagers"]}
        check(tms[victim]["slots_free"] == 2, f"{victim} came back with {tms[victim]['slots_free']} free slots")
        final = c.job(jobid)
        check(final["state"] == "FINISHED" and final["attempt"] == job["attempt"],
              f"the job changed after {victim} woke up: {final['state']} attempt {final['attempt']}")

        oracle = oracle_counts(text)
        check(sum(oracle.values()) == N_WORDS, "oracle word count differs from the generator's")
        lines = check_wordcount_output(out, oracle)
        print(f"(a) {victim} woke up, stopped its tasks and registered again; output unchanged; "
              f"exactly once: {lines} lines, {len(oracle)} words", flush=True)


def case_b():
    with Cluster("zombie-deploy", tms=2, slots=2, checkpoints="300ms", ha=True,
                 conf={"heartbeat.timeout": f"{HB_TIMEOUT_S}s"}) as c:
        text = os.path.join(c.dir, "input.txt")
        gen_text(text, N_WORDS, seed=11)
        out = os.path.join(c.dir, "out")
        jobid = c.submit("-p", "4", os.path.join(EXAMPLES, "wordcount.so"), "--input", text,
                         "--output", out, "--rate", str(RATE))
        c.wait_state(jobid, {"RUNNING"}, timeout=60)
        c.wait_checkpoints(jobid, 2)
        attempt = c.job(jobid)["attempt"]
        # tm-2 joins idle and is frozen; then tm-1 dies: the next attempt is deployed on tm-0 and
        # the frozen tm-2, which the job manager still believes alive.
        zombie = c.start_taskmanager()
        c.wait_taskmanagers(3)
        c.freeze(zombie)
        frozen_log = log_size(c, 2)
        c.kill9(c.tms[1])
        job = wait_attempt(c, jobid, attempt)
        check("tm-2" in c.job_taskmanagers(jobid),
              f"attempt {job['attempt']} was not deployed on the frozen tm-2: {c.job_taskmanagers(jobid)}")
        print(f"(b) tm-1 killed, attempt {job['attempt']} deployed on tm-0 and the frozen tm-2",
              flush=True)
        c.start_taskmanager(index=1)
        c.wait_taskmanager_gone("tm-2", timeout=HB_TIMEOUT_S + 30)
        job = wait_attempt(c, jobid, job["attempt"])
        hosts = c.job_taskmanagers(jobid)
        check("tm-2" not in hosts, f"attempt {job['attempt']} runs on the frozen tm-2: {hosts}")
        print(f"(b) tm-2 declared lost; attempt {job['attempt']} runs on {sorted(hosts)}", flush=True)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=300)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        ended = dir_snapshot(out)
        c.thaw(zombie)
        c.wait_taskmanager_back("tm-2", timeout=60)
        time.sleep(3)
        changes = diff(ended, dir_snapshot(out))
        check(not changes, "the output changed after tm-2 woke up: " + "; ".join(changes[:10]))
        woke = woken_lines(c, 2, frozen_log)
        started = [line for line in woke if "deploying job" in line]
        check(not started, "tm-2 started deploys that waited while it was frozen:\n" + "\n".join(woke[-30:]))
        refused = [line for line in woke if "is registering again" in line]
        check(refused, "tm-2 got no deploy while frozen (nothing to refuse):\n" + "\n".join(woke[-30:]))
        oracle = oracle_counts(text)
        lines = check_wordcount_output(out, oracle)
        print(f"(b) tm-2 woke up and refused the {len(refused)} deploys that waited; output "
              f"unchanged; exactly once: {lines} lines", flush=True)


def test():
    case_a()
    case_b()


run_test(test)
