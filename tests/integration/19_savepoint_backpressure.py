"""A savepoint taken while the job is under backpressure completes, and its duration and size are
reported (issue 9, "Must show"). tests/plugins/bpstate.c at -p 2 on 2 task managers: an unbounded
datagen of KEYS random keys -> keyed count whose value state holds VALUE_BYTES per key (about
KEYS * VALUE_BYTES of keyed state, bytes that do not compress) -> a sink that, after its first
FAST records, takes at most SINK_RATE records per second per subtask. Checkpoints every 5 s.

1. Backpressure is there: over a 2 s window the count vertex spends most of its time blocked on
   its output (REST backpressured_ms); the source's and the sinks' rates are printed.
2. POST /jobs/{id}/savepoints (default target, state.savepoints.dir) -> 202 with a request id;
   GET /jobs/{id}/savepoints/{request-id} polled: IN_PROGRESS (with progress acknowledged <=
   total) then COMPLETED with a location, within SAVEPOINT_BOUND s. The savepoint's id appears
   in GET /jobs/{id}/checkpoints' history as COMPLETED: its duration and size are printed (and
   the size is at least half the keyed state written; the savepoint directory holds at least
   that many bytes). The job is still RUNNING and still backpressured.
3. `weir savepoint JOBID` under the same backpressure: "Triggering savepoint for job <id>.", at
   most one "Waiting for response..." line per second, then "Savepoint completed. Path: <p>".
4. GET of an unknown request id answers 404; after `weir cancel`, POST .../savepoints answers 409
   (the job is not RUNNING)."""

import os
import re
import time
import urllib.error

from weirtest import TEST_PLUGINS, Cluster, check, run_test, savepoint_path

PLUGIN = os.path.join(TEST_PLUGINS, "bpstate.so")
KEYS = 20_000
VALUE_BYTES = 512
FAST = 100_000  # records per sink subtask before it becomes slow
SINK_RATE = 4000  # records per second per sink subtask afterwards
SAVEPOINT_BOUND = 60  # seconds


def vertex(job, part):
    return next(v for v in job["vertices"] if part in v["name"])


def backpressure(c, jobid, window=2.0):
    """(fraction of the window the count subtasks were backpressured, source records/s,
    sink records/s) over a window."""
    a = c.job(jobid)
    t0 = time.time()
    time.sleep(window)
    b = c.job(jobid)
    dt = time.time() - t0
    cnt_a, cnt_b = vertex(a, "count"), vertex(b, "count")
    blocked = (cnt_b["metrics"]["backpressured_ms"] - cnt_a["metrics"]["backpressured_ms"]) / 1000.0
    frac = blocked / (dt * cnt_b["parallelism"])
    src = (vertex(b, "numbers")["metrics"]["records_out"] - vertex(a, "numbers")["metrics"]["records_out"]) / dt
    sink = (vertex(b, "slow-sink")["metrics"]["records_in"] - vertex(a, "slow-sink")["metrics"]["records_in"]) / dt
    return frac, src, sink


def dir_bytes(path):
    total = files = 0
    for root, _, names in os.walk(path):
        for n in names:
            total += os.path.getsize(os.path.join(root, n))
            files += 1
    return total, files


def wait_backpressured(c, jobid, timeout=60):
    deadline = time.time() + timeout
    while True:
        frac, src, sink = backpressure(c, jobid)
        if frac >= 0.5:
            return frac, src, sink
        check(time.time() < deadline, f"no backpressure after {timeout} s: count blocked {frac:.0%} "
                                      f"of the time, source {src:.0f}/s, sink {sink:.0f}/s")


