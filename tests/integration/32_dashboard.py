"""Integration: the web dashboard (docs/rest.md, "Dashboard") in headless Chromium.

A cluster with a bearer token runs a long wordcount (throttled file source, checkpoints every
500 ms). Then:
- static files: GET /, /index.html and /web/* answer without the token, byte for byte the files
  of jobmanager/web/, with their Content-Type, an ETag equal to the quoted sha256 of the bytes
  (hashlib), Cache-Control no-cache and a Content-Security-Policy of 'self'; If-None-Match gives
  304; an unknown /web/ name is not served (401 without the token, 404 with it); the API still
  needs the token.
- Debian's chromium (--headless=new), driven over the DevTools protocol with Debian's
  python3-websocket (no playwright): the page asks for the token (a wrong one is refused with the
  job manager's message), then lists the running job; the job page draws one SVG vertex per vertex
  of GET /jobs/{id} with the same names, per-vertex rates once two samples exist, backpressure
  levels as REST gives them ("not available" while the endpoint answers 404), the checkpoint
  table with ids REST lists, the exceptions panel (entries or "not available", as REST answers)
  and a vertex's subtasks; the task-manager page lists every task manager of GET /taskmanagers; a
  reload keeps the token (sessionStorage); Savepoint shows the completed savepoint's path (its
  _metadata on disk, REST lists it); clicking Cancel and confirming cancels the job (REST:
  CANCELED) and the page shows it. No JavaScript exception is thrown on the way.
- First, the page (the files of jobmanager/web/) against a stand-in job manager (Python's
  http.server) answering the paths of CONTRACT13.md's H-rest section in Flink's shapes, which
  this job manager may not have yet: backpressure ok/low/high drawn as three colours, the
  exceptions table (HTML in a cause shows as text), busy/idle time of a vertex's subtasks, a task
  manager's memory in KiB/MiB/GiB.
- Screenshots of the job page, the task-manager page and the stand-in's job page are written to
  $WEIR_TEST_ARTIFACTS, else <$WEIR_TEST_TMP or /tmp>/weir-artifacts/ (kept after the test):
  32_dashboard-job.png, 32_dashboard-taskmanagers.png, 32_dashboard-contract.png."""

import base64
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from weirtest import EXAMPLES, SRC, Cluster, TestFailure, check, gen_text, run_test

TOKEN = "5f0d2c9e8b7a61403f2e1d0c9b8a7f6e"
WEB = os.path.join(SRC, "jobmanager", "web")


