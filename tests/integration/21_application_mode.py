"""Application mode and the shutdown savepoint (jobmanager/README.md, "Application mode and
shutdown"), with real processes: a job manager started with -D application.plugin=wordcount.so
and the job's arguments after `--` submits that job itself (through the `weir` CLI it spawns, with
a job id derived from high-availability.cluster-id and execution.savepoint.path) and exits when the
job ended. wordcount reads a throttled file (a few seconds of input) and writes with the
exactly-once file sink; checkpoints every 500 ms, HA on.

 (a) kill -9 of the application job manager mid-run; the same command again recovers the same job
     id from HA (the log says so, nothing is submitted a second time, GET /jobs lists one job),
     the job finishes, the job manager exits 0 and the committed output equals the oracle
     (tr | sort | uniq -c) exactly; <ha>/results/<id>.json says FINISHED; the same command once
     more exits 0 at once with "already reached FINISHED". Meanwhile `weir run --job-id <that id>`
     is refused (409 "job <id> already exists", exit 1) and a malformed --job-id exits 2.
 (b) jobmanager.shutdown.savepoint=true: SIGTERM mid-run stops the job with a savepoint into
     state.savepoints.dir, the job manager exits 0, its log names the savepoint and so does
     <ha>/results/<id>.json; the committed output is a consistent prefix. A new application job
     manager with execution.savepoint.path=<that savepoint> and another parallelism.default (so
     another derived job id) finishes the job: the combined committed output is exact.
 (c) bad configurations exit 2 with one line naming the key; --help of both daemons exits 0
     with the usage on stdout; a plugin the spawned CLI cannot load ends the job manager with
     exit 1 and one line naming the plugin and the CLI's exit code.
 (d) without jobmanager.shutdown.savepoint SIGTERM exits 0 at once, the job stays in HA and no
     savepoint is taken; the same command again resumes it (last-state) to an exact end."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error

from weirtest import (BIN, EXAMPLES, Cluster, TestFailure, check, check_word_prefix, check_wordcount_output,
                      gen_text, oracle_counts, read_word_updates, run_test, wait_exit)

N_WORDS = 16_000  # about 1,850 lines
RATE = 300  # lines per second over all source subtasks: about 6 s of input per case
PLUGIN = os.path.join(EXAMPLES, "wordcount.so")
JM = os.path.join(BIN, "weir-jobmanager")


def derived_id(cluster_id, savepoint=""):
    """The application job id by the documented rule, computed independently."""
    return hashlib.sha256(f"weir-application\n{cluster_id}\n{savepoint}".encode()).hexdigest()[:32]


class AppCluster(Cluster):
    """A Cluster whose job manager runs in application mode: `weir-jobmanager -D... -- job_args`."""

    def __init__(self, name, job_args, **kw):
        self.job_args = job_args
        super().__init__(name, **kw)

    def jobmanager_args(self):
        return ["--"] + self.job_args

    def jm_log(self):
        with open(os.path.join(self.dir, "jobmanager.log")) as f:
            return f.read()

    def wait_job(self, jobid, timeout=60):
        """Waits until the job manager lists the job; returns it."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            check(self.jm.poll() is None, f"job manager exited with {self.jm.returncode}:\n{self.log_tail()}")
            try:
                return self.job(jobid)
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        raise TestFailure(f"job {jobid} not listed after {timeout} s:\n{self.log_tail()}")

    def wait_jm_exit(self, what, timeout=90):
        wait_exit(self.jm, what, timeout=timeout)
        return self.jm.returncode


def result_record(c, jobid):
    with open(os.path.join(c.conf["high-availability.storageDir"], "results", f"{jobid}.json")) as f:
        return json.load(f)


def prepare(work, seed):
    text = os.path.join(work, f"input-{seed}.txt")
    gen_text(text, N_WORDS, seed=seed)
    oracle = oracle_counts(text)
    check(sum(oracle.values()) == N_WORDS, f"oracle counted {sum(oracle.values())} words")
    out = os.path.join(work, f"out-{seed}")
    return oracle, out, ["--input", text, "--output", out, "--rate", str(RATE)]