def test():
    with Cluster("sp-backpressure", tms=2, slots=2, checkpoints="5s", savepoints=True) as c:
        jobid = c.submit("-p", "2", PLUGIN, "--keys", str(KEYS), "--value-bytes", str(VALUE_BYTES),
                         "--fast", str(FAST), "--sink-rate", str(SINK_RATE))
        c.wait_state(jobid, {"RUNNING"}, timeout=60)
        frac, src, sink = wait_backpressured(c, jobid)
        print(f"1. backpressure: count blocked {frac:.0%} of the time; source {src:.0f}/s, sink {sink:.0f}/s "
              f"(capacity {2 * SINK_RATE}/s)")

        # 2. REST savepoint under backpressure
        t0 = time.time()
        rid = c.trigger_savepoint(jobid)
        check(re.fullmatch(r"[0-9a-f]{32}", rid), f"request id {rid!r} is not 32 hex digits")
        progress = []
        deadline = t0 + SAVEPOINT_BOUND
        while True:
            st = c.get(f"/jobs/{jobid}/savepoints/{rid}")
            status = st["status"]["id"]
            if status == "COMPLETED":
                break
            check(status == "IN_PROGRESS", f"savepoint status {st}")
            check("operation" not in st, f"IN_PROGRESS with an operation: {st}")
            p = st.get("progress") or {}
            if p:
                check(0 <= p["acknowledged"] <= p["total"], f"progress {p}")
                progress.append((round(time.time() - t0, 1), p["acknowledged"], p["total"], p["state_size"]))
            check(time.time() < deadline, f"savepoint under backpressure not COMPLETED after {SAVEPOINT_BOUND} s: "
                                          f"{st}\n{c.log_tail()}")
            time.sleep(0.1)
        wall = time.time() - t0
        check("location" in st.get("operation", {}),
              f"savepoint under backpressure failed: {st.get('operation')}")
        path = st["operation"]["location"]
        ck = st["checkpoint"]
        p = st["progress"]
        check(p["acknowledged"] == p["total"] and p["total"] >= 4, f"final progress {p}")
        hist = {h["id"]: h for h in c.checkpoints(jobid)["history"]}
        check(ck in hist, f"savepoint {ck} not in the checkpoint history {sorted(hist)}")
        h = hist[ck]
        check(h["status"] == "COMPLETED", f"history entry of savepoint {ck}: {h}")
        raw = KEYS * VALUE_BYTES
        size, n_files = dir_bytes(path)
        print(f"2. savepoint {ck} under backpressure: COMPLETED in {wall:.1f} s wall; REST: duration "
              f"{h['duration_ms']} ms, alignment {h['alignment_duration_ms']} ms, state_size "
              f"{h['state_size']} bytes (progress: {p['state_size']}); directory {path}: {n_files} files, "
              f"{size} bytes (keyed state written: {raw} bytes); progress samples {progress[:8]}")
        check(h["duration_ms"] > 0, f"savepoint {ck}: duration {h['duration_ms']} ms")
        check(p["state_size"] >= raw // 2 and h["state_size"] >= raw // 2,
              f"savepoint size {p['state_size']} / {h['state_size']} bytes for {raw} bytes of keyed state")
        check(size >= raw // 2, f"savepoint directory holds {size} bytes for {raw} bytes of keyed state")
        state = c.job(jobid)["state"]
        check(state == "RUNNING", f"job {jobid} is {state} after the savepoint")
        frac, src, sink = backpressure(c, jobid)
        check(frac >= 0.5, f"backpressure gone after the savepoint ({frac:.0%}): the test lost its point")

        # 3. CLI under the same backpressure
        t0 = time.time()
        r = c.cli("savepoint", jobid, check_rc=0, timeout=SAVEPOINT_BOUND + 30)
        wall = time.time() - t0
        out = r.stdout.splitlines()
        check(out and out[0] == f"Triggering savepoint for job {jobid}.",
              f"first line of `weir savepoint`: {out[:1]}")
        waiting = [ln for ln in out if ln.startswith("Waiting for response...")]
        check(len(waiting) <= wall + 1, f"{len(waiting)} progress lines in {wall:.1f} s (at most one per second)")
        for ln in waiting:
            check(re.fullmatch(r"Waiting for response\.\.\. \(\d+/\d+ subtasks acknowledged, .+ written\)", ln),
                  f"progress line {ln!r}")
        path2 = savepoint_path(r)
        check(path2 != path and os.path.isfile(os.path.join(path2, "_metadata")), f"second savepoint {path2}")
        print(f"3. weir savepoint: {wall:.1f} s, {len(waiting)} progress lines "
              f"{waiting[-1:] if waiting else ''}; {path2}")

        # 4. REST answers of the contract
        try:
            code = 200
            c.get(f"/jobs/{jobid}/savepoints/{'0' * 32}")
        except urllib.error.HTTPError as e:
            code = e.code
        check(code == 404, f"GET of an unknown savepoint request id answered {code}")
        c.cli("cancel", jobid, check_rc=0)
        end = c.wait_state(jobid, {"CANCELED", "FAILED", "FINISHED"}, timeout=60)
        check(end["state"] == "CANCELED", f"job ended {end['state']} after cancel")
        status, body = c.post(f"/jobs/{jobid}/savepoints", {"target-directory": None, "cancel-job": False})
        check(status == 409, f"POST savepoints of a CANCELED job answered {status}: {body}")
        print("4. unknown request id: 404; savepoint of a CANCELED job: 409")


run_test(test)
