"""Bad input gets a clear one-line error and the job manager stays up:
a file that is not a shared library; a library without the descriptor; a wrong ABI version;
a missing input file; more parallelism than free slots (the job waits with a clear status, then
fails after slot.request.timeout); an unknown CLI flag; an unknown config key (flag, file,
environment); a garbage REST request; a task manager killed mid-job."""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from weirtest import BIN, EXAMPLES, TEST_PLUGINS, Cluster, check, run_test


def one_line_error(r, *phrases):
    err = r.stderr.strip()
    check(r.returncode != 0, f"expected failure, got exit 0: {r.stdout}")
    check(err != "", "no error message on stderr")
    last = err.splitlines()[-1]
    for p in phrases:
        check(p in last, f"error {last!r} does not mention {p!r}")
    return last


def test():
    with Cluster("badinput", tms=2, slots=2, conf={"slot.request.timeout": "4s"}) as c:
        wc = os.path.join(EXAMPLES, "wordcount.so")

        # A file that is not a shared library.
        bogus = os.path.join(c.dir, "notalib.so")
        with open(bogus, "w") as f:
            f.write("this is text, not ELF\n")
        print(one_line_error(c.cli("run", bogus), "not a shared library"))
        check(c.healthy(), "job manager down after a non-library plugin")

        # A library without the descriptor, a wrong ABI version.
        print(one_line_error(c.cli("run", os.path.join(TEST_PLUGINS, "nodesc.so")), "weir_plugin_descriptor"))
        print(one_line_error(c.cli("run", os.path.join(TEST_PLUGINS, "noabi.so")), "ABI"))

        # Unknown CLI flag; unknown job argument (reported by the job's define()).
        r = c.cli("run", "--bogus", wc)
        print(one_line_error(r, "--bogus"))
        check(r.returncode == 2, f"unknown flag exit code {r.returncode}, wanted 2")
        print(one_line_error(c.cli("run", wc, "--input"), "usage"))

        # Missing input file: the job fails with a message naming the file; the CLI exits 1.
        missing = os.path.join(c.dir, "no-such-input.txt")
        r = c.cli("run", "-p", "2", wc, "--input", missing, "--output", os.path.join(c.dir, "o1"), timeout=120)
        print(one_line_error(r, "FAILED", missing))
        check(r.returncode == 1, f"exit code {r.returncode} for a failed job")
        check(c.healthy(), "job manager down after a failed job")

        # More parallelism than free slots: waits with a clear status, then fails.
        jobid = c.submit("-p", "8", wc, "--input", missing, "--output", os.path.join(c.dir, "o2"))
        time.sleep(1)
        job = c.job(jobid)
        check(job["state"] == "CREATED", f"job should wait for slots, is {job['state']}")
        check("slot" in (job.get("message") or ""), f"waiting job's message does not explain: {job.get('message')!r}")
        print("waiting:", job["message"])
        job = c.wait_state(jobid, {"FAILED"}, timeout=30)
        check("slot" in job["message"] and "8" in job["message"], f"unclear failure: {job['message']!r}")
        print("failed:", job["message"])

        # Garbage REST requests.
        for body, what in [(b"{not json", "not JSON"), (b'{"plugin": "00", "graph": {}}', "plugin")]:
            req = urllib.request.Request(f"http://{c.address}/jobs", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                urllib.request.urlopen(req, timeout=10)
                check(False, "garbage POST /jobs was accepted")
            except urllib.error.HTTPError as e:
                check(e.code == 400, f"garbage POST /jobs answered {e.code}")
                msg = json.loads(e.read())["error"]
                check(what in msg, f"error {msg!r} does not mention {what!r}")
                print("REST:", msg)
        check(c.healthy(), "job manager down after garbage requests")

        # Unknown config keys: -D flag, YAML file, environment; bad value.
        for prog in ["weir-jobmanager", "weir-taskmanager"]:
            r = subprocess.run([os.path.join(BIN, prog), "-D", "rest.prot=1"], capture_output=True, text=True, timeout=30)
            print(one_line_error(r, "rest.prot"))
            check(r.returncode == 2, f"{prog} exit code {r.returncode} for an unknown key")
        yaml = os.path.join(c.dir, "bad.yaml")
        with open(yaml, "w") as f:
            f.write("rest.port: 8081\njobmanager.rpc.prot: 6123\n")
        r = subprocess.run([os.path.join(BIN, "weir-jobmanager"), "-c", yaml], capture_output=True, text=True, timeout=30)
        print(one_line_error(r, "jobmanager.rpc.prot", "bad.yaml"))
        r = subprocess.run([os.path.join(BIN, "weir-jobmanager"), "-D", "rest.port=eighty"], capture_output=True, text=True, timeout=30)
        print(one_line_error(r, "rest.port", "eighty"))
        env = dict(os.environ, WEIR_REST_PROT="1")
        r = subprocess.run([os.path.join(BIN, "weir-jobmanager")], capture_output=True, text=True, timeout=30, env=env)
        print(one_line_error(r, "WEIR_REST_PROT"))

        # A task manager killed mid-job: the job fails with a message naming it.
        text = os.path.join(c.dir, "slow.txt")
        with open(text, "w") as f:
            for i in range(4000):
                f.write(f"alpha beta gamma {i % 97}\n")
        jobid = c.submit("-p", "4", wc, "--input", text, "--output", os.path.join(c.dir, "o3"), "--rate", "100")
        c.wait_state(jobid, {"RUNNING"}, timeout=60)
        time.sleep(2)
        victim = c.tms[1]
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        job = c.wait_state(jobid, {"FAILED", "FINISHED", "CANCELED"}, timeout=60)
        check(job["state"] == "FAILED", f"job ended {job['state']} after a task manager was killed")
        check("tm-1" in job["message"] and "lost" in job["message"], f"message does not name the lost task manager: {job['message']!r}")
        print("killed task manager:", job["message"])
        check(c.healthy(), "job manager down after a task manager was killed")
        tms = c.get("/taskmanagers")["taskmanagers"]
        check([t["id"] for t in tms] == ["tm-0"], f"task managers after the kill: {tms}")


run_test(test)
