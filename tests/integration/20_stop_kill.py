"""Stop-with-savepoint under kills, exactly once (docs/savepoints.md, "Stop with a savepoint":
a failure after `_metadata` is durable restarts the job from the savepoint). wordcount (throttled
file source -> split -> key_by -> count -> the exactly-once file sink) with HA on, two cases:

 (a) the job manager runs with debug.kill-at=jm-after-savepoint: `weir stop` writes the
     savepoint's _metadata and HA pointer, then the job manager SIGKILLs itself before the stop's
     NOTIFY final (nothing committed at the savepoint yet; what is committed is a consistent
     prefix). A new job manager (no kill point, same HA directory and ports) is started while
     `weir stop` still polls (it rides out 30 s of an unreachable job manager): the new one does
     not know the request and `weir stop` exits non-zero saying so. The job is restored from
     the savepoint (REST latest.restored.path is its directory, is_savepoint) and runs on (a
     checkpoint completes); `weir stop` again succeeds; the committed output is a consistent
     prefix, longer than at the kill; `weir run -s` at another parallelism runs to the end: the
     output equals the oracle exactly.
 (b) one of the two task managers runs with debug.kill-at=notify-before-commit: it dies when it
     receives the stop's NOTIFY final, before its sink subtasks commit (the other task manager's
     subtasks may commit: the restore must commit the rest once, not the whole again). Periodic
     checkpoints are off (interval 1 h) so that the stop's NOTIFY final is that task manager's
     first notify and so its first hit of the kill point (runtime/task/checkpoint.c
     weir__task_on_notify hits it for every notify, the stop's final one included). `weir stop`
     exits non-zero saying why; the job restarts from the savepoint (latest.restored.path) on a
     replacement task manager and runs on; `weir stop` again succeeds (consistent prefix); resumed
     at another parallelism to the end: exactly the oracle.

The oracle is tr | sort | uniq -c (weirtest.oracle_counts); committed output is read with
weirtest.read_word_updates (non-hidden part files only)."""

import glob
import os
import subprocess
import time

from weirtest import (BIN, EXAMPLES, Cluster, TestFailure, check, check_word_prefix, check_wordcount_output,
                      gen_text, oracle_counts, read_word_updates, run_test, wait_exit)

N_WORDS = 40_000  # about 4,600 lines
RATE = 400  # lines per second over all source subtasks: about 12 s of input per case
PLUGIN = os.path.join(EXAMPLES, "wordcount.so")


def prepare(c, seed):
    text = os.path.join(c.dir, "input.txt")
    gen_text(text, N_WORDS, seed=seed)
    oracle = oracle_counts(text)
    check(sum(oracle.values()) == N_WORDS, f"oracle counted {sum(oracle.values())} words")
    out = os.path.join(c.dir, "out")
    target = os.path.join(c.dir, "my-savepoints")
    os.makedirs(target)
    return oracle, out, target, [PLUGIN, "--input", text, "--output", out, "--rate", str(RATE)]


def committed_prefix(out, oracle, what, at_least):
    """The committed output so far: per word the counts 1..k, and strictly between at_least lines
    and all (the stop fell mid-stream)."""
    seen, lines = read_word_updates(out)
    n = check_word_prefix(seen, oracle, "lines")
    check(n == lines, f"{what}: {lines} lines but {n} counted")
    total = sum(oracle.values())
    check(at_least < lines < total, f"{what}: {lines} committed lines of {total} (wanted more than "
                                    f"{at_least} and fewer than all: the stop must fall mid-stream)")
    print(f"{what}: {lines} of {total} lines committed, every word's counts 1..k", flush=True)
    return lines


def the_savepoint(target):
    """The one savepoint directory (with _metadata) the killed stop left in target."""
    found = [d for d in glob.glob(os.path.join(target, "savepoint-*")) if os.path.isfile(os.path.join(d, "_metadata"))]
    check(len(found) == 1, f"expected one complete savepoint in {target}, found {found} "
                           f"(entries: {os.listdir(target)})")
    return found[0]


