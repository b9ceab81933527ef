"""Integration: the web dashboard (docs/rest.md, "Dashboard") in headless Chromium, against a real
cluster only (three task managers with two slots each, a bearer token, checkpoints every 500 ms).

Two jobs run: a long wordcount (throttled file source) and slowsink (tests/plugins/slowsink.c: an
unbounded datagen into a sink that takes 2,000 records/s per subtask, so its source vertex is really
backpressured, as in 02_backpressure.py). Then:
- static files: GET /, /index.html and /web/* answer without the token, byte for byte the files
  of jobmanager/web/, with their Content-Type, an ETag equal to the quoted sha256 of the bytes
  (hashlib), Cache-Control no-cache and a Content-Security-Policy of 'self'; If-None-Match gives
  304; an unknown /web/ name is not served (401 without the token, 404 with it); the API still
  needs the token.
- Debian's chromium (--headless=new), driven over the DevTools protocol with Debian's
  python3-websocket (no playwright): the page asks for the token (a wrong one is refused with the
  job manager's message), then lists both running jobs; a job id the job manager does not know
  shows "not available" (REST 404); the wordcount page draws one SVG vertex per vertex of
  GET /jobs/{id} with the same names, per-vertex rates once two samples exist, the checkpoint
  table with ids REST lists, and a vertex's subtasks whose busy / idle / backpressured times equal
  GET /jobs/{id}/vertices/{vid} within one refresh of the page; a click 0.6 s after a refresh
  (which refreshes at once) leaves the rates taken over at least 1.5 s (REST's counters move only
  with heartbeats: over 0.6 s a 5,000 records/s source showed as 4/s);
- the slowsink page: every vertex's colour is the legend's colour of the level
  GET /jobs/{id}/vertices/{vid}/backpressure gives (within one refresh), the source's level is
  high and the sink's is not, and the two colours differ;
- the task-manager page lists every task manager of GET /taskmanagers, and each one's details
  hold every member of GET /taskmanagers/{id} with its value (within one refresh; bytes shown as
  B/KiB/MiB/GiB of that value); a reload keeps the token (sessionStorage);
- Savepoint shows the completed savepoint's path (its _metadata on disk, REST lists it); clicking
  Cancel and confirming cancels the wordcount (REST: CANCELED) and the page shows it;
- a task manager hosting slowsink is killed with kill -9: once GET /jobs/{id}/exceptions lists a
  TaskManagerLost naming it, the exceptions panel shows exactly REST's entries (time, name, task,
  task manager, cause), within one refresh.
- No JavaScript exception is thrown on the way.
- Screenshots are written to $WEIR_TEST_ARTIFACTS, else <$WEIR_TEST_TMP or /tmp>/weir-artifacts/
  (kept after the test): 32_dashboard-job.png (wordcount), 32_dashboard-backpressure.png (slowsink),
  32_dashboard-taskmanagers.png, 32_dashboard-exceptions.png (slowsink after the kill)."""

import base64
import concurrent.futures
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

from weirtest import EXAMPLES, SRC, TEST_PLUGINS, Cluster, TestFailure, check, gen_text, run_test

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


def rest(c, path):
    """GET path with the token: must answer 200; the parsed answer."""
    status, _, body = http(c, path, token=TOKEN)
    check(status == 200, f"GET {path}: {status} {body[:300]!r}")
    return json.loads(body)


def within_one_refresh(b, what, page_expr, rest_fn, compare, refreshes=10):
    """What the page shows against what REST answers. Waits for the page's next refresh (app.js
    counts them in #refreshed's data-count), reads the page (page_expr) and asks REST right away
    (rest_fn()); compare(page, answer) is None when they agree, else what differs. REST moves on
    with every heartbeat (500 ms), and a heartbeat may land between the page's fetch and ours: a
    disagreement is tried again after the next refresh, up to `refreshes` times. Returns the
    agreeing (page, answer)."""
    last = None
    for _ in range(refreshes):
        n = b.eval("+(document.getElementById('refreshed').dataset.count || 0)")
        b.wait(f"+(document.getElementById('refreshed').dataset.count || 0) > {n}", f"a refresh ({what})", timeout=15)
        page = b.eval(page_expr)
        answer = rest_fn()
        last = compare(page, answer)
        if last is None:
            return page, answer
    raise TestFailure(f"{what}: the page disagreed with REST at {refreshes} refreshes in a row; last: {last}")


def fmt_time(ms):
    """app.js's fmtTime: UTC, seconds, 'YYYY-MM-DD HH:MM:SSZ'."""
    if not isinstance(ms, int) or ms <= 0:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ms // 1000))


