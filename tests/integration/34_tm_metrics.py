"""Task manager /metrics and logs with identity (issue 13 items 2 and 5; taskmanager/README.md
"Metrics" and "Log lines").

(a) Two task managers configured with one two-port range (metrics.reporter.prom.port A-B) get
    the two different ports; a third on the same range finds none free: it logs a warning naming
    the key and still registers and runs (as Flink's reporter).
(b) A running wordcount (p 3) whose file source splits the input so that source subtask 0 reads
    only the long first line, subtask 1 reads nothing and subtask 2 streams the short lines for
    seconds (the split rule of connectors/file/file_source.c, recomputed here): while subtask 2
    still streams, the task managers' /metrics show weir_task_records_out_total of source subtask 0
    equal to the words of line 1 (`head -n 1 | wc -w`, coreutils) and of subtask 1 equal to 0;
    `promtool check metrics` (Debian's prometheus package) passes on both task managers' output;
    the labels name the job, its name and the vertices as GET /jobs/{id} does.
(c) A job whose sink fails at open (its output directory is a regular file): the failure line
    the subtask's thread logs carries the task manager id, job (first 8 hex digits), attempt and
    the task name with subtask/parallelism; every task manager log line carries the id.
(d) With rest.auth.token, /metrics answers 401 without the token or with a wrong one, and the
    exposition with it (promtool passes); another path is 404.
(e) Refused at start (exit 2, one line naming the key): metrics.reporter.prom.host beyond
    loopback without rest.auth.token, and bad metrics.reporter.prom.port values."""

import os
import random
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

from weirtest import BIN, EXAMPLES, Cluster, check, run_test

TOKEN = "tm-metrics-test-token-0123456789"
SERIES = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def free_range(n):
    """n consecutive free loopback ports (checked by binding them all at once)."""
    for _ in range(200):
        base = random.randint(20000, 60000 - n)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            pass
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f"no {n} consecutive free ports")


def scrape(port, token=None, path="/metrics"):
    """(HTTP status, body) of GET http://127.0.0.1:port/path."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def promtool(text, what):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=60)
    check(r.returncode == 0, f"promtool check metrics failed on {what} (exit {r.returncode}):\n"
                             f"{r.stdout}{r.stderr}")


def parse(text):
    """[(name, {label: value}, float)] of every sample line."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SERIES.match(line)
        check(m is not None, f"unexpected sample line: {line!r}")
        labels = {k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                  for k, v in LABEL.findall(m.group(2))}
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def tm_log(c, i):
    with open(os.path.join(c.dir, f"taskmanager-{i}.log")) as f:
        return f.read()