def wait_restored_from(c, jobid, sp, timeout=90):
    """Waits until the job is RUNNING again, restored from the savepoint directory sp (REST
    GET /jobs/{id}/checkpoints latest.restored.path)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = c.checkpoints(jobid)
            restored = (last.get("latest") or {}).get("restored") or {}
            if restored.get("path") and c.job(jobid)["state"] == "RUNNING":
                path = restored["path"]
                check(os.path.realpath(path.removesuffix("/_metadata")) == os.path.realpath(sp),
                      f"job {jobid} restored from {path}, not from the stop's savepoint {sp}")
                check(restored.get("is_savepoint") is True, f"job {jobid}: restored {restored}")
                return
        except (OSError, KeyError):
            pass
        time.sleep(0.2)
    raise TestFailure(f"job {jobid} not RUNNING restored from {sp} after {timeout} s: {last}\n{c.log_tail()}")


def parallelism_of(c, jobid):
    return {v["parallelism"] for v in c.job(jobid)["vertices"]}


def finish(c, sp, args, oracle, out, p, lines_before):
    job = c.resume(sp, *args, p=p)
    got = c.wait_state(job, {"FINISHED", "FAILED", "CANCELED"}, timeout=180)
    check(got["state"] == "FINISHED", f"resumed job ended {got['state']}: {got.get('message')}")
    check(parallelism_of(c, job) == {p}, f"resumed job: parallelism {parallelism_of(c, job)}, asked {p}")
    hidden = [f for f in os.listdir(out) if f.startswith(".")]
    check(not hidden, f"in-progress files left behind: {hidden}")
    lines = check_wordcount_output(out, oracle)
    check(lines > lines_before, f"the resumed job added nothing ({lines} lines)")
    return lines


def case_jm_killed():
    t0 = time.time()
    with Cluster("stop-kill-jm", tms=2, slots=2, checkpoints="1s", ha=True,
                 conf={"debug.kill-at": "jm-after-savepoint"}) as c:
        oracle, out, target, args = prepare(c, seed=20)
        job = c.submit("-p", "2", *args)
        c.wait_checkpoints(job, 2)

        # `weir stop` keeps polling through 30 s of an unreachable job manager (cli.c), so it is
        # still waiting when the new job manager is up: that one does not know the request
        stop = subprocess.Popen([os.path.join(BIN, "weir"), "-m", c.address, "stop", "--savepointPath",
                                 target, job], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **c.client_env()})
        try:
            wait_exit(c.jm, "job manager with debug.kill-at=jm-after-savepoint", timeout=60)
            sp = the_savepoint(target)
            seen, before = read_word_updates(out) if os.path.isdir(out) else ({}, 0)
            check_word_prefix(seen, oracle, "lines")  # the periodic checkpoints' commits only
            print(f"(a) job manager killed after savepoint {sp} at {time.time() - t0:.1f} s; "
                  f"{before} lines committed", flush=True)
            del c.conf["debug.kill-at"]
            c.restart_jobmanager()
            stdout, stderr = stop.communicate(timeout=120)
        finally:
            if stop.poll() is None:
                stop.kill()
                stop.wait()
        msg = (stdout + stderr).strip()
        check(stop.returncode != 0, f"`weir stop` exited 0 although the job manager was killed before "
                                    f"the stop's commit:\n{msg}")
        check(msg and "Savepoint completed" not in msg, f"`weir stop` failed without saying why:\n{msg}")
        print(f"(a) weir stop exited {stop.returncode}: {msg.splitlines()[-1]}", flush=True)
        c.wait_taskmanagers(2, timeout=60)
        wait_restored_from(c, job, sp)
        print(f"(a) restored at {time.time() - t0:.1f} s", flush=True)
        c.wait_checkpoints(job, 1, timeout=60)  # runs on: a checkpoint after the restore
        check(c.job(job)["state"] == "RUNNING", f"job {job} is {c.job(job)['state']} after the restore")

        sp2 = c.stop_with_savepoint(job, target)
        check(sp2 != sp, f"the second stop reused the savepoint directory {sp}")
        lines = committed_prefix(out, oracle, f"(a) stopped after the restore, savepoint {sp2}", before)
        total = finish(c, sp2, args, oracle, out, 3, lines)
        print(f"(a) resumed at -p 3 to the end: {total} lines, exactly the oracle "
              f"({time.time() - t0:.1f} s)", flush=True)


def case_tm_killed():
    t0 = time.time()
    with Cluster("stop-kill-tm", tms=1, slots=2, checkpoints="1h", ha=True) as c:
        killer = c.start_taskmanager(extra={"debug.kill-at": "notify-before-commit"})
        c.wait_taskmanagers(2)
        oracle, out, target, args = prepare(c, seed=21)
        job = c.submit("-p", "4", *args)
        c.wait_state(job, {"RUNNING"}, timeout=60)
        hosts = c.job_taskmanagers(job)
        check(hosts == {"tm-0", "tm-1"}, f"job {job} runs on {hosts}, wanted both task managers")
        time.sleep(3)  # mid-stream

        r = c.cli("stop", "--savepointPath", target, job, timeout=120)
        wait_exit(killer, "task manager with debug.kill-at=notify-before-commit", timeout=10)
        msg = (r.stdout + r.stderr).strip()
        check(r.returncode != 0, f"`weir stop` exited 0 although a task manager died before "
                                 f"committing:\n{msg}")
        check(msg and "Savepoint completed" not in msg, f"`weir stop` failed without saying why:\n{msg}")
        print(f"(b) weir stop exited {r.returncode}: {msg.splitlines()[-1]}", flush=True)
        sp = the_savepoint(target)
        seen, before = read_word_updates(out) if os.path.isdir(out) else ({}, 0)
        check_word_prefix(seen, oracle, "lines")  # what tm-0's sinks committed, if anything
        print(f"(b) {before} lines committed when tm-1 died", flush=True)
        check(sp in msg, f"`weir stop` does not name the savepoint {sp} the job restores from:\n{msg}")

        c.start_taskmanager(index=1)  # a replacement without the kill point
        wait_restored_from(c, job, sp)
        time.sleep(2)  # runs on
        check(c.job(job)["state"] == "RUNNING", f"job {job} is {c.job(job)['state']} after the restore")

        sp2 = c.stop_with_savepoint(job, target)
        check(sp2 != sp, f"the second stop reused the savepoint directory {sp}")
        lines = committed_prefix(out, oracle, f"(b) stopped after the restore, savepoint {sp2}", before)
        total = finish(c, sp2, args, oracle, out, 2, lines)
        print(f"(b) resumed at -p 2 to the end: {total} lines, exactly the oracle "
              f"({time.time() - t0:.1f} s)", flush=True)


def test():
    case_jm_killed()
    case_tm_killed()


run_test(test)