def artifacts_dir():
    d = os.environ.get("WEIR_TEST_ARTIFACTS") or os.path.join(
        os.environ.get("WEIR_TEST_TMP") or tempfile.gettempdir(), "weir-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


def http(c, path, token=None, headers=None):
    """(status, headers, body bytes) of a GET, errors included."""
    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://{c.address}{path}", headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def check_static(c):
    for path, name, ctype in (("/", "index.html", "text/html"), ("/index.html", "index.html", "text/html"),
                              ("/web/index.html", "index.html", "text/html"),
                              ("/web/app.js", "app.js", "text/javascript"), ("/web/app.css", "app.css", "text/css")):
        with open(os.path.join(WEB, name), "rb") as f:
            want = f.read()
        status, hdr, body = http(c, path)
        check(status == 200, f"GET {path} without a token answered {status}: {body[:200]!r}")
        check(body == want, f"GET {path}: {len(body)} bytes, not jobmanager/web/{name} ({len(want)} bytes)")
        check(hdr["Content-Type"].startswith(ctype), f"GET {path}: Content-Type {hdr['Content-Type']}")
        etag = '"' + hashlib.sha256(want).hexdigest() + '"'
        check(hdr["ETag"] == etag, f"GET {path}: ETag {hdr['ETag']}, want {etag}")
        check(hdr["Cache-Control"] == "no-cache", f"GET {path}: Cache-Control {hdr['Cache-Control']}")
        csp = hdr["Content-Security-Policy"] or ""
        check("default-src 'self'" in csp and "frame-ancestors 'none'" in csp, f"GET {path}: CSP {csp!r}")
        check(hdr["X-Content-Type-Options"] == "nosniff", f"GET {path}: no nosniff")
        status, hdr, body = http(c, path, headers={"If-None-Match": etag})
        check(status == 304 and body == b"", f"GET {path} with If-None-Match: {status}, {len(body)} bytes")
        status, _, _ = http(c, path, headers={"If-None-Match": '"0000"'})
        check(status == 200, f"GET {path} with another ETag: {status}")
    status, _, body = http(c, "/web/nope.js")
    check(status == 401, f"GET /web/nope.js without a token: {status} (only embedded files are open)")
    status, _, body = http(c, "/web/nope.js", token=TOKEN)
    check(status == 404, f"GET /web/nope.js: {status} {body[:200]!r}")
    status, _, body = http(c, "/jobs")
    check(status == 401, f"GET /jobs without a token answered {status}: the API must stay closed")
    print("static files: bytes, Content-Type, ETag/304, CSP; API still needs the token")


def import_websocket():
    """Debian's python3-websocket (websocket-client, pure Python; scripts/install-deps.sh). A
    python3 other than Debian's (pyenv, a venv) does not see /usr/lib/python3/dist-packages: the
    module is then taken from there (appended to sys.path, so nothing of its own is shadowed)."""
    try:
        import websocket
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")
        try:
            import websocket
        except ImportError:
            raise TestFailure("python3-websocket missing: install Debian's python3-websocket "
                              "(scripts/install-deps.sh)")
    return websocket


class Chrome:
    """Headless Chromium with one page, driven over the DevTools protocol (websocket)."""

    def __init__(self, workdir):
        websocket = import_websocket()
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        check(exe, "chromium not found: install Debian's chromium (scripts/install-deps.sh)")
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=workdir)
        argv = [exe, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
                "--disable-dev-shm-usage", "--window-size=1400,1100", "about:blank"]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.log = os.path.join(workdir, "chromium.log")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            port = self._devtools_port()
            deadline = time.time() + 30
            page = None
            while page is None and time.time() < deadline:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                    page = next((t for t in json.loads(r.read()) if t.get("type") == "page"), None)
                if page is None:
                    time.sleep(0.2)
            check(page is not None, "chromium has no page target")
            self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60,
                                                  suppress_origin=True)
        except BaseException:
            self.close()
            raise
        self.seq = 0
        self.errors = []  # JavaScript exceptions and console.error calls of the page
        self.call("Runtime.enable")
        self.call("Page.enable")

    def _devtools_port(self):
        path = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 60
        while time.time() < deadline:
            check(self.proc.poll() is None, f"chromium exited with {self.proc.returncode}: {self._log_tail()}")
            try:
                with open(path) as f:
                    line = f.readline().strip()
                if line:
                    return int(line)
            except OSError:
                pass
            time.sleep(0.1)
        raise TestFailure(f"chromium wrote no DevToolsActivePort within 60 s: {self._log_tail()}")

    def _log_tail(self):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-20:])
        except OSError:
            return ""

    def call(self, method, **params):
        self.seq += 1
        self.ws.send(json.dumps({"id": self.seq, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("method") == "Runtime.exceptionThrown":
                d = msg["params"]["exceptionDetails"]
                self.errors.append(d.get("exception", {}).get("description") or d.get("text"))
            elif msg.get("method") == "Runtime.consoleAPICalled" and msg["params"]["type"] == "error":
                self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in msg["params"]["args"]))
            if msg.get("id") == self.seq:
                if "error" in msg:
                    raise TestFailure(f"DevTools {method}: {msg['error']}")
                return msg["result"]

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise TestFailure(f"page evaluation of {expr!r} threw: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait(self, expr, what, timeout=30):
        """Polls a page expression until it is truthy; returns its value."""
        deadline = time.time() + timeout
        value = None
        while time.time() < deadline:
            try:
                value = self.eval(expr)
            except TestFailure as e:  # e.g. a document replaced while evaluating: try again
                value = f"error: {e}"
            else:
                if value:
                    return value
            time.sleep(0.2)
        text = self.eval("document.body ? document.body.innerText.slice(0, 3000) : ''")
        raise TestFailure(f"page: {what} not seen within {timeout} s (last value {value!r})\npage text:\n{text}")

    def navigate(self, url):
        """Goes to url and waits until its document is loaded (a fragment change stays in the
        same document)."""
        self.call("Page.navigate", url=url)
        self.wait(f"location.href === {json.dumps(url)} && document.readyState === 'complete'",
                  f"the page {url}")

    def reload(self):
        """Reloads the page (a new document) and waits until it is loaded."""
        self.eval("window.__before_reload = true")
        self.call("Page.reload")
        self.wait("window.__before_reload === undefined && document.readyState === 'complete'",
                  "the reloaded page")

    def click(self, selector):
        """A real mouse click (pressed + released) at the centre of the element."""
        at = self.eval(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            if (!e) return null; e.scrollIntoView({{block: 'center'}});
            const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        check(at, f"page: nothing to click at {selector}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=at[0], y=at[1], button="left", clickCount=1)

    def type(self, selector, text):
        self.eval(f"document.querySelector({json.dumps(selector)}).focus()")
        self.call("Input.insertText", text=text)

    def screenshot(self, path):
        r = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        data = base64.b64decode(r["data"])
        with open(path, "wb") as f:
            f.write(data)
        check(data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG")
        w, h = struct.unpack(">II", data[16:24])
        check(w >= 800 and h >= 400, f"screenshot {path} is {w}x{h}")
        print(f"screenshot {path} ({w}x{h}, {len(data)} bytes)")

    def close(self):
        if getattr(self, "ws", None):
            try:
                self.ws.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


MOCK_JOB = "0123456789abcdef0123456789abcdef"
MOCK_LEVELS = ["high", "low", "ok"]


def mock_answers(path, n):
    """The answers of a job manager that has H-rest's paths (CONTRACT13.md, "H-rest": Flink's
    shapes), for the page's rendering of what the cluster above cannot show yet; n counts the
    requests of /jobs/{id} so that the counters grow. (status, body) or None (404)."""
    now = int(time.time() * 1000)
    if path == "/taskmanagers":
        return 200, {"taskmanagers": [{"id": "tm-0", "address": "10.0.0.1", "data_address": "tcp://10.0.0.1:6121",
                                       "slots_total": 4, "slots_free": 1, "last_heartbeat_ms_ago": 120, "pid": 7}]}
    if path == "/taskmanagers/tm-0":
        return 200, {"id": "tm-0", "slotsNumber": 4, "freeSlots": 1,
                     "memoryConfiguration": {"totalProcessMemory": 1 << 30, "networkMemory": 64 << 20},
                     "metrics": {"rss": 700 << 20, "metricsPort": 9249}}
    if path == "/jobs":
        return 200, {"jobs": [{"id": MOCK_JOB, "name": "mock", "state": "RUNNING", "start_time": now - 60000, "end_time": -1}]}
    if path == f"/jobs/{MOCK_JOB}":
        k = 1000 * n
        return 200, {"id": MOCK_JOB, "name": "mock", "state": "RUNNING", "message": None, "start_time": now - 60000,
                     "end_time": -1, "restarts": 0, "attempt": 1, "vertices": [
                         {"id": i, "name": name, "parallelism": 2,
                          "inputs": [{"edge": i - 1, "source": i - 1, "input": 0, "partitioning": "HASH"}] if i else [],
                          "metrics": {"records_in": k * i, "records_out": k * (i + 1)},
                          "subtasks": [{"subtask": t, "state": "RUNNING", "taskmanager": "tm-0",
                                        "metrics": {"records_in": 0, "records_out": 0, "backpressured_ms": 0}} for t in range(2)]}
                         for i, name in enumerate(["Source: gen", "map <x> & y", "Sink: print"])]}
    if path == f"/jobs/{MOCK_JOB}/checkpoints":
        return 200, {"counts": {"triggered": 1, "in_progress": 0, "completed": 1, "failed": 0, "restored": 0},
                     "latest": {"completed": None, "restored": None},
                     "history": [{"id": 1, "is_savepoint": False, "checkpoint_type": "CHECKPOINT", "status": "COMPLETED",
                                  "trigger_timestamp": now, "duration_ms": 12, "state_size": 1 << 20, "uploaded_size": 1 << 19,
                                  "alignment_duration_ms": 0, "failure": None}]}
    if path == f"/jobs/{MOCK_JOB}/exceptions":
        return 200, {"exceptionHistory": {"entries": [{"exceptionName": "TaskManagerLost", "timestamp": now - 1000,
                     "stacktrace": "<b>task manager tm-9 lost</b>", "taskName": "Sink: print (1/2)",
                     "location": "10.0.0.9", "taskManagerId": "tm-9"}], "truncated": False}}
    parts = path.split("/")
    if path.startswith(f"/jobs/{MOCK_JOB}/vertices/") and path.endswith("/backpressure"):
        level = MOCK_LEVELS[int(parts[4])]
        return 200, {"status": "ok", "backpressure-level": level, "end-timestamp": now,
                     "subtasks": [{"subtask": 0, "backpressure-level": level, "ratio": {"high": 0.8, "low": 0.3, "ok": 0.0}[level]}]}
    if path.startswith(f"/jobs/{MOCK_JOB}/vertices/"):
        return 200, {"id": parts[4], "subtasks": [{"subtask": t, "metrics": {"accumulated-busy-time": 1500, "accumulated-idle-time": 250,
                     "accumulated-backpressured-time": 40}} for t in range(2)]}
    return None


def contract_part(art):
    """The page against a stand-in job manager with H-rest's paths: backpressure colours per
    level, the exceptions table (its text shown as text, not HTML), busy/idle of a vertex's
    subtasks, a task manager's memory (bytes as KiB/MiB/GiB); no JavaScript error."""
    import http.server
    import threading
    count = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            path = self.path
            name = {"/": "index.html"}.get(path, path[len("/web/"):] if path.startswith("/web/") else None)
            if name in ("index.html", "app.js", "app.css"):
                with open(os.path.join(WEB, name), "rb") as f:
                    body, ctype = f.read(), {"html": "text/html", "js": "text/javascript", "css": "text/css"}[name.split(".")[1]]
            else:
                if path == f"/jobs/{MOCK_JOB}":
                    count[0] += 1
                answer = mock_answers(path, count[0])
                status, obj = answer if answer else (404, {"error": f"no such endpoint: GET {path}"})
                body, ctype = json.dumps(obj).encode(), "application/json"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="weir-dashboard-mock-", dir=os.environ.get("WEIR_TEST_TMP"))
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        with Chrome(work) as b:
            b.navigate(base + f"#/jobs/{MOCK_JOB}")
            levels = b.wait("(() => { const l = [...document.querySelectorAll('#job-graph g.vertex')]"
                            ".map(g => g.dataset.backpressure); return l.length === 3 ? l : null; })()", "the mock graph")
            check(levels == MOCK_LEVELS, f"backpressure levels {levels}, want {MOCK_LEVELS}")
            fills = b.eval("[...document.querySelectorAll('#job-graph g.vertex rect.box')].map(r => getComputedStyle(r).fill)")
            check(len(set(fills)) == 3, f"the three levels are not three colours: {fills}")
            b.wait("document.querySelector('#job-graph g.vertex[data-vertex-id=\"0\"] text.rate').textContent.match(/out [0-9.]+( k)?\\/s/)",
                   "a rate from two samples")
            row = b.wait("document.querySelector('#exceptions-table tr.exception-row')?.innerText", "the exception row")
            check("TaskManagerLost" in row and "<b>task manager tm-9 lost</b>" in row and "tm-9" in row,
                  f"exception row {row!r} (its HTML must show as text)")
            check(b.eval("document.querySelectorAll('#exceptions-table b').length") == 0, "exception text became HTML")
            b.click('#job-graph g.vertex[data-vertex-id="1"] rect.box')
            sub = b.wait("document.getElementById('subtasks-table')?.innerText", "the subtasks of a vertex")
            check("Busy" in sub and "1.5 s" in sub and "250 ms" in sub, f"subtasks {sub!r}")
            b.screenshot(os.path.join(art, "32_dashboard-contract.png"))
            b.navigate(base + "#/taskmanagers")
            tm = b.wait("document.querySelector('div.tm[data-tm-id=\"tm-0\"]')?.innerText", "the task manager's details")
            check("memoryConfiguration" in tm and "1.0 GiB" in tm and "64.0 MiB" in tm and "700.0 MiB" in tm,
                  f"task manager details {tm!r}")
            check(not b.errors, f"JavaScript errors on the page: {b.errors}")
        print("contract: backpressure ok/low/high coloured, exceptions, busy/idle, task-manager memory")
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(work, ignore_errors=True)


def test():
    art = artifacts_dir()
    contract_part(art)
    conf = {"rest.auth.token": TOKEN}
    with Cluster("dashboard", tms=2, slots=2, checkpoints="500ms", conf=conf, savepoints=True) as c:
        text = os.path.join(c.dir, "input.txt")
        gen_text(text, 400_000)
        jobid = c.submit("-p", "2", os.path.join(EXAMPLES, "wordcount.so"), "--input", text,
                         "--output", os.path.join(c.dir, "out"), "--rate", "200")
        c.wait_state(jobid, {"RUNNING"}, timeout=60)
        c.wait_checkpoints(jobid, 2, timeout=60)
        check_static(c)
        job = c.job(jobid)
        vertices = job["vertices"]
        with Chrome(c.dir) as b:
            b.navigate(f"http://{c.address}/")
            b.wait("!document.getElementById('token-form').hidden", "the token form")
            b.type("#token-input", "not-the-token")
            b.click("#token-submit")
            msg = b.wait("document.getElementById('token-error').textContent", "the refusal of a wrong token")
            check("rest.auth.token" in msg and not b.eval("document.getElementById('token-form').hidden"),
                  f"a wrong token: {msg!r}")
            b.type("#token-input", TOKEN)
            b.click("#token-submit")
            row = f'tr.job-row[data-job-id="{jobid}"]'
            text_row = b.wait(f"document.querySelector({json.dumps(row)})?.innerText", "the job in the list")
            check(job["name"] in text_row and "RUNNING" in text_row, f"job row: {text_row!r}")
            check(b.eval(f"sessionStorage.getItem('weir.token') === {json.dumps(TOKEN)} && "
                         "localStorage.length === 0"), "the token is not (only) in sessionStorage")
            print(f"job list: {text_row!r}")

            b.click(row + " a")
            b.wait("location.hash.startsWith('#/jobs/')", "the job page")
            names = b.wait("(() => { const n = [...document.querySelectorAll('#job-graph g.vertex')]"
                           ".map(g => g.dataset.name); return n.length ? n : null; })()", "the graph")
            check(sorted(names) == sorted(v["name"] for v in vertices),
                  f"graph vertices {names} != REST {[v['name'] for v in vertices]}")
            ids = b.eval("[...document.querySelectorAll('#job-graph g.vertex')].map(g => +g.dataset.vertexId)")
            check(sorted(ids) == sorted(v["id"] for v in vertices), f"graph vertex ids {ids}")
            n_edges = sum(len(v["inputs"]) for v in vertices)
            check(b.eval("document.querySelectorAll('#job-graph path.edge').length") == n_edges,
                  f"graph: not {n_edges} edges")
            # the source's rate, from two samples, is shown (it emits 200 lines/s)
            src = next(v for v in vertices if not v["inputs"])
            rate = b.wait(f"(() => {{ const t = document.querySelector('#job-graph g.vertex[data-vertex-id=\"{src['id']}\"] text.rate')"
                          "?.textContent; return t && !t.includes('out – /s') ? t : null; })()",
                          "the source's rate", timeout=30)
            print(f"graph: {len(names)} vertices {names}, {n_edges} edges; source {rate!r}")
            # backpressure: as REST answers (this job manager may not have the endpoint yet)
            for v in vertices:
                status, _, body = http(c, f"/jobs/{jobid}/vertices/{v['id']}/backpressure", token=TOKEN)
                level = b.eval(f"document.querySelector('#job-graph g.vertex[data-vertex-id=\"{v['id']}\"]').dataset.backpressure")
                if status == 404:
                    check(level == "na", f"vertex {v['name']}: backpressure {level} while REST answers 404")
                else:
                    check(status == 200 and level in ("ok", "low", "high"), f"vertex {v['name']}: level {level}, REST {status}")
            # checkpoints: rows with ids REST lists
            cks = b.wait("(() => { const r = [...document.querySelectorAll('#checkpoints-table tbody tr')]"
                         ".map(t => [+t.dataset.checkpointId, t.children[2].innerText]);"
                         " return r.some(x => x[1] === 'COMPLETED') ? r : null; })()", "a COMPLETED checkpoint row")
            rest_ids = {h["id"] for h in c.checkpoints(jobid)["history"]}
            check(all(i in rest_ids or i > max(rest_ids) for i, _ in cks), f"checkpoint rows {cks} vs REST {rest_ids}")
            print(f"checkpoints: {len(cks)} rows, newest {cks[0]}")
            # exceptions: entries, or "not available" when REST has no such path
            status, _, body = http(c, f"/jobs/{jobid}/exceptions", token=TOKEN)
            if status == 404:
                b.wait("document.getElementById('exceptions-na')?.textContent === 'not available'",
                       "exceptions: not available")
            else:
                n = len(json.loads(body)["exceptionHistory"]["entries"])
                b.wait(f"document.querySelectorAll('#exceptions-table tbody tr').length === {n}"
                       f" || ({n} === 0 && document.getElementById('exceptions').innerText.includes('No exceptions'))",
                       f"{n} exception rows")
            print(f"exceptions: REST {status}, panel shown")
            # a vertex's subtasks
            b.click(f'#job-graph g.vertex[data-vertex-id="{src["id"]}"] rect.box')
            b.wait(f"document.querySelectorAll('#subtasks-table tbody tr').length === {src['parallelism']}",
                   f"{src['parallelism']} subtask rows of {src['name']}")
            time.sleep(2.5)  # one more refresh: rates on every vertex
            b.screenshot(os.path.join(art, "32_dashboard-job.png"))

            b.navigate(f"http://{c.address}/#/taskmanagers")
            b.reload()
            want_tms = sorted(c.taskmanager_ids())
            got = b.wait("(() => { const r = [...document.querySelectorAll('#tms-table tr.tm-row')]"
                         ".map(t => t.dataset.tmId); return r.length ? r.sort() : null; })()", "the task managers")
            check(got == want_tms, f"task managers {got} != REST {want_tms}")
            check(b.eval("document.getElementById('token-form').hidden"), "a reload asked for the token again")
            for tm in want_tms:  # details: every member of GET /taskmanagers/{id}, or "not available"
                status, _, body = http(c, f"/taskmanagers/{tm}", token=TOKEN)
                shown = b.wait(f"document.querySelector('div.tm[data-tm-id=\"{tm}\"]')?.innerText", f"details of {tm}")
                want = ["not available"] if status == 404 else list(json.loads(body))
                check(status in (200, 404) and all(k in shown for k in want),
                      f"details of {tm}: REST {status} {want}, page {shown!r}")
            print(f"task managers: {got} (the reload kept the token)")
            b.screenshot(os.path.join(art, "32_dashboard-taskmanagers.png"))

            b.navigate(f"http://{c.address}/#/jobs/{jobid}")
            b.wait("document.getElementById('job-state')?.innerText === 'RUNNING'", "the job page, RUNNING")
            b.click("#btn-savepoint")
            out = b.wait("(() => { const t = document.getElementById('outcome-text')?.textContent;"
                         " return t && !t.includes('in progress') && !t.includes('sending') ? t : null; })()",
                         "the outcome of Savepoint", timeout=120)
            check(out.startswith("Savepoint completed: "), f"savepoint outcome: {out!r}")
            sp = out[len("Savepoint completed: "):]
            check(sp.startswith(os.path.join(c.dir, "savepoints")) and os.path.isfile(os.path.join(sp, "_metadata")),
                  f"savepoint {sp}: not a savepoint directory under state.savepoints.dir")
            check(any(h["is_savepoint"] and h["status"] == "COMPLETED" for h in c.checkpoints(jobid)["history"]),
                  "REST lists no completed savepoint")
            print(f"savepoint: {out!r}")
            b.click("#btn-cancel")
            b.click("#confirm-yes")
            out = b.wait("(() => { const t = document.getElementById('outcome-text')?.textContent;"
                         " return t && t.startsWith('Cancel') && !t.includes('sending') ? t : null; })()",
                         "the outcome of Cancel")
            check(out.startswith("Cancel accepted"), f"cancel outcome: {out!r}")
            c.wait_state(jobid, {"CANCELED"}, timeout=60)
            b.wait("document.getElementById('job-state')?.innerText === 'CANCELED'", "CANCELED on the page")
            check(b.eval("document.getElementById('btn-cancel').disabled"), "Cancel still enabled")
            print(f"cancel: {out!r}; REST CANCELED; the page shows CANCELED")
            check(not b.errors, f"JavaScript errors on the page: {b.errors}")


run_test(test)