def metrics_port(c, i, timeout=30):
    """The port task manager i logged for /metrics (None when it logged that it is off)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        log = tm_log(c, i)
        m = re.search(r"metrics: Prometheus endpoint at http://[^ ]+:(\d+)/metrics", log)
        if m:
            return int(m.group(1))
        if "metrics: cannot listen" in log:
            return None
        time.sleep(0.1)
    raise AssertionError(f"task manager {i} logged no metrics line:\n{tm_log(c, i)[-2000:]}")


def write_input(path, seed):
    """A long first line (more than 2/3 of the file) and many short ones after it."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghij") for _ in range(rng.randint(2, 6))) for _ in range(500)]
    with open(path, "w") as f:
        f.write(" ".join(rng.choice(vocab) for _ in range(30_000)) + "\n")
        for _ in range(2_400):
            f.write(" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 7))) + "\n")


def lines_per_subtask(path, p):
    """The file source's split rule: line -> the subtask whose byte range holds its first byte."""
    data = open(path, "rb").read()
    size = len(data)
    starts = [0] + [i + 1 for i, b in enumerate(data) if b == ord("\n") and i + 1 < size]
    return [sum(1 for s in starts if size * i // p <= s < size * (i + 1) // p) for i in range(p)]


def coreutils_words(path, first_line_only):
    cmd = f"head -n 1 '{path}' | wc -w" if first_line_only else f"wc -w < '{path}'"
    return int(subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, check=True).stdout)


def part_ports_and_counts():
    base = free_range(2)
    with Cluster("34-tm-metrics", tms=2, slots=2, checkpoints="200ms",
                 tm_conf={"metrics.reporter.prom.port": f"{base}-{base + 1}"}) as c:
        ports = [metrics_port(c, 0), metrics_port(c, 1)]
        check(sorted(ports) == [base, base + 1], f"ports {ports}, expected {base} and {base + 1}")
        # (b) a finished source subtask's records_out, during the job
        inp = os.path.join(c.dir, "input.txt")
        write_input(inp, seed=34)
        split = lines_per_subtask(inp, 3)
        check(split[0] == 1 and split[1] == 0 and split[2] > 1000, f"input split {split}")
        line1_words = coreutils_words(inp, first_line_only=True)
        jobid = c.submit("-p", "3", os.path.join(EXAMPLES, "wordcount.so"), "--input", inp,
                         "--output", os.path.join(c.dir, "out"), "--rate", "1200")
        c.wait_state(jobid, {"RUNNING"}, timeout=60)
        want = {0: line1_words, 1: 0}
        got, texts = {}, None
        deadline = time.time() + 60
        while time.time() < deadline:
            texts = [scrape(p)[1] for p in ports]
            got = {}
            for text in texts:
                for name, lab, val in parse(text):
                    if (name == "weir_task_records_out_total" and lab["job_id"] == jobid
                            and lab["vertex_id"] == "0"):
                        got[int(lab["subtask"])] = val
            if all(got.get(s) == v for s, v in want.items()) and 0 < got.get(2, 0):
                break
            check(c.job(jobid)["state"] == "RUNNING",
                  f"job ended before subtask 0's count was seen: {got}")
            time.sleep(0.1)
        check(all(got.get(s) == v for s, v in want.items()),
              f"records_out of source subtasks {got}, expected {want} (head -n 1 | wc -w)")
        total_words = coreutils_words(inp, first_line_only=False)
        check(got[2] < total_words - line1_words, f"subtask 2 already emitted {got[2]}: no overlap")
        for p, text in zip(ports, texts):
            promtool(text, f"task manager /metrics on port {p}")
        job = c.job(jobid)
        names = {str(i): v["name"] for i, v in enumerate(job["vertices"])}
        seen = set()
        for text in texts:
            for name, lab, _ in parse(text):
                if name.startswith("weir_task_") and lab.get("job_id") == jobid:
                    check(lab["job_name"] == "wordcount", f"job_name {lab['job_name']!r}")
                    check(lab["vertex"] == names[lab["vertex_id"]],
                          f"vertex {lab['vertex']!r}, GET /jobs says {names[lab['vertex_id']]!r}")
                    check(lab["tm_id"] in ("tm-0", "tm-1"), f"tm_id {lab['tm_id']}")
                    seen.add((lab["vertex_id"], lab["subtask"]))
        check(seen == {(v, s) for v in ("0", "1") for s in ("0", "1", "2")},
              f"subtasks in /metrics: {sorted(seen)}")
        # per chained operator (runtime/task weir_task_get_operator_metrics): the source emitted
        # one line, split its words
        ops = {(lab["subtask"], lab["operator"]): val for text in texts
               for name, lab, val in parse(text)
               if name == "weir_operator_records_out_total" and lab["job_id"] == jobid
               and lab["vertex_id"] == "0"}
        want_ops = {("0", "lines"): 1, ("0", "split"): line1_words, ("1", "lines"): 0,
                    ("1", "split"): 0}
        check(all(ops.get(k) == v for k, v in want_ops.items()),
              f"operator records_out {ops}, expected {want_ops}")
        print(f"(b) per operator: {want_ops}")
        # the keyed count's state cache: every word it counted was looked up (a first sight of a
        # word is a miss)
        cache_deadline = time.time() + 30
        while True:
            now = [scrape(p)[1] for p in ports]
            cache = {n: sum(val for text in now for name, lab, val in parse(text)
                            if name == n and lab["job_id"] == jobid and lab["vertex_id"] == "1")
                     for n in ("weir_task_state_cache_hits_total",
                               "weir_task_state_cache_misses_total", "weir_task_records_in_total")}
            if cache["weir_task_state_cache_misses_total"] > 0 or time.time() > cache_deadline:
                break
            time.sleep(0.2)
        check(cache["weir_task_records_in_total"] > 0
              and cache["weir_task_state_cache_misses_total"] > 0,
              f"state cache of the count: {cache}")
        print(f"(b) state cache of the count: {cache}")
        print(f"(b) source subtask 0 emitted {got[0]} = head -n 1 | wc -w, subtask 1 {got[1]}, "
              f"subtask 2 {got[2]} so far; promtool check metrics passed on both")
        c.wait_state(jobid, {"FINISHED"}, timeout=120)
        # (a) a third task manager on the full range: a warning, and it still runs (started after
        # the job: its subtasks would have no /metrics)
        c.start_taskmanager()
        c.wait_taskmanagers(3)
        check(metrics_port(c, 2) is None, "a third task manager bound a port of a full range")
        check(re.search(r"WARN \S+ tm-2 taskmanager: metrics: cannot listen on 127\.0\.0\.1 port "
                        rf"{base}-{base + 1} \(metrics\.reporter\.prom\.port\)", tm_log(c, 2)),
              f"no warning naming the range:\n{tm_log(c, 2)[-1500:]}")
        print(f"(a) range {base}-{base + 1}: task managers on {sorted(ports)}; a third warned and registered")



def part_identity():
    with Cluster("34-tm-identity", tms=1, slots=1) as c:
        inp = os.path.join(c.dir, "input.txt")
        with open(inp, "w") as f:
            f.write("a b c\n")
        not_a_dir = os.path.join(c.dir, "not-a-dir")
        with open(not_a_dir, "w") as f:
            f.write("x\n")
        jobid = c.submit("-p", "1", os.path.join(EXAMPLES, "wordcount.so"), "--input", inp,
                         "--output", not_a_dir)
        job = c.wait_state(jobid, {"FAILED", "FINISHED"}, timeout=60)
        check(job["state"] == "FAILED", f"the job with a file as output ended {job['state']}")
        sink_vertex = job["vertices"][-1]["name"]
        log = tm_log(c, 0)
        lines = [l for l in log.splitlines() if l]
        bad = [l for l in lines if not re.match(r"^(DEBUG|INFO|WARN|ERROR) \S+Z tm-0 ", l)]
        check(not bad, f"log lines without the task manager id: {bad[:5]}")
        want = (rf'^WARN \S+Z tm-0 job={jobid[:8]} att=1 task="{re.escape(sink_vertex)} \(1/1\)" '
                rf'\S+: job {jobid} vertex 1 subtask 0 failed: ')
        hit = [l for l in lines if re.match(want, l)]
        check(hit, f"no failure line with the subtask's identity (pattern {want}):\n"
                   + "\n".join(lines[-20:]))
        print(f"(c) identity: {hit[0][:160]}")


def part_token():
    with Cluster("34-tm-token", tms=1, slots=1, tm_conf={"rest.auth.token": TOKEN}) as c:
        port = metrics_port(c, 0)
        check(port, "no /metrics port")
        for what, tok in [("no token", None), ("a wrong token", "wrong"),
                          ("the token with a suffix", TOKEN + "x")]:
            st, body = scrape(port, tok)
            check(st == 401, f"/metrics with {what}: {st} {body[:200]}")
        st, body = scrape(port, TOKEN)
        check(st == 200 and "weir_process_cpu_seconds_total{tm_id=\"tm-0\"}" in body,
              f"/metrics with the token: {st} {body[:300]}")
        promtool(body, "/metrics of a task manager without tasks")
        st, _ = scrape(port, TOKEN, path="/nope")
        check(st == 404, f"GET /nope: {st}")
        rss = [v for n, _, v in parse(body) if n == "weir_process_resident_memory_bytes"]
        with open(f"/proc/{c.tms[0].pid}/status") as f:
            vmrss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
        check(rss and vmrss / 2 < rss[0] < vmrss * 2, f"RSS {rss} vs VmRSS {vmrss}")
        print(f"(d) token: 401 without it or with a wrong one, 200 with it; RSS {rss[0]:.0f} "
              f"(VmRSS {vmrss})")


def part_refused():
    base = ["-D", "jobmanager.rpc.address=127.0.0.1", "-D", "jobmanager.rpc.port=1",
            "-D", "taskmanager.bind-host=127.0.0.1", "-D", "taskmanager.host=127.0.0.1"]
    for extra, needles in [
            (["metrics.reporter.prom.host=0.0.0.0"],
             ("metrics.reporter.prom.host 0.0.0.0", "rest.auth.token")),
            (["metrics.reporter.prom.port=9260-9250"], ("metrics.reporter.prom.port", "9260-9250")),
            (["metrics.reporter.prom.port=abc"], ("metrics.reporter.prom.port", "'abc'")),
            (["metrics.reporter.prom.port=70000"], ("metrics.reporter.prom.port",)),
            (["taskmanager.log.tail-size=100mb"], ("taskmanager.log.tail-size",))]:
        args = [os.path.join(BIN, "weir-taskmanager")] + base
        for kv in extra:
            args += ["-D", kv]
        r = subprocess.run(args, capture_output=True, text=True, timeout=30)
        err = r.stderr.strip().splitlines()
        check(r.returncode == 2 and len(err) == 1 and all(n in err[0] for n in needles),
              f"{extra}: exit {r.returncode}, stderr {r.stderr!r} (expected 2 and one line with "
              f"{needles})")
        print(f"(e) refused {extra}: {err[0]}")


def test():
    part_refused()
    part_token()
    part_identity()
    part_ports_and_counts()


run_test(test)