def case_kill_and_resume(work):
    oracle, out, args = prepare(work, seed=21)
    cluster_id = "app-a"
    jobid = derived_id(cluster_id)
    conf = {"application.plugin": PLUGIN, "high-availability.cluster-id": cluster_id,
            "parallelism.default": "2", "rest.auth.token": "app-mode-token-0123456789abcdef"}
    with AppCluster("app-kill", args, tms=2, slots=2, checkpoints="500ms", ha=True, conf=conf) as c:
        job = c.wait_job(jobid)
        check(job["state"] in ("CREATED", "RUNNING"), f"application job is {job['state']}")
        c.wait_checkpoints(jobid, 2, timeout=60)
        log1 = c.jm_log()
        check("submitting application job " + jobid in log1, f"no submission line:\n{log1[-3000:]}")
        check(conf["rest.auth.token"] not in log1, "the REST token appears in the job manager's log")
        # weir run --job-id: the id of the running application job is refused (409), a bad one is
        # a usage error
        r = c.cli("run", "-d", "--job-id", jobid, PLUGIN, *args)
        check(r.returncode == 1 and f"job {jobid} already exists" in r.stderr,
              f"weir run --job-id {jobid}: exit {r.returncode}: {r.stderr}")
        r = c.cli("run", "-d", "--job-id", "XYZ", PLUGIN, *args)
        check(r.returncode == 2 and "--job-id needs 32 lowercase hex digits, got 'XYZ'" in r.stderr,
              f"weir run --job-id XYZ: exit {r.returncode}: {r.stderr}")
        c.kill9(c.jm)
        seen, before = read_word_updates(out) if os.path.isdir(out) else ({}, 0)
        check_word_prefix(seen, oracle, "lines")
        check(before < N_WORDS, f"the job had finished before the kill ({before} lines)")
        print(f"(a) job manager killed with {before} lines committed", flush=True)

        c.start_jobmanager()
        c.wait_job(jobid)
        code = c.wait_jm_exit("the recovered application job manager", timeout=90)
        log2 = c.jm_log()
        check(code == 0, f"the application job manager exited {code}:\n{log2[-3000:]}")
        check(f"application job {jobid} recovered from HA" in log2,
              f"no recovery line in the second job manager's log:\n{log2[-3000:]}")
        check("submitting application job" not in log2, f"the job was submitted again:\n{log2[-3000:]}")
        lines = check_wordcount_output(out, oracle)
        rec = result_record(c, jobid)
        check(rec["id"] == jobid and rec["state"] == "FINISHED" and "savepoint" not in rec,
              f"result record {rec}")
        check(not os.path.exists(os.path.join(c.conf["high-availability.storageDir"], "jobs", jobid)),
              "the HA entry of the finished job is still there")
        print(f"(a) resumed from HA, FINISHED, exit 0, {lines} lines exact", flush=True)

        c.start_jobmanager(wait=False)
        t0 = time.time()
        code = c.wait_jm_exit("the third application job manager", timeout=30)
        log3 = c.jm_log()
        check(code == 0, f"third job manager exited {code}:\n{log3[-2000:]}")
        want = f"application job {jobid} already reached FINISHED ("
        check(want in log3 and "nothing to run" in log3, f"no {want!r} line:\n{log3[-2000:]}")
        print(f"(a) third start: exit 0 after {time.time() - t0:.1f} s, 'already reached FINISHED'", flush=True)