def shown_ms_matches(text, ms):
    """Whether app.js's fmtMs text ("250 ms", "1.5 s", "2 min 3 s", "1 h 2 min") shows ms."""
    if not isinstance(ms, int) or ms < 0:
        return text == "–"
    p = text.split()
    if len(p) == 2 and p[1] == "ms":
        return int(p[0]) == ms
    if len(p) == 2 and p[1] == "s":
        return abs(float(p[0]) * 1000 - ms) <= 50.001
    if len(p) == 4 and p[1] == "min":
        return int(p[0]) * 60 + int(p[2]) == ms // 1000
    if len(p) == 4 and p[1] == "h":
        return int(p[0]) * 60 + int(p[2]) == ms // 60000
    return False


def shown_bytes_matches(text, n):
    """Whether app.js's fmtBytes text ("812 B", "1.5 MiB") shows n bytes (one decimal)."""
    num, unit = text.split()
    k = ["B", "KiB", "MiB", "GiB", "TiB"].index(unit)
    return int(num) == n if k == 0 else abs(float(num) * 1024 ** k - n) <= 0.05 * 1024 ** k + 1


def check_subtasks(b, c, jobid, v):
    """The page's subtask table of vertex v: busy / idle / backpressured time as
    GET /jobs/{id}/vertices/{vid} answers (raw ms in data-value, shown as fmtMs of it)."""
    b.click(f'#job-graph g.vertex[data-vertex-id="{v["id"]}"] rect.box')
    b.wait(f"document.querySelectorAll('#subtasks-table tbody tr').length === {v['parallelism']}",
           f"{v['parallelism']} subtask rows of {v['name']}")
    expr = ("[...document.querySelectorAll('#subtasks-table tbody tr')].map(r => [+r.dataset.subtask,"
            " Object.fromEntries([...r.querySelectorAll('td[data-metric]')].map(d =>"
            " [d.dataset.metric, [d.dataset.value === undefined ? null : +d.dataset.value, d.textContent]]))])")
    names = {"busy": "accumulated-busy-time", "idle": "accumulated-idle-time",
             "backpressured": "accumulated-backpressured-time"}

    # the three times are counters that every heartbeat (500 ms per task manager) moves on: the
    # page's figure, fetched during the refresh waited for, lies between what REST said before
    # that wait and what it says right after the page was read
    before = {s["subtask"]: s["metrics"]
              for s in rest(c, f"/jobs/{jobid}/vertices/{v['id']}")["subtasks"]}

    def compare(page, answer):
        want = {s["subtask"]: s["metrics"] for s in answer["subtasks"]}
        if sorted(st for st, _ in page) != sorted(want):
            return f"subtasks {[st for st, _ in page]} vs REST {sorted(want)}"
        for st, cells in page:
            if sorted(cells) != sorted(names):
                return f"subtask {st}: columns {sorted(cells)}"
            for m, (raw, text) in cells.items():
                lo, hi = before[st][names[m]], want[st][names[m]]
                if raw is None or not lo <= raw <= hi:
                    return f"subtask {st} {m}: page {raw}, REST {lo} before and {hi} after"
                if not shown_ms_matches(text, raw):
                    return f"subtask {st} {m}: shown {text!r} for {raw} ms"
        return None

    page, _ = within_one_refresh(b, f"busy/idle of {v['name']}", expr,
                                 lambda: rest(c, f"/jobs/{jobid}/vertices/{v['id']}"), compare)
    check(any(cells["busy"][0] > 0 for _, cells in page) and any(cells["idle"][0] > 0 for _, cells in page),
          f"{v['name']}: no busy or no idle time at all: {page}")
    return page


def check_rate_window(b, v):
    """A click on vertex v 0.6 s after a refresh refreshes at once: the rates shown must still
    span at least app.js's RATE_WINDOW_MS (1.5 s; REST's counters move only with heartbeats),
    not the 0.6 s since the previous refresh."""
    n = b.eval("+(document.getElementById('refreshed').dataset.count || 0)")
    b.wait(f"+(document.getElementById('refreshed').dataset.count || 0) > {n}", "a refresh (rate window)")
    time.sleep(0.6)
    b.click(f'#job-graph g.vertex[data-vertex-id="{v["id"]}"] rect.box')
    b.wait(f"document.querySelector('#vertex-detail h3')?.textContent === {json.dumps('Subtasks of ' + v['name'])}",
           f"the subtasks of {v['name']} (a refresh at once)")
    windows = b.eval("[...document.querySelectorAll('#job-graph g.vertex')].map(g => +g.dataset.rateWindowMs)")
    check(all(w >= 1500 for w in windows), f"rates over windows of {windows} ms (at least 1500 ms)")
    print(f"rates over {windows} ms after a click")


