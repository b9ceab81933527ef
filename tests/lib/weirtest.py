"""Test harness for integration and chaos tests (and the benchmarks): starts real weir-jobmanager /
weir-taskmanager processes on loopback with free ports, talks to the REST API, runs the CLI, and
cleans up. Imported as plain `import weirtest`: ctest and bench/run.sh put tests/lib on
PYTHONPATH.

Every wait is bounded; a test that hangs fails with a message instead. Process output goes to
log files under the test's temporary directory, printed when a test fails.
"""

import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BUILD = os.environ.get("WEIR_BUILD") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build-test")
SRC = os.environ.get("WEIR_SRC") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BIN = os.path.join(BUILD, "bin")
EXAMPLES = os.path.join(BUILD, "examples")
TEST_PLUGINS = os.path.join(BUILD, "tests", "plugins")


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_cpu_seconds(pid):
    """utime + stime of a live process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class Cluster:
    """1 job manager + N task managers on loopback, used as a context manager:

        with Cluster("wordcount", tms=2, slots=2, checkpoints="500ms", ha=True) as c:
            jobid = c.submit(...)

    conf: job-manager configuration on top of the defaults below (the task managers take their
    heartbeat.* from it); tm_conf: configuration of every task manager (in both, a value None
    removes a key of the defaults below, so the program's own default applies); checkpoints: a
    checkpoint interval ("300ms") turns on checkpointing into the cluster's directory with
    `retained` checkpoints kept and fast fixed-delay restarts (checkpoint_conf); ha: puts
    high-availability.storageDir in the cluster's directory (a restarted job manager resumes the
    jobs). With rest.auth.token (or rest.auth.token-file) in conf, `get` and `cli` send the token;
    with rest.ssl.enabled: "true", they use HTTPS and trust rest.ssl.trust-cert (default: the
    server's own rest.ssl.certificate). curve=True: a new cluster key (`weir keygen`) in the
    cluster's directory, security.curve.key-file of the job manager and every task manager (path
    in self.curve_key_file). savepoints=True: state.savepoints.dir (the default savepoint target)
    is <cluster dir>/savepoints.

    Leaving the block (or a failure while starting) stops every process the cluster started
    (job managers and task managers, replaced ones too). On success the cluster's directory is
    removed; on an exception the tail of every process log is printed and the directory is kept
    (its path is printed)."""

    def __init__(self, name=None, tms=2, slots=2, conf=None, tm_conf=None, ha=False,
                 checkpoints=None, retained=1, curve=False, savepoints=False):
        if name is None:
            name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"weir-{name}-", dir=os.environ.get("WEIR_TEST_TMP"))
        self.rest_port = free_port()
        self.rpc_port = free_port()
        self.conf = {
            "rest.port": str(self.rest_port),
            "rest.bind-address": "127.0.0.1",
            "jobmanager.rpc.port": str(self.rpc_port),
            "jobmanager.rpc.address": "127.0.0.1",
            "jobmanager.bind-host": "127.0.0.1",
            "blob.storage.directory": os.path.join(self.dir, "blobs"),
            "heartbeat.interval": "500ms",
            "heartbeat.timeout": "4s",
        }
        if checkpoints:
            self.conf.update(self.checkpoint_conf(interval=checkpoints, retained=retained))
        if ha:
            self.conf["high-availability.storageDir"] = os.path.join(self.dir, "ha")
        if savepoints:
            self.conf["state.savepoints.dir"] = os.path.join(self.dir, "savepoints")
        self.curve_key_file = None
        if curve:
            self.curve_key_file = os.path.join(self.dir, "cluster.key")
            subprocess.run([os.path.join(BIN, "weir"), "keygen", self.curve_key_file], check=True)
            self.conf["security.curve.key-file"] = self.curve_key_file
        self.conf.update(conf or {})
        self.conf = {k: v for k, v in self.conf.items() if v is not None}
        self.tm_conf = tm_conf or {}
        self.slots = slots
        self.jm = None
        self.tms = []
        self.procs = []  # every process started, in order (replaced ones stay listed)
        self.logs = []
        try:
            self.start_jobmanager()
            for _ in range(tms):
                self.start_taskmanager()
            self.wait_taskmanagers(tms)
        except BaseException:
            self._close(failed=True)
            raise

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self._close(failed=exc_type is not None)
        return False

    def _close(self, failed):
        """Stops every process; on failure prints the logs and keeps the directory."""
        if failed:
            print(f"--- logs of cluster {self.name} ---\n{self.log_tail()}", flush=True)
        self.stop(keep=failed)
        if failed:
            print(f"cluster files kept in {self.dir}", flush=True)

    @property
    def address(self):
        return f"127.0.0.1:{self.rest_port}"

    @property
    def token(self):
        """The REST token of the job manager's configuration, or None."""
        if "rest.auth.token" in self.conf:
            return self.conf["rest.auth.token"]
        if "rest.auth.token-file" in self.conf:
            with open(self.conf["rest.auth.token-file"]) as f:
                return f.read().rstrip("\n")
        return None

    @property
    def tls(self):
        return self.conf.get("rest.ssl.enabled") == "true"

    @property
    def trust_cert(self):
        return self.conf.get("rest.ssl.trust-cert") or self.conf.get("rest.ssl.certificate")

    def client_env(self):
        """WEIR_* variables that give the CLI this cluster's token and HTTPS settings."""
        env = {}
        if self.token is not None:
            env["WEIR_REST_AUTH_TOKEN"] = self.token
        if self.tls:
            env["WEIR_REST_SSL_ENABLED"] = "true"
            env["WEIR_REST_SSL_TRUST_CERT"] = self.trust_cert
        return env

    def _dflags(self, conf):
        out = []
        for k, v in conf.items():
            if v is not None:
                out += ["-D", f"{k}={v}"]
        return out

    def _spawn(self, name, argv):
        log = open(os.path.join(self.dir, f"{name}.log"), "w")
        if log.name not in self.logs:
            self.logs.append(log.name)
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()  # the child has its own copy
        self.procs.append(p)
        return p

    def jobmanager_args(self):
        """Arguments after weir-jobmanager's -D flags (none here; application mode adds -- ARGS)."""
        return []

    def start_jobmanager(self, wait=True):
        """Starts the job manager; with wait, until it answers /healthz (within 30 s)."""
        self.jm = self._spawn("jobmanager", [os.path.join(BIN, "weir-jobmanager")]
                              + self._dflags(self.conf) + self.jobmanager_args())
        deadline = time.time() + 30
        while wait and time.time() < deadline:
            check(self.jm.poll() is None, f"job manager exited with {self.jm.returncode}:\n{self.log_tail()}")
            try:
                if self.get("/healthz").get("status") == "ok":
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        if wait:
            raise TestFailure("job manager did not answer /healthz within 30 s")

    def start_taskmanager(self, extra=None, index=None):
        """Starts task manager `index` (default: a new one). Starting an index again replaces a
        killed process with a new one of the same configuration (same resource id and dirs)."""
        i = len(self.tms) if index is None else index
        conf = {
            "jobmanager.rpc.address": "127.0.0.1",
            "jobmanager.rpc.port": str(self.rpc_port),
            "taskmanager.numberOfTaskSlots": str(self.slots),
            "taskmanager.host": "127.0.0.1",
            "taskmanager.bind-host": "127.0.0.1",
            "taskmanager.resource-id": f"tm-{i}",
            "taskmanager.working-dir": os.path.join(self.dir, f"tm-{i}"),
            "heartbeat.interval": self.conf["heartbeat.interval"],
            "heartbeat.timeout": self.conf["heartbeat.timeout"],
            # /metrics on any free port: never the default 9249, which clusters of tests that
            # run in parallel would share (tests/integration/34_tm_metrics.py sets ranges)
            "metrics.reporter.prom.port": "0",
        }
        if self.curve_key_file:
            conf["security.curve.key-file"] = self.curve_key_file
        conf.update(self.tm_conf)
        conf.update(extra or {})
        p = self._spawn(f"taskmanager-{i}", [os.path.join(BIN, "weir-taskmanager")] + self._dflags(conf))
        if i < len(self.tms):
            self.tms[i] = p
        else:
            self.tms.append(p)
        return p

    def kill9(self, proc):
        """kill -9 a weir process (and its process group) and reap it."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def kill_taskmanager_midrun(self, jobid, index=1, checkpoints=2, what="the job"):
        """Once `jobid` runs and has `checkpoints` completed checkpoints, kill -9 task manager
        `index` (None: the first one hosting the job) and start its replacement. Fails when the
        job ended before the kill (raise the test's size). Returns the index killed."""
        self.wait_state(jobid, {"RUNNING"}, timeout=60)
        self.wait_checkpoints(jobid, checkpoints, timeout=60)
        check(self.job(jobid)["state"] == "RUNNING",
              f"{what} ended before the kill: raise its number of events")
        if index is None:
            index = int(sorted(self.job_taskmanagers(jobid))[0].split("-")[1])
        self.kill9(self.tms[index])
        self.start_taskmanager(index=index)
        return index

    def wait_finished(self, jobid, restored=False, timeout=120, what="the job"):
        """Waits for `jobid` to end and checks it FINISHED (and, with `restored`, that it
        restored from a checkpoint at least once). Returns the job."""
        job = self.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=timeout)
        check(job["state"] == "FINISHED", f"{what} ended {job['state']}: {job.get('message')}")
        if restored:
            ck = self.checkpoints(jobid)
            check(ck["counts"]["restored"] >= 1, f"{what} did not restore: {ck['counts']}")
        return job

    def freeze(self, proc):
        """SIGSTOP a weir process (and its process group): it stays alive, connected and silent,
        as in a long pause or a partition. Wake it with thaw(); stop() wakes it to end it."""
        os.killpg(proc.pid, signal.SIGSTOP)

    def thaw(self, proc):
        """SIGCONT a process frozen with freeze()."""
        try:
            os.killpg(proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass

    def taskmanager_ids(self):
        """Ids of the task managers the job manager lists now."""
        return [t["id"] for t in self.get("/taskmanagers")["taskmanagers"]]

    def wait_taskmanager_gone(self, tm_id, timeout=60):
        """Waits until the job manager no longer lists task manager `tm_id` (declared lost)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if tm_id not in self.taskmanager_ids():
                return
            time.sleep(0.05)
        raise TestFailure(f"task manager {tm_id} still listed after {timeout} s:\n{self.log_tail()}")

    def wait_taskmanager_back(self, tm_id, timeout=60):
        """Waits until the job manager lists task manager `tm_id` (registered again)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if tm_id in self.taskmanager_ids():
                return
            time.sleep(0.05)
        raise TestFailure(f"task manager {tm_id} did not register within {timeout} s:\n"
                          f"{self.log_tail()}")

    def job_taskmanagers(self, jobid):
        """The ids of the task managers hosting a subtask of the job's current attempt."""
        job = self.job(jobid)
        return {st["taskmanager"] for v in job["vertices"] for st in v["subtasks"]
                if st.get("taskmanager")}

    def restart_jobmanager(self):
        """Starts a new job manager process with the same configuration (after a kill)."""
        self.start_jobmanager()

    def checkpoints(self, jobid):
        return self.get(f"/jobs/{jobid}/checkpoints")

    def wait_checkpoints(self, jobid, at_least, timeout=120):
        """Waits until the job has at least `at_least` completed checkpoints (REST counts)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.checkpoints(jobid)["counts"]["completed"] >= at_least:
                    return
            except (OSError, urllib.error.URLError, KeyError):
                pass
            time.sleep(0.1)
        raise TestFailure(f"job {jobid}: fewer than {at_least} completed checkpoints after {timeout} s\n"
                          f"{self.log_tail()}")

    def wait_taskmanagers(self, n, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.get("/taskmanagers")["taskmanagers"]) >= n:
                return
            time.sleep(0.1)
        raise TestFailure(f"{n} task managers did not register within {timeout} s:\n{self.log_tail()}")

    def get(self, path, timeout=10):
        """GET a REST path (with the cluster's token and HTTPS settings); the parsed JSON."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token is not None else {}
        req = urllib.request.Request(f"{'https' if self.tls else 'http'}://{self.address}{path}",
                                     headers=headers)
        ctx = None
        if self.tls:
            import ssl
            ctx = ssl.create_default_context(cafile=self.trust_cert)
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return json.loads(r.read())

    def cli(self, *args, timeout=600, check_rc=None, auth=True, env=None):
        """Runs `weir -m ADDRESS args...`; with auth, with the cluster's token and HTTPS settings
        (client_env); env: more environment variables."""
        argv = [os.path.join(BIN, "weir"), "-m", self.address] + list(args)
        full_env = dict(os.environ)
        if auth:
            full_env.update(self.client_env())
        full_env.update(env or {})
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env)
        if check_rc is not None and r.returncode != check_rc:
            raise TestFailure(f"{' '.join(argv)} exited {r.returncode} (wanted {check_rc})\n"
                              f"stdout: {r.stdout}\nstderr: {r.stderr}\n{self.log_tail()}")
        return r

    def submit(self, *args):
        """weir run -d ...; returns the job id."""
        r = self.cli("run", "-d", *args, check_rc=0)
        for line in r.stdout.splitlines():
            if line.startswith("Job has been submitted with JobID "):
                return line.split()[-1]
        raise TestFailure(f"no JobID line in: {r.stdout}")

    def job(self, jobid):
        return self.get(f"/jobs/{jobid}")

    def post(self, path, body, timeout=10):
        """POST a JSON body to a REST path (with the cluster's token and HTTPS settings); returns
        (HTTP status, parsed JSON answer or None). An error status is returned, not raised."""
        headers = {"Content-Type": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(f"{'https' if self.tls else 'http'}://{self.address}{path}",
                                     data=json.dumps(body).encode(), headers=headers, method="POST")
        ctx = None
        if self.tls:
            import ssl
            ctx = ssl.create_default_context(cafile=self.trust_cert)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, None

    # --- savepoints (docs: CONTRACT of issue 9, sections 5 and 6) ---

    def savepoint(self, jobid, target=None, timeout=300):
        """`weir savepoint JOBID [TARGET]`: waits for "Savepoint completed. Path: <path>" (exit
        0) and returns the path; the job goes on running."""
        args = ["savepoint", jobid] + ([target] if target else [])
        return savepoint_path(self.cli(*args, timeout=timeout, check_rc=0))

    def stop_with_savepoint(self, jobid, target=None, timeout=300):
        """`weir stop [--savepointPath TARGET] JOBID`: the final savepoint, sinks commit, the job
        FINISHES; returns the savepoint's path (checks the job is FINISHED)."""
        args = ["stop"] + (["--savepointPath", target] if target else []) + [jobid]
        path = savepoint_path(self.cli(*args, timeout=timeout, check_rc=0))
        state = self.job(jobid)["state"]
        check(state == "FINISHED", f"job {jobid} is {state} after `weir stop` printed its savepoint "
                                   "(the stop completes only when the job is FINISHED)")
        return path

    def run_args(self, path, *args, p=None, allow_non_restored=False, detached=True):
        """The argument list of `weir run [-d] -s PATH [--allowNonRestoredState] [-p N] args...`
        (args: PLUGIN.so and its arguments; path None: no -s)."""
        out = ["run"] + (["-d"] if detached else [])
        if path is not None:
            out += ["-s", path]
        if allow_non_restored:
            out.append("--allowNonRestoredState")
        if p is not None:
            out += ["-p", str(p)]
        return out + list(args)

    def run_from(self, path, *args, p=None, allow_non_restored=False, timeout=600):
        """`weir run -d -s PATH ...` without checking the outcome: the CompletedProcess (for
        refused restores)."""
        return self.cli(*self.run_args(path, *args, p=p, allow_non_restored=allow_non_restored),
                        timeout=timeout)

    def resume(self, path, *args, p=None, allow_non_restored=False):
        """`weir run -d -s PATH [--allowNonRestoredState] [-p N] PLUGIN.so args...`, which must be
        accepted; returns the new job's id."""
        r = self.cli(*self.run_args(path, *args, p=p, allow_non_restored=allow_non_restored),
                     check_rc=0)
        for line in r.stdout.splitlines():
            if line.startswith("Job has been submitted with JobID "):
                return line.split()[-1]
        raise TestFailure(f"no JobID line in: {r.stdout}")

    def trigger_savepoint(self, jobid, target=None, cancel=False):
        """POST /jobs/{id}/savepoints {"target-directory", "cancel-job"}: must answer 202; returns
        the request id."""
        status, body = self.post(f"/jobs/{jobid}/savepoints",
                                 {"target-directory": target, "cancel-job": cancel})
        check(status == 202 and body and "request-id" in body,
              f"POST /jobs/{jobid}/savepoints answered {status}: {body}")
        return body["request-id"]

    def wait_savepoint(self, jobid, request_id, timeout=300):
        """Polls GET /jobs/{id}/savepoints/{request-id} until status COMPLETED; returns the last
        answer (whose operation holds "location" or "failure-cause")."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = self.get(f"/jobs/{jobid}/savepoints/{request_id}")
            if last["status"]["id"] == "COMPLETED":
                return last
            check(last["status"]["id"] == "IN_PROGRESS", f"savepoint {request_id}: status {last}")
            time.sleep(0.1)
        raise TestFailure(f"savepoint {request_id} of job {jobid} not COMPLETED after {timeout} s: "
                          f"{last}\n{self.log_tail()}")

    def checkpoint_conf(self, interval="500ms", retained=1):
        """Config for checkpointing into this cluster's directory, with fast restarts."""
        return {
            "execution.checkpointing.interval": interval,
            "state.checkpoints.dir": os.path.join(self.dir, "checkpoints"),
            "state.checkpoints.num-retained": str(retained),
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": "1000",
            "restart-strategy.fixed-delay.delay": "200ms",
        }

    def wait_state(self, jobid, states, timeout=300):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = self.job(jobid)
            if last["state"] in states:
                return last
            time.sleep(0.2)
        raise TestFailure(f"job {jobid} not in {states} after {timeout} s: {json.dumps(last)[:2000]}\n"
                          f"{self.log_tail()}")

    def healthy(self):
        try:
            return self.jm.poll() is None and self.get("/healthz").get("status") == "ok"
        except (OSError, urllib.error.URLError):
            return False

    def pids(self):
        return [p.pid for p in [self.jm] + self.tms if p and p.poll() is None]

    def log_tail(self, lines=40):
        out = []
        for path in self.logs:
            try:
                with open(path) as f:
                    tail = f.readlines()[-lines:]
            except OSError:
                continue
            out.append(f"--- {os.path.basename(path)} ---\n" + "".join(tail))
        return "\n".join(out)

    def stop(self, keep=False):
        """Stops every process the cluster started (SIGTERM; SIGKILL after 15 s), task managers
        first; removes the cluster's directory unless `keep`."""
        procs = [p for p in self.tms + [self.jm] if p]
        procs += [p for p in self.procs if p not in procs]
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    os.killpg(p.pid, signal.SIGCONT)  # a frozen process handles SIGTERM awake
                except ProcessLookupError:
                    pass
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_exit(proc, what, timeout=120):
    """Waits until a process exited (e.g. reached its debug.kill-at kill point)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return
        time.sleep(0.05)
    raise TestFailure(f"{what} did not exit (reach its kill point) within {timeout} s")


SAVEPOINT_DONE = "Savepoint completed. Path: "


def savepoint_path(result):
    """The path of the line "Savepoint completed. Path: <path>" that `weir savepoint` / `weir
    stop` print (result: a CompletedProcess or its stdout)."""
    out = result if isinstance(result, str) else result.stdout
    paths = [ln[len(SAVEPOINT_DONE):].strip() for ln in out.splitlines() if ln.startswith(SAVEPOINT_DONE)]
    check(len(paths) == 1, f"expected one line {SAVEPOINT_DONE!r}<path>, got:\n{out}")
    check(os.path.isabs(paths[0]), f"savepoint path {paths[0]!r} is not absolute")
    return paths[0]


def validate(path, *args, p=None, allow_non_restored=False, timeout=120, env=None):
    """`weir validate -s PATH [-p N] [--allowNonRestoredState] PLUGIN.so args...`, with no job
    manager address (it needs no cluster); returns the CompletedProcess (text)."""
    argv = [os.path.join(BIN, "weir"), "validate", "-s", path]
    if p is not None:
        argv += ["-p", str(p)]
    if allow_non_restored:
        argv.append("--allowNonRestoredState")
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout,
                          env=full_env)


def tree_checksum(path):
    """{relative path: (size, sha256 hex)} of every regular file under path (symlinks are
    listed as ("symlink", target)): two results are equal iff the tree's names and bytes are."""
    out = {}
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(root, d))]):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            if os.path.islink(full):
                out[rel] = ("symlink", os.readlink(full))
                continue
            h = hashlib.sha256()
            with open(full, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            out[rel] = (os.path.getsize(full), h.hexdigest())
    return out


def tree_diff(before, after):
    """A short description of how two tree_checksum() results differ ("" when equal)."""
    gone = sorted(set(before) - set(after))
    new = sorted(set(after) - set(before))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    parts = []
    for what, names in (("gone", gone), ("new", new), ("changed", changed)):
        if names:
            parts.append(f"{len(names)} {what} (e.g. {names[:3]})")
    return "; ".join(parts)


def dir_snapshot(path):
    """{name: (size, mtime_ns)} of every file in a directory, hidden ones included: two snapshots
    are equal iff no file appeared, disappeared or changed in between."""
    snap = {}
    for name in os.listdir(path):
        try:
            st = os.stat(os.path.join(path, name))
        except FileNotFoundError:
            continue
        snap[name] = (st.st_size, st.st_mtime_ns)
    return snap


def read_part_lines(out):
    """The lines of the committed part files of an exactly-once file sink directory, in file name
    order (hidden in-progress files skipped; any other name fails the test)."""
    lines = []
    for n in sorted(os.listdir(out)):
        if n.startswith("."):
            continue
        check(re.fullmatch(r"part-[0-9a-f-]{36}-(\d+)-(\d+)", n), f"unexpected file {n}")
        with open(os.path.join(out, n)) as f:
            lines.extend(line.rstrip("\n") for line in f)
    return lines


def check_windows(want, got, what, value="value"):
    """Checks a dict of windows -> result against its oracle's: the same windows, none missing or
    unexpected, and the same result for each (@p value names the result in the message)."""
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    check(not missing and not extra,
          f"{what}: missing windows {missing[:5]}, unexpected {extra[:5]}")
    wrong = [(w, got[w], want[w]) for w in want if got[w] != want[w]]
    check(not wrong, f"{what}: {len(wrong)} windows with a wrong {value}, e.g. {wrong[:5]}")


def gen_text(path, n_words, seed=42):
    """Writes the deterministic test text (tests/lib/gen_text.py)."""
    subprocess.run(["python3", os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen_text.py"),
                    path, str(n_words), str(seed)], check=True)


def oracle_counts(path):
    """Word counts of a text by an independent pipeline: tr | sort | uniq -c (C locale)."""
    out = subprocess.run(
        f"tr -s ' \\t\\n\\v\\f\\r' '\\n' < '{path}' | grep -v '^$' | sort | uniq -c",
        shell=True, check=True, capture_output=True,
        env={"LC_ALL": "C", "PATH": os.environ["PATH"]}).stdout
    counts = {}
    for line in out.decode().splitlines():
        n, w = line.strip().split(" ", 1)
        counts[w] = int(n)
    return counts


def read_word_updates(out_dir):
    """The committed wordcount output of a directory: only committed (non-hidden) part files are
    read. Returns ({word: [counts written]}, number of lines)."""
    from collections import defaultdict
    seen = defaultdict(list)
    lines = 0
    for name in sorted(os.listdir(out_dir)):
        if name.startswith("."):
            continue  # in progress or pending: invisible to readers
        check(name.startswith("part-"), f"unexpected file {name} in output")
        with open(os.path.join(out_dir, name), encoding="utf-8") as f:
            for line in f:
                word, n = line.rstrip("\n").rsplit(" ", 1)
                seen[word].append(int(n))
                lines += 1
    return seen, lines


def check_wordcount_output(out_dir, oracle):
    """Exactly-once check of wordcount output: only committed (non-hidden) part files are read;
    one line per word occurrence; for every word the counts are exactly 1..n (nothing lost,
    nothing duplicated). Returns the number of lines."""
    seen, lines = read_word_updates(out_dir)
    check_word_updates(seen, lines, oracle, "lines")
    return lines


def check_word_prefix(seen, oracle, unit):
    """The check of committed output part way through a job (e.g. after a stop with a
    savepoint): for every word written the counts are exactly 1..k with k <= the oracle's count
    (no gap, no duplicate, no word the input lacks). Returns the number of updates."""
    extra = set(seen) - set(oracle)
    check(not extra, f"{len(extra)} words that are not in the input, e.g. {sorted(extra)[:3]}")
    n = 0
    for w, counts in seen.items():
        got = sorted(counts)
        check(got == list(range(1, len(got) + 1)) and len(got) <= oracle[w],
              f"word {w!r}: oracle {oracle[w]}, committed counts {got[:5]}...{got[-5:]} "
              f"({len(got)} {unit}): a gap or a duplicate")
        n += len(got)
    return n


def check_word_updates(seen, n_updates, oracle, unit):
    """The exactly-once check shared by the word-count tests: seen = {word: [counts written]},
    n_updates = how many updates (`unit`: "lines", "records") were read; for every word of the
    oracle the counts are exactly 1..n, no other word, no duplicate."""
    total = sum(oracle.values())
    dups = {w: c for w, c in seen.items() if len(c) != len(set(c))}
    check(not dups, f"duplicated updates for {len(dups)} words, e.g. "
                    f"{next(iter(dups.items())) if dups else ''}")
    check(n_updates == total, f"{n_updates} committed output {unit} for {total} words")
    check(set(seen) == set(oracle), f"word sets differ: {len(set(seen) ^ set(oracle))} words")
    for w, n in oracle.items():
        got = sorted(seen.get(w, []))
        check(got == list(range(1, n + 1)),
              f"word {w!r}: oracle {n}, output counts {got[:5]}...{got[-5:]} ({len(got)} {unit})")


def run_test(fn):
    """Runs fn(); prints PASS/FAIL and the closing line; exits non-zero on failure."""
    name = os.path.basename(sys.argv[0])
    start = time.time()
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - report any failure
        import traceback
        traceback.print_exc()
        print(f"FAIL {name} after {time.time() - start:.1f} s: {e}")
        sys.exit(1)
    print(f"PASS {name} in {time.time() - start:.1f} s")