def case_shutdown_savepoint(work):
    oracle, out, args = prepare(work, seed=22)
    cluster_id = "app-b"
    jobid = derived_id(cluster_id)
    conf = {"application.plugin": PLUGIN, "high-availability.cluster-id": cluster_id,
            "parallelism.default": "2", "jobmanager.shutdown.savepoint": "true",
            "jobmanager.shutdown.savepoint-timeout": "60s"}
    with AppCluster("app-sigterm", args, tms=2, slots=2, checkpoints="500ms", ha=True, savepoints=True,
                    conf=conf) as c:
        c.wait_job(jobid)
        c.wait_checkpoints(jobid, 2, timeout=60)
        os.kill(c.jm.pid, signal.SIGTERM)
        code = c.wait_jm_exit("the application job manager after SIGTERM", timeout=60)
        log = c.jm_log()
        check(code == 0, f"job manager exited {code} after SIGTERM:\n{log[-3000:]}")
        m = re.search(rf"shutdown: job {jobid} stopped with savepoint (\S+)", log)
        check(m, f"no 'shutdown: job {jobid} stopped with savepoint' line:\n{log[-3000:]}")
        sp = m.group(1)
        check(sp.startswith(c.conf["state.savepoints.dir"] + "/") and os.path.isfile(os.path.join(sp, "_metadata")),
              f"savepoint {sp} is not a complete savepoint in state.savepoints.dir")
        rec = result_record(c, jobid)
        check(rec["state"] == "FINISHED" and rec.get("savepoint") == sp, f"result record {rec}, savepoint {sp}")
        seen, before = read_word_updates(out)
        n = check_word_prefix(seen, oracle, "lines")
        check(0 < before < N_WORDS and n == before, f"{before} lines committed at the stop (of {N_WORDS})")
        print(f"(b) SIGTERM: stopped with savepoint {sp}, {before} lines committed, exit 0", flush=True)

        c.conf["execution.savepoint.path"] = sp
        c.conf["parallelism.default"] = "3"
        jobid2 = derived_id(cluster_id, sp)
        check(jobid2 != jobid, "the derived job id did not change with the savepoint")
        c.start_jobmanager()
        job = c.wait_job(jobid2)
        code = c.wait_jm_exit("the application job manager started from the savepoint", timeout=90)
        log = c.jm_log()
        check(code == 0, f"job manager from the savepoint exited {code}:\n{log[-3000:]}")
        check({v["parallelism"] for v in job["vertices"]} == {3}, f"parallelism {job['vertices']}")
        lines = check_wordcount_output(out, oracle)
        check(lines > before, "the job from the savepoint added nothing")
        check(result_record(c, jobid2)["state"] == "FINISHED", "no FINISHED result record of the upgrade")
        print(f"(b) upgraded from the savepoint at parallelism 3 as job {jobid2}: {lines} lines exact", flush=True)


def case_sigterm_last_state(work):
    """Without jobmanager.shutdown.savepoint SIGTERM exits at once (0) and leaves the job in HA
    (last-state); the same command again resumes it from its latest checkpoint to an exact end."""
    oracle, out, args = prepare(work, seed=23)
    cluster_id = "app-d"
    jobid = derived_id(cluster_id)
    conf = {"application.plugin": PLUGIN, "high-availability.cluster-id": cluster_id,
            "parallelism.default": "2", "state.savepoints.dir": os.path.join(work, "unused-savepoints")}
    with AppCluster("app-last-state", args, tms=2, slots=2, checkpoints="500ms", ha=True, conf=conf) as c:
        c.wait_job(jobid)
        c.wait_checkpoints(jobid, 2, timeout=60)
        os.kill(c.jm.pid, signal.SIGTERM)
        code = c.wait_jm_exit("the application job manager after SIGTERM", timeout=10)
        log = c.jm_log()
        check(code == 0, f"job manager exited {code} after SIGTERM:\n{log[-2000:]}")
        ha = c.conf["high-availability.storageDir"]
        check(os.path.isfile(os.path.join(ha, "jobs", jobid, "job.json")), "SIGTERM removed the job's HA entry")
        check(not os.path.exists(os.path.join(ha, "results", f"{jobid}.json")), "SIGTERM wrote a result record")
        check("shutdown: job" not in log and not os.path.exists(conf["state.savepoints.dir"]),
              "a savepoint was taken without jobmanager.shutdown.savepoint")
        seen, before = read_word_updates(out) if os.path.isdir(out) else ({}, 0)
        check_word_prefix(seen, oracle, "lines")
        c.start_jobmanager()
        c.wait_job(jobid)
        code = c.wait_jm_exit("the application job manager after the SIGTERM'd one", timeout=90)
        log = c.jm_log()
        check(code == 0 and f"application job {jobid} recovered from HA" in log,
              f"exit {code}, no recovery line:\n{log[-3000:]}")
        lines = check_wordcount_output(out, oracle)
        print(f"(d) SIGTERM without shutdown savepoint: exit 0, HA kept ({before} lines committed); "
              f"resumed to {lines} lines exact", flush=True)