def check_backpressure(b, c, jobid, vertices):
    """Each vertex's colour is the legend's colour of the level REST gives it; returns
    {vertex id: level}."""
    expr = ("[[...document.querySelectorAll('#job-graph g.vertex')].map(g => [+g.dataset.vertexId,"
            " g.dataset.backpressure, getComputedStyle(g.querySelector('rect.box')).fill]),"
            " Object.fromEntries(['ok', 'low', 'high', 'na'].map(l =>"
            " [l, getComputedStyle(document.querySelector('.legend .bp-' + l)).backgroundColor]))]")

    def compare(page, answer):
        shown, legend = page
        if sorted(i for i, _, _ in shown) != sorted(answer):
            return f"vertices {[i for i, _, _ in shown]} vs {sorted(answer)}"
        for i, level, fill in shown:
            if level != answer[i]:
                return f"vertex {i}: page {level}, REST {answer[i]}"
            if fill != legend[answer[i]]:
                return f"vertex {i}: fill {fill}, the legend's {answer[i]} is {legend[answer[i]]}"
        return None

    def levels():
        return {v["id"]: rest(c, f"/jobs/{jobid}/vertices/{v['id']}/backpressure")["backpressure-level"]
                for v in vertices}

    (shown, legend), answer = within_one_refresh(b, "backpressure colours", expr, levels, compare)
    check(len({legend[lv] for lv in ("ok", "low", "high", "na")}) == 4, f"legend colours {legend}")
    return answer, {i: fill for i, _, fill in shown}


def check_exceptions(b, c, jobid):
    """The exceptions panel shows exactly GET /jobs/{id}/exceptions' entries."""
    expr = ("[...document.querySelectorAll('#exceptions-table tbody tr')].map(r =>"
            " [...r.children].map(d => d.textContent))")

    def compare(page, answer):
        want = [[fmt_time(e["timestamp"]), e["exceptionName"] or "", e.get("taskName") or "–",
                 e.get("taskManagerId") or e.get("location") or "–", e.get("stacktrace") or ""]
                for e in answer["exceptionHistory"]["entries"]]
        return None if page == want else f"page {page}\nREST {want}"

    page, answer = within_one_refresh(b, "the exceptions panel", expr,
                                      lambda: rest(c, f"/jobs/{jobid}/exceptions"), compare)
    return page


def check_taskmanagers(b, c):
    """The task-manager page: every task manager of GET /taskmanagers, each one's details every
    member of GET /taskmanagers/{id} with its value (timeSinceLastHeartbeat moves between any two
    reads: only its presence is compared), byte figures shown as B/KiB/MiB/GiB of that value."""
    want_tms = sorted(c.taskmanager_ids())
    got = b.wait("(() => { const r = [...document.querySelectorAll('#tms-table tr.tm-row')]"
                 ".map(t => t.dataset.tmId); return r.length ? r.sort() : null; })()", "the task managers")
    check(got == want_tms, f"task managers {got} != REST {want_tms}")
    expr = ("Object.fromEntries([...document.querySelectorAll('div.tm')].map(d => [d.dataset.tmId,"
            " Object.fromEntries([...d.querySelectorAll('tr[data-key]')].map(r =>"
            " [r.dataset.key, [JSON.parse(r.dataset.value), r.children[1].textContent]]))]))")
    # figures every heartbeat (500 ms per task manager) replaces: the page's fetch and ours are
    # rarely between the same two heartbeats of all three task managers on a loaded machine, so
    # these are compared as what they are: the CPU time only grows (the page read it first), the
    # gauges are the same figure within a factor of 2 (both 0 when nothing is used)
    moving = {"timeSinceLastHeartbeat"}
    grows = {"metrics.cpuTime"}
    gauges = {"metrics.residentMemory", "metrics.nettyShuffleMemoryUsed",
              "metrics.managedMemoryUsed", "metrics.stateCacheUsed"}

    def agrees(k, shown, v):
        if k in grows:
            return isinstance(shown, int) and 0 <= shown <= v
        if k in gauges:
            return isinstance(shown, int) and (shown == v or (v > 0 and v / 2 <= shown <= 2 * v))
        return shown == v

    def flat(obj):
        out = {}
        for k, v in obj.items():
            if isinstance(v, dict):
                out.update({f"{k}.{k2}": v2 for k2, v2 in v.items()})
            else:
                out[k] = v
        return out

    def compare(page, answer):
        if sorted(page) != sorted(answer):
            return f"details of {sorted(page)}, REST {sorted(answer)}"
        for tm, want in answer.items():
            shown = page[tm]
            if sorted(shown) != sorted(want):
                return f"{tm}: members {sorted(shown)}, REST {sorted(want)}"
            for k, v in want.items():
                if k not in moving and not agrees(k, shown[k][0], v):
                    return f"{tm} {k}: page {shown[k][0]!r}, REST {v!r}"
        return None

    def details():  # all at once: the shorter the window after the page's fetch, the fewer heartbeats in it
        with concurrent.futures.ThreadPoolExecutor(len(want_tms)) as pool:
            return dict(zip(want_tms, pool.map(lambda tm: flat(rest(c, f"/taskmanagers/{tm}")), want_tms)))

    page, answer = within_one_refresh(b, "task-manager details", expr, details, compare)
    for tm, want in answer.items():
        for k in ("memoryConfiguration.totalProcessMemory", "memoryConfiguration.networkMemory",
                  "metrics.residentMemory", "metrics.nettyShuffleMemoryUsed"):
            check(k in want, f"GET /taskmanagers/{tm} has no {k}")
            check(shown_bytes_matches(page[tm][k][1], page[tm][k][0]),
                  f"{tm} {k}: shown {page[tm][k][1]!r} for {page[tm][k][0]} bytes")
        check(page[tm]["registeredSince"][1] == fmt_time(want["registeredSince"]),
              f"{tm} registeredSince: shown {page[tm]['registeredSince'][1]!r} for {want['registeredSince']}")
        check(shown_ms_matches(page[tm]["metrics.cpuTime"][1], page[tm]["metrics.cpuTime"][0]),
              f"{tm} cpuTime: shown {page[tm]['metrics.cpuTime'][1]!r} for {page[tm]['metrics.cpuTime'][0]} ms")
        raw, text = page[tm]["timeSinceLastHeartbeat"]
        check(isinstance(raw, int) and shown_ms_matches(text, raw), f"{tm}: timeSinceLastHeartbeat {raw} shown {text!r}")
    return answer


