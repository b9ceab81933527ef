"""A standalone Apache Flink 2.3.0 cluster for weir's benchmarks and tests (bench/README.md):
one job manager and N task managers (1 slot each), every one a JVM started in the foreground from
the distribution that the PyPI package apache-flink ships (bin/jobmanager.sh, bin/taskmanager.sh;
bench/flink/setup.sh installs it into ~/.cache/weir/venv-flink), with its own config, ports
(free ones, loopback only), logs and checkpoints in a scratch directory. Jobs are submitted over
the REST API (jar upload + run: the job's main() runs inside the job manager, so no client JVM),
and CPU is read from /proc/<pid>/stat of every process of the cluster, as weirtest does for weir.

    with FlinkCluster(run_dir, jar, tms=2, checkpoint_interval_ms=10000) as fc:
        jobid, wall = fc.run_job(["--query", "q5", "--events", "2000000"])
        jobid, wall = fc.run_job(["--events", "1000000", "--output", d], entry="weir.bench.LatencyJob")

Standard library only. Threading: single-threaded; the JVMs are child processes, stopped (their
process group) on exit."""

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid

VENV = os.path.expanduser(os.environ.get("WEIR_FLINK_VENV", "~/.cache/weir/venv-flink"))


def flink_home():
    """The distribution inside the apache-flink wheel, or None when it is not installed."""
    hits = glob.glob(os.path.join(VENV, "lib", "python3*", "site-packages", "pyflink", "bin", "jobmanager.sh"))
    return os.path.dirname(os.path.dirname(hits[0])) if hits else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_seconds(pid):
    """utime + stime of a live process and all its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class FlinkError(Exception):
    pass


class FlinkCluster:
    def __init__(self, run_dir, jar, tms=2, checkpoint_interval_ms=10000, tm_memory="1728m",
                 jm_memory="1600m", extra_conf=None):
        self.home = flink_home()
        if self.home is None:
            raise FlinkError(f"no Flink distribution in {VENV} (run: bench/flink/setup.sh)")
        self.dir = run_dir
        self.jar = jar
        self.tms = tms
        self.procs = []
        self.rest_port = free_port()
        self.url = f"http://127.0.0.1:{self.rest_port}"
        conf = {
            "jobmanager.rpc.address": "localhost",
            "jobmanager.bind-host": "localhost",
            "jobmanager.rpc.port": str(free_port()),
            "jobmanager.memory.process.size": jm_memory,
            "taskmanager.bind-host": "localhost",
            "taskmanager.host": "localhost",
            "taskmanager.numberOfTaskSlots": "1",
            "taskmanager.memory.process.size": tm_memory,
            "parallelism.default": str(tms),
            "rest.address": "localhost",
            "rest.bind-address": "localhost",
            "rest.port": str(self.rest_port),
            "state.backend.type": "rocksdb",
            "execution.checkpointing.dir": "file://" + os.path.join(run_dir, "checkpoints"),
            "execution.checkpointing.incremental": "true",
            "execution.checkpointing.mode": "EXACTLY_ONCE",
            "restart-strategy.type": "none",
            "web.submit.enable": "true",
        }
        if checkpoint_interval_ms:
            conf["execution.checkpointing.interval"] = f"{checkpoint_interval_ms}ms"
        conf.update(extra_conf or {})
        self.conf = conf

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        conf_dir = os.path.join(self.dir, "conf")
        os.makedirs(os.path.join(self.dir, "log"))
        shutil.copytree(os.path.join(self.home, "conf"), conf_dir)
        with open(os.path.join(self.home, "conf", "config.yaml")) as f:
            m = re.search(r"^\s+all: (.*)$", f.read(), re.M)  # env.java.opts.all (--add-opens)
        lines = [f"env.java.opts.all: {m.group(1)}"] if m else []
        lines += [f"{k}: {v}" for k, v in self.conf.items()]
        with open(os.path.join(conf_dir, "config.yaml"), "w") as f:
            f.write("\n".join(lines) + "\n")
        env = dict(os.environ, FLINK_CONF_DIR=conf_dir, FLINK_LOG_DIR=os.path.join(self.dir, "log"))
        try:
            self._start(["jobmanager.sh", "start-foreground"], env, "jobmanager")
            self._wait(lambda: self.get("/overview"), 90, "the job manager's REST API")
            for i in range(self.tms):
                self._start(["taskmanager.sh", "start-foreground"], env, f"taskmanager-{i}")
            self._wait(lambda: self.get("/overview")["taskmanagers"] >= self.tms, 90,
                       f"{self.tms} task managers")
            self.jar_id = self.upload(self.jar)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if exc and exc[0] is None:
            shutil.rmtree(self.dir, ignore_errors=True)  # kept (logs) when something failed
        return False

    def _start(self, cmd, env, name):
        out = open(os.path.join(self.dir, "log", name + ".out"), "w")
        self.procs.append(subprocess.Popen([os.path.join(self.home, "bin", cmd[0])] + cmd[1:], env=env,
                                           stdout=out, stderr=subprocess.STDOUT, start_new_session=True))

    def _wait(self, cond, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise FlinkError(f"flink: a cluster process exited ({p.args[0]}, rc {p.returncode})\n"
                                     + self.log_tail())
            try:
                if cond():
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        raise FlinkError(f"flink: timed out waiting for {what}\n" + self.log_tail())

    def log_tail(self, n=30):
        out = []
        for f in sorted(glob.glob(os.path.join(self.dir, "log", "*"))):
            with open(f, errors="replace") as fh:
                tail = fh.readlines()[-n:]
            out.append(f"== {f}\n" + "".join(tail))
        return "\n".join(out)

    # -- CPU ---------------------------------------------------------------------------------

    def pids(self):
        """Every live process of the cluster: the started ones and their descendants."""
        pids, todo = set(), [p.pid for p in self.procs]
        while todo:
            pid = todo.pop()
            if pid in pids:
                continue
            pids.add(pid)
            for t in glob.glob(f"/proc/{pid}/task/*/children"):
                try:
                    with open(t) as f:
                        todo += [int(x) for x in f.read().split()]
                except OSError:
                    pass
        return sorted(pids)

    def cpu_seconds(self):
        total = 0.0
        for pid in self.pids():
            try:
                total += proc_cpu_seconds(pid)
            except OSError:
                pass
        return total

    # -- REST --------------------------------------------------------------------------------

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def post(self, path, body, ctype="application/json"):
        req = urllib.request.Request(self.url + path, data=body, method="POST",
                                     headers={"Content-Type": ctype})
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise FlinkError(f"flink: POST {path}: {e.code} {e.read().decode(errors='replace')[:4000]}")

    def upload(self, jar):
        boundary = uuid.uuid4().hex
        with open(jar, "rb") as f:
            data = f.read()
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"jarfile\"; "
                f"filename=\"{os.path.basename(jar)}\"\r\nContent-Type: application/x-java-archive\r\n\r\n"
                ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
        r = self.post("/jars/upload", body, f"multipart/form-data; boundary={boundary}")
        return os.path.basename(r["filename"])

    def run_job(self, args, timeout=3600, entry="weir.bench.NexmarkJob"):
        """Runs @entry (a main class of the jar: NexmarkJob, LatencyJob, KeyedCountJob) with @args
        to the end. @returns (jobid, wall seconds)."""
        t0 = time.time()
        r = self.post(f"/jars/{self.jar_id}/run", json.dumps(
            {"entryClass": entry, "programArgsList": args,
             "parallelism": self.tms}).encode())
        jobid = r["jobid"]
        deadline = t0 + timeout
        while time.time() < deadline:
            state = self.get(f"/jobs/{jobid}")["state"]
            if state == "FINISHED":
                return jobid, time.time() - t0
            if state in ("FAILED", "CANCELED"):
                exc = self.get(f"/jobs/{jobid}/exceptions")
                raise FlinkError(f"flink: job {jobid} {state}: "
                                 f"{json.dumps(exc)[:3000]}\n{self.log_tail()}")
            time.sleep(0.2)
        raise FlinkError(f"flink: job {jobid} still running after {timeout} s")

    def running_seconds(self, jobid):
        """Seconds from the first subtask of @jobid to reach RUNNING to the last to reach
        FINISHED (the time records flowed: without submission, slot allocation and deployment,
        which take 1-3 s here), from /jobs/<id>/vertices/<vid>/subtasktimes; None if unknown."""
        first, last = None, None
        try:
            for v in self.get(f"/jobs/{jobid}")["vertices"]:
                for st in self.get(f"/jobs/{jobid}/vertices/{v['id']}/subtasktimes")["subtasks"]:
                    ts = st.get("timestamps", {})
                    run, fin = ts.get("RUNNING", 0), ts.get("FINISHED", 0)
                    if run <= 0 or fin <= 0:
                        return None
                    first = run if first is None else min(first, run)
                    last = fin if last is None else max(last, fin)
        except (OSError, KeyError, ValueError):
            return None
        return None if first is None or last <= first else (last - first) / 1000

    def checkpoints(self, jobid):
        return self.get(f"/jobs/{jobid}/checkpoints")
