"""The Flink-shaped REST views, GET /metrics, the exception history and the log proxy, on a real
cluster (three task managers with two slots; wordcount -p 2 occupies two of them, the third is
idle).

Job A (wordcount over a generated text, rate-limited so it runs for a while):
- while it runs, every new path answers and each answer validates against its response schema in
  docs/openapi.yaml, with jsonschema (Draft 2020-12, the dialect of OpenAPI 3.1; not weir's code);
- `promtool check metrics` (Debian's prometheus package) passes on the job manager's /metrics;
- GET /taskmanagers/<unknown>/log is 404; the log of the idle task manager while it is frozen
  (SIGSTOP) is 504 after the 5 s timeout;
- when it FINISHED, the records_out counter of the source vertex ("lines -> split": the words
  split from the lines) in /metrics equals `wc -w` of the input (coreutils).
Job B: kill -9 of a task manager running it; /jobs/B/exceptions then names that task manager.

Full-path assertions that need the task-manager side of issue 13 run once it is merged; before,
the test says it skipped them:
- when the task managers report a resident set size in their heartbeats (`residentMemory` > 0 in
  GET /taskmanagers/{id}: H-tm merged): the log tail of a task manager running job A contains a
  line of job A (its short id), and RSS and CPU time are non-zero;
- when the configuration has `taskmanager.memory.process.size` (GET /jobmanager/config: H-mem
  merged): every task manager reports a non-zero memory budget (process, network, managed)."""

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

from weirtest import EXAMPLES, SRC, Cluster, TestFailure, check, gen_text, run_test


def _import_validator():
    """jsonschema, referencing and PyYAML: from the python3 running the test, else from the tests'
    venv where scripts/python-deps.sh installs them (as for kafka-python, tests/lib/kafkatest.py)."""
    try:
        import jsonschema  # noqa: F401
        import referencing  # noqa: F401
        import yaml  # noqa: F401
    except ImportError:
        import kafkatest
        site = kafkatest._venv_site_packages()
        if not site:
            raise TestFailure("jsonschema/PyYAML missing: run scripts/python-deps.sh")
        if site not in sys.path:
            sys.path.insert(0, site)
    import jsonschema
    import referencing
    import referencing.jsonschema
    import yaml
    return jsonschema, referencing, yaml


jsonschema, referencing, yaml = _import_validator()

SPEC_PATH = os.path.join(SRC, "docs", "openapi.yaml")