def expect_config_error(argv, want, tmp):
    r = subprocess.run([JM] + argv, capture_output=True, text=True, timeout=30, cwd=tmp)
    err = r.stderr.strip()
    check(r.returncode == 2, f"{argv}: exit {r.returncode} (wanted 2): {err}")
    check(len(err.splitlines()) == 1 and want in err, f"{argv}: wanted one line with {want!r}, got:\n{err}")


def case_bad_config(tmp):
    for binary in ("weir-jobmanager", "weir-taskmanager"):
        r = subprocess.run([os.path.join(BIN, binary), "--help"], capture_output=True, text=True, timeout=30)
        check(r.returncode == 0 and r.stdout.startswith(f"Usage: {binary}") and not r.stderr,
              f"{binary} --help: exit {r.returncode}, stdout {r.stdout[:200]!r}, stderr {r.stderr!r}")
    base = ["-D", "rest.port=0", "-D", "jobmanager.rpc.port=0"]
    expect_config_error(base + ["-D", f"application.plugin={PLUGIN}", "-D", "application.job-id=XYZ"],
                        "bad value 'XYZ' for application.job-id", tmp)
    expect_config_error(base + ["-D", "jobmanager.shutdown.savepoint=true"],
                        "jobmanager.shutdown.savepoint is true but state.savepoints.dir is not set", tmp)
    expect_config_error(base + ["-D", f"application.plugin={PLUGIN}", "-D", "execution.savepoint.path=sp/x"],
                        "execution.savepoint.path 'sp/x' is not an absolute path", tmp)
    expect_config_error(base + ["--", "--input", "x"], "job arguments after '--' need application.plugin", tmp)
    missing = os.path.join(tmp, "missing.so")
    expect_config_error(base + ["-D", f"application.plugin={missing}"],
                        f"application.plugin {missing}: does not exist", tmp)
    unreadable = os.path.join(tmp, "unreadable.so")
    shutil.copy(PLUGIN, unreadable)
    os.chmod(unreadable, 0)
    if not os.access(unreadable, os.R_OK):  # root reads anything
        expect_config_error(base + ["-D", f"application.plugin={unreadable}"],
                            f"application.plugin {unreadable}: cannot be read", tmp)
    # a plugin the CLI cannot load: the CLI child exits 1 before the job exists, the job manager
    # exits 1 naming the plugin and the CLI's exit code
    garbage = os.path.join(tmp, "garbage.so")
    with open(garbage, "w") as f:
        f.write("not a shared object\n")
    r = subprocess.run([JM] + base + ["-D", f"blob.storage.directory={tmp}/blobs", "-D",
                                      f"application.plugin={garbage}", "--", "--input", "x"],
                       capture_output=True, text=True, timeout=60, cwd=tmp)
    want = f"({garbage}) was not submitted: the weir CLI exited with code 1"
    check(r.returncode == 1 and want in r.stderr, f"exit {r.returncode}, wanted 1 and {want!r}:\n{r.stderr}")
    print("(c) --help of both daemons, bad configurations exit 2 with one line, a CLI failure exits 1",
          flush=True)


def main():
    work = tempfile.mkdtemp(prefix="weir-21-work-", dir=os.environ.get("WEIR_TEST_TMP"))
    try:
        case_bad_config(work)
        case_kill_and_resume(work)
        case_shutdown_savepoint(work)
        case_sigterm_last_state(work)
    except BaseException:
        print(f"work files kept in {work}", flush=True)
        raise
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run_test(main)