def test():
    art = artifacts_dir()
    conf = {"rest.auth.token": TOKEN}
    with Cluster("dashboard", tms=3, slots=2, checkpoints="500ms", conf=conf, savepoints=True) as c:
        text = os.path.join(c.dir, "input.txt")
        gen_text(text, 400_000)
        jobid = c.submit("-p", "2", os.path.join(EXAMPLES, "wordcount.so"), "--input", text,
                         "--output", os.path.join(c.dir, "out"), "--rate", "200")
        slow = c.submit("-p", "2", os.path.join(TEST_PLUGINS, "slowsink.so"), "--sink-rate", "2000")
        c.wait_state(jobid, {"RUNNING"}, timeout=60)
        c.wait_state(slow, {"RUNNING"}, timeout=60)
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
            for j in (jobid, slow):
                row_text = b.wait(f"document.querySelector('tr.job-row[data-job-id=\"{j}\"]')?.innerText", f"job {j} in the list")
                check(c.job(j)["name"] in row_text and "RUNNING" in row_text, f"job row: {row_text!r}")
            check(b.eval(f"sessionStorage.getItem('weir.token') === {json.dumps(TOKEN)} && "
                         "localStorage.length === 0"), "the token is not (only) in sessionStorage")
            print("job list: both running jobs listed")

            # a job id the job manager does not know: REST 404, the page says so and goes on
            unknown = "f" * 32
            check(http(c, f"/jobs/{unknown}", token=TOKEN)[0] == 404, "GET /jobs/<unknown> is not 404")
            b.navigate(f"http://{c.address}/#/jobs/{unknown}")
            b.wait("document.getElementById('job-meta')?.innerText === 'not available'", "'not available' for an unknown job")

            b.navigate(f"http://{c.address}/")
            b.wait(f"!!document.querySelector('tr.job-row[data-job-id=\"{jobid}\"] a')", "the job list again")
            b.click(f'tr.job-row[data-job-id="{jobid}"] a')
            b.wait(f"location.hash === '#/jobs/{jobid}'", "the job page")
            names = b.wait("(() => { const n = [...document.querySelectorAll('#job-graph g.vertex')]"
                           ".map(g => g.dataset.name); return n.length ? n : null; })()", "the graph")
            check(sorted(names) == sorted(v["name"] for v in vertices),
                  f"graph vertices {names} != REST {[v['name'] for v in vertices]}")
            ids = b.eval("[...document.querySelectorAll('#job-graph g.vertex')].map(g => +g.dataset.vertexId)")
            check(sorted(ids) == sorted(v["id"] for v in vertices), f"graph vertex ids {ids}")
            n_edges = sum(len(v["inputs"]) for v in vertices)
            check(b.eval("document.querySelectorAll('#job-graph path.edge').length") == n_edges,
                  f"graph: not {n_edges} edges")
            src = next(v for v in vertices if not v["inputs"])
            rate = b.wait(f"(() => {{ const t = document.querySelector('#job-graph g.vertex[data-vertex-id=\"{src['id']}\"] text.rate')"
                          "?.textContent; return t && !t.includes('out – /s') ? t : null; })()",
                          "the source's rate", timeout=30)
            print(f"graph: {len(names)} vertices {names}, {n_edges} edges; source {rate!r}")
            cks = b.wait("(() => { const r = [...document.querySelectorAll('#checkpoints-table tbody tr')]"
                         ".map(t => [+t.dataset.checkpointId, t.children[2].innerText]);"
                         " return r.some(x => x[1] === 'COMPLETED') ? r : null; })()", "a COMPLETED checkpoint row")
            rest_ids = {h["id"] for h in c.checkpoints(jobid)["history"]}
            check(all(i in rest_ids or i > max(rest_ids) for i, _ in cks), f"checkpoint rows {cks} vs REST {rest_ids}")
            print(f"checkpoints: {len(cks)} rows, newest {cks[0]}")
            sub = check_subtasks(b, c, jobid, src)
            print(f"subtasks of {src['name']}: busy/idle/backpressured as REST: {sub}")
            check_rate_window(b, next(v for v in vertices if v["inputs"]))
            b.screenshot(os.path.join(art, "32_dashboard-job.png"))

            # slowsink: its source really backpressured (REST says high), colours as REST says
            svs = c.job(slow)["vertices"]
            s_src = next(v for v in svs if not v["inputs"])
            s_sink = next(v for v in svs if v["inputs"])
            deadline = time.time() + 30
            bp_path = f"/jobs/{slow}/vertices/{s_src['id']}/backpressure"
            while (bp := rest(c, bp_path))["backpressure-level"] != "high":
                check(time.time() < deadline, f"slowsink's source never backpressured (high) within 30 s: {bp}")
                time.sleep(0.5)
            b.navigate(f"http://{c.address}/#/jobs/{slow}")
            levels, fills = check_backpressure(b, c, slow, svs)
            check(levels[s_src["id"]] == "high" and levels[s_sink["id"]] == "ok"
                  and fills[s_src["id"]] != fills[s_sink["id"]],
                  f"slowsink: levels {levels} (source high, sink ok: it has no output), fills {fills}")
            print(f"backpressure: levels {levels}, colours {fills} as REST")
            b.click(f'#job-graph g.vertex[data-vertex-id="{s_src["id"]}"] rect.box')
            b.wait("document.querySelectorAll('#subtasks-table tbody tr').length > 0", "slowsink's subtasks")
            b.screenshot(os.path.join(art, "32_dashboard-backpressure.png"))

            b.navigate(f"http://{c.address}/#/taskmanagers")
            b.reload()
            check(b.eval("document.getElementById('token-form').hidden"), "a reload asked for the token again")
            tms = check_taskmanagers(b, c)
            print(f"task managers: {sorted(tms)} details as REST (the reload kept the token)")
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

            # a real failure: kill -9 a task manager of slowsink
            b.navigate(f"http://{c.address}/#/jobs/{slow}")
            b.wait("document.getElementById('job-state')?.innerText === 'RUNNING'", "slowsink's page, RUNNING")
            check(rest(c, f"/jobs/{slow}/exceptions")["exceptionHistory"]["entries"] == [],
                  "slowsink has exceptions before any failure")
            b.wait("document.getElementById('exceptions')?.innerText.includes('No exceptions.')", "'No exceptions.'")
            victim = sorted(c.job_taskmanagers(slow))[0]
            c.kill9(c.tms[int(victim.split("-")[1])])
            deadline = time.time() + 30
            while True:
                ex = rest(c, f"/jobs/{slow}/exceptions")
                if any(e["exceptionName"] == "TaskManagerLost" and e["taskManagerId"] == victim
                       for e in ex["exceptionHistory"]["entries"]):
                    break
                check(time.time() < deadline, f"no TaskManagerLost of {victim} within 30 s: {ex}")
                time.sleep(0.2)
            rows = check_exceptions(b, c, slow)
            check(any(r[1] == "TaskManagerLost" and r[3] == victim for r in rows), f"exception rows {rows}")
            print(f"exceptions after kill -9 of {victim}: {rows}")
            b.screenshot(os.path.join(art, "32_dashboard-exceptions.png"))
            check(not b.errors, f"JavaScript errors on the page: {b.errors}")


run_test(test)