class Spec:
    """docs/openapi.yaml: the response schema of (path template, status), validated with
    jsonschema's Draft 2020-12 validator, $refs resolved inside the document."""

    def __init__(self, path):
        with open(path) as f:
            self.doc = yaml.safe_load(f)
        check(self.doc["openapi"].startswith("3.1"), "docs/openapi.yaml is not OpenAPI 3.1")
        resource = referencing.Resource.from_contents(
            self.doc, default_specification=referencing.jsonschema.DRAFT202012)
        self.registry = referencing.Registry().with_resource("urn:weir-openapi", resource)

    def validate(self, template, body, status="200"):
        op = self.doc["paths"][template]["get"]
        check(status in op["responses"], f"docs/openapi.yaml: GET {template} has no {status} answer")
        resp = op["responses"][status]
        if "$ref" in resp:
            resp = self.doc["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
        schema = resp["content"]["application/json"]["schema"]
        validator = jsonschema.Draft202012Validator(self._rebased(schema), registry=self.registry)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            raise TestFailure(f"GET {template} ({status}) does not match docs/openapi.yaml at "
                              f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}")

    @staticmethod
    def _rebased(schema):
        """An inline schema whose "#/..." refs point into the document."""
        if isinstance(schema, dict):
            return {k: ("urn:weir-openapi" + v if k == "$ref" and v.startswith("#") else Spec._rebased(v))
                    for k, v in schema.items()}
        if isinstance(schema, list):
            return [Spec._rebased(v) for v in schema]
        return schema


def request(c, path, timeout=20):
    """GET with the cluster's token: (status, content type, body bytes), errors included."""
    headers = {"Authorization": f"Bearer {c.token}"} if c.token is not None else {}
    req = urllib.request.Request(f"http://{c.address}{path}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def get_json(c, spec, path, template, status=200):
    import json
    code, ctype, body = request(c, path)
    check(code == status, f"GET {path}: {code}, expected {status}: {body[:300]!r}")
    check(ctype.startswith("application/json"), f"GET {path}: content type {ctype}")
    j = json.loads(body)
    spec.validate(template, j, str(status))
    return j


SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def samples(text, name):
    """The samples of family `name` in a text exposition: [(labels dict, float)]."""
    out = []
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and m.group("name") == name:
            out.append((dict(LABEL.findall(m.group("labels") or "")), float(m.group("value"))))
    return out


def promtool_check(text, what):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    check(r.returncode == 0, f"promtool check metrics on {what}: exit {r.returncode}\n{r.stdout}{r.stderr}")


def test():
    check(subprocess.run(["which", "promtool"], capture_output=True).returncode == 0,
          "promtool not found: install Debian's prometheus package (scripts/install-deps.sh)")
    spec = Spec(SPEC_PATH)
    # heartbeat.timeout above the log timeout: the frozen task manager must not be declared lost
    with Cluster("rest_flink", tms=3, slots=2, checkpoints="500ms",
                 conf={"heartbeat.timeout": "20s"}) as c:
        c.wait_taskmanagers(3)
        text_path = os.path.join(c.dir, "input.txt")
        gen_text(text_path, 60000)
        words = int(subprocess.run(["wc", "-w", text_path], capture_output=True, text=True,
                                   check=True).stdout.split()[0])
        lines = int(subprocess.run(["wc", "-l", text_path], capture_output=True, text=True,
                                   check=True).stdout.split()[0])
        rate = max(1, lines // 12)  # about 12 s of input
        jobid = c.submit("-p", "2", os.path.join(EXAMPLES, "wordcount.so"), "--input", text_path,
                         "--output", os.path.join(c.dir, "out-a"), "--rate", str(rate))
        c.wait_state(jobid, {"RUNNING"}, timeout=60)
        c.wait_checkpoints(jobid, 1, timeout=60)
        time.sleep(1.5)  # two heartbeats: the backpressure ratios have two samples

        # ---- every new path of a running job, validated against docs/openapi.yaml
        get_json(c, spec, "/overview", "/overview")
        get_json(c, spec, "/config", "/config")
        get_json(c, spec, "/jobs", "/jobs")
        get_json(c, spec, "/taskmanagers", "/taskmanagers")
        ov = get_json(c, spec, "/jobs/overview", "/jobs/overview")
        check(any(j["jid"] == jobid and j["state"] == "RUNNING" for j in ov["jobs"]),
              f"/jobs/overview does not list {jobid} RUNNING: {ov}")
        cfg = get_json(c, spec, "/jobmanager/config", "/jobmanager/config")
        check(any(e["key"] == "heartbeat.timeout" and e["value"] == "20s" for e in cfg),
              "GET /jobmanager/config lacks heartbeat.timeout: 20s")
        job = c.job(jobid)
        for v in range(len(job["vertices"])):
            vx = get_json(c, spec, f"/jobs/{jobid}/vertices/{v}", "/jobs/{id}/vertices/{vid}")
            check(vx["name"] == job["vertices"][v]["name"], f"vertex {v} name {vx['name']}")
            check(all(s["status"] == "RUNNING" for s in vx["subtasks"]),
                  f"vertex {v}: subtasks not RUNNING: {vx['subtasks']}")
            get_json(c, spec, f"/jobs/{jobid}/vertices/{v}/backpressure",
                     "/jobs/{id}/vertices/{vid}/backpressure")
        get_json(c, spec, f"/jobs/{jobid}/vertices/{len(job['vertices'])}",
                 "/jobs/{id}/vertices/{vid}", status=404)
        ck = get_json(c, spec, f"/jobs/{jobid}/checkpoints/config", "/jobs/{id}/checkpoints/config")
        check(ck["enabled"] and ck["interval"] == 500, f"checkpoint config: {ck}")
        cid = c.checkpoints(jobid)["latest"]["completed"]["id"]
        det = get_json(c, spec, f"/jobs/{jobid}/checkpoints/details/{cid}",
                       "/jobs/{id}/checkpoints/details/{cid}")
        check(det["status"] == "COMPLETED" and det["id"] == cid, f"checkpoint details: {det}")
        ex = get_json(c, spec, f"/jobs/{jobid}/exceptions", "/jobs/{id}/exceptions")
        check(ex["exceptionHistory"]["entries"] == [], f"a healthy job has exceptions: {ex}")
        tm_ids = c.taskmanager_ids()
        tms = {t: get_json(c, spec, f"/taskmanagers/{t}", "/taskmanagers/{tmid}") for t in tm_ids}
        get_json(c, spec, "/taskmanagers/no-such-tm", "/taskmanagers/{tmid}", status=404)

        # ---- /metrics during the run
        code, ctype, body = request(c, "/metrics")
        check(code == 200 and ctype.startswith("text/plain; version=0.0.4"), f"/metrics: {code} {ctype}")
        promtool_check(body.decode(), "the job manager's /metrics during a running job")

        # ---- the log proxy: unknown task manager, and a frozen one (no answer: 504)
        get_json(c, spec, "/taskmanagers/no-such-tm/log", "/taskmanagers/{tmid}/log", status=404)
        hosting = c.job_taskmanagers(jobid)
        idle = [t for t in tm_ids if t not in hosting]
        check(len(idle) == 1, f"expected one idle task manager, hosting {hosting} of {tm_ids}")
        idle_proc = c.tms[int(idle[0].rsplit("-", 1)[1])]  # resource id tm-<index>
        check(idle_proc.pid == tms[idle[0]]["pid"], f"pid of {idle[0]}: {tms[idle[0]]}")
        c.freeze(idle_proc)
        try:
            t0 = time.time()
            get_json(c, spec, f"/taskmanagers/{idle[0]}/log", "/taskmanagers/{tmid}/log", status=504)
            took = time.time() - t0
            check(4.5 <= took < 10, f"the 504 took {took:.1f} s (timeout 5 s)")
        finally:
            c.thaw(idle_proc)

        # ---- full path (task-manager side merged): log lines of the job, process figures; the
        # memory budget once taskmanager.memory.process.size exists (H-mem: a key with a default)
        full = any(t["metrics"]["residentMemory"] > 0 for t in tms.values())
        budget = any(e["key"] == "taskmanager.memory.process.size" for e in cfg)
        if full:
            tm = sorted(hosting)[0]
            code, ctype, body = request(c, f"/taskmanagers/{tm}/log?bytes=262144")
            check(code == 200 and ctype.startswith("text/plain"), f"log of {tm}: {code} {body[:200]!r}")
            tail = body.decode(errors="replace")
            check(len(body) <= 262144, f"log tail of {len(body)} bytes > 262144")
            check(any(jobid[:6] in line for line in tail.splitlines()),
                  f"the log tail of {tm} has no line of job {jobid}:\n{tail[-2000:]}")
            for t, d in tms.items():
                m = d["metrics"]
                check(m["residentMemory"] > 0 and m["cpuTime"] > 0,
                      f"task manager {t}: RSS/CPU not reported: {m}")
        else:
            print("33_rest_flink: the task managers report no RSS yet (task-manager side of issue "
                  "13 not merged): log-tail and process-figure assertions skipped", flush=True)
        if budget:
            for t, d in tms.items():
                mc, m = d["memoryConfiguration"], d["metrics"]
                check(mc["totalProcessMemory"] > 0 and mc["networkMemory"] > 0 and
                      mc["managedMemory"] > 0 and m["nettyShuffleMemoryTotal"] > 0,
                      f"task manager {t}: memory budget not reported: {mc} {m}")
        else:
            print("33_rest_flink: no taskmanager.memory.process.size key yet (memory budget not "
                  "merged): memory-figure assertions skipped", flush=True)

        # ---- the source's records_out equals wc -w of the input
        done = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=300)
        check(done["state"] == "FINISHED", f"job A ended {done['state']}: {done.get('message')}")
        code, _, body = request(c, "/metrics")
        text = body.decode()
        promtool_check(text, "the job manager's /metrics after the job finished")
        src = [(lb, v) for lb, v in samples(text, "weir_task_records_out_total")
               if lb["job_id"] == jobid and lb["vertex_id"] == "0"]
        check(len(src) == 2, f"expected 2 subtasks of vertex 0 in /metrics, got {src}")
        check(src[0][0]["vertex"] == done["vertices"][0]["name"], f"vertex label {src[0][0]}")
        total = sum(v for _, v in src)
        check(total == words, f"records_out of the source vertex in /metrics: {total}, wc -w: {words}")
        state = [v for lb, v in samples(text, "weir_job_state")
                 if lb["job_id"] == jobid and lb["state"] == "FINISHED"]
        check(state == [1.0], f"weir_job_state FINISHED of job A: {state}")

        # ---- job B: a killed task manager is named in the exception history
        job_b = c.submit("-p", "2", os.path.join(EXAMPLES, "wordcount.so"), "--input", text_path,
                         "--output", os.path.join(c.dir, "out-b"), "--rate", str(max(1, lines // 60)))
        c.wait_state(job_b, {"RUNNING"}, timeout=60)
        c.wait_checkpoints(job_b, 1, timeout=60)
        victim = sorted(c.job_taskmanagers(job_b))[0]
        c.kill9(c.tms[int(victim.rsplit("-", 1)[1])])
        deadline = time.time() + 60
        entries = []
        while time.time() < deadline:
            ex = get_json(c, spec, f"/jobs/{job_b}/exceptions", "/jobs/{id}/exceptions")
            entries = ex["exceptionHistory"]["entries"]
            if entries:
                break
            time.sleep(0.2)
        check(entries, f"no exception recorded for job B after killing {victim}")
        e0 = entries[0]
        check(e0["exceptionName"] == "TaskManagerLost" and e0["taskManagerId"] == victim and
              victim in e0["stacktrace"], f"the exception does not name the lost {victim}: {e0}")
        c.cli("cancel", job_b)
        c.wait_state(job_b, {"CANCELED", "FAILED", "FINISHED"}, timeout=120)


run_test(test)
