"""Integration: REST authentication, HTTPS, bounds, and listening addresses (docs/security.md).

- Refusals: a job manager or task manager asked to listen beyond loopback without authentication
  (rest.bind-address without rest.auth.token; jobmanager.bind-host / taskmanager.bind-host without
  security.insecure), an unreadable or empty token file, broken HTTPS settings: exit 2 with one
  line naming the keys. Allowed: REST on 0.0.0.0 with a token; RPC and data plane on 0.0.0.0 with
  security.insecure (a warning in the log).
- Defaults: a job manager and task managers started without any address key listen only on
  loopback (their sockets in /proc/net/tcp{,6}, by pid; cross-checked with `ss -ltn` when present)
  and still run a job across two task managers.
- Token: every request but GET /healthz needs "Authorization: Bearer <token>", else 401 with a JSON
  error and WWW-Authenticate; the body of a refused request is not stored. The CLI without the
  token, or with a wrong one, fails with one line naming rest.auth.token; with it (-D, environment,
  YAML file, token file) it runs a job whose output matches the oracle.
- Bounds: a JSON body over rest.max-request-size (default 1 MiB; with and without Content-Length)
  gets 413, one just under it is parsed (400), a 3 MiB plugin upload still works; with
  rest.max-connections 2, a third connection is served only once the idle ones time out
  (rest.idleness-timeout).
- HTTPS with a self-signed certificate made here with the openssl command: the CLI with
  rest.ssl.trust-cert works (list, run); without it, with another certificate, or over plain HTTP
  it fails with one line naming the key to set.

Parts can be run alone: python3 08_rest_security.py [part...] (refusals, defaults, token, limits,
tls)."""

import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from weirtest import (BIN, EXAMPLES, Cluster, TestFailure, check, check_wordcount_output, free_port, gen_text,
                      oracle_counts, run_test)

TOKEN = "0c1b7a3e5d9f24681357acebdf024689"
N_WORDS = 20_000


def one_line(r, *needles):
    """The single stderr line of a failed program run, checked to name every needle."""
    lines = r.stderr.strip().splitlines()
    check(len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {r.stderr!r}")
    for n in needles:
        check(n in lines[0], f"{lines[0]!r} does not mention {n!r}")
    return lines[0]


def run_prog(prog, *args, env=None, timeout=30):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WEIR_REST")}
    full_env.update(env or {})
    return subprocess.run([os.path.join(BIN, prog)] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def refused(prog, *flags, needles=()):
    """Starts prog with -D flags; it must exit 2 with one line naming needles."""
    argv = []
    for f in flags:
        argv += ["-D", f]
    r = run_prog(prog, *argv)
    check(r.returncode == 2, f"{prog} {' '.join(flags)}: exit {r.returncode} (wanted 2)\n{r.stderr}")
    print(f"refused: {prog} {' '.join(flags)}\n  {one_line(r, *needles)}")


# ---------------------------------------------------------------- sockets

def _proc_listeners():
    """{inode: (address, port)} of every listening TCP socket (IPv4 and IPv6), from the kernel."""
    out = {}
    for path, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            with open(path) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            local, state, inode = cols[1], cols[3], int(cols[9])
            if state != "0A":  # TCP_LISTEN
                continue
            hexaddr, hexport = local.split(":")
            raw = bytes.fromhex(hexaddr)
            if v6:
                # four 32-bit words, each in host (little-endian) order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                addr = socket.inet_ntop(socket.AF_INET6, raw)
            else:
                addr = socket.inet_ntop(socket.AF_INET, raw[::-1])
            out[inode] = (addr, int(hexport, 16))
    return out


def listening(pid):
    """[(address, port)] of the TCP sockets process pid listens on."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    table = _proc_listeners()
    return sorted(table[i] for i in inodes if i in table)


def is_loopback(addr):
    return addr.startswith("127.") or addr == "::1" or addr.startswith("::ffff:127.")


def ss_addresses(port):
    """Local addresses `ss -ltn` reports for port (None when ss is not installed)."""
    if not shutil.which("ss"):
        return None
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
    addrs = []
    for line in out.splitlines():
        local = line.split()[3]
        addrs.append(local.rsplit(":", 1)[0].strip("[]"))
    return addrs


# ---------------------------------------------------------------- raw REST

def request(c, method, path, body=None, headers=None, token=None, timeout=30):
    """One request to the cluster's REST server: (status, parsed JSON, headers)."""
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://{c.address}{path}", data=body, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read()), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers


def chunked_post(c, path, total, token):
    """POST of `total` bytes without Content-Length (chunked transfer encoding)."""
    conn = http.client.HTTPConnection("127.0.0.1", c.rest_port, timeout=30)
    piece = b" " * 65536

    def gen():
        left = total
        while left > 0:
            n = min(left, len(piece))
            yield piece[:n]
            left -= n

    conn.request("POST", path, body=gen(), encode_chunked=True,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = conn.getresponse()
    out = r.status, json.loads(r.read())
    conn.close()
    return out


def expect_continue(c, path, length, token=None):
    """Sends only the headers of a POST with `Expect: 100-continue` and a body of `length` bytes;
    returns the status line of the first answer (a refusal must come without the body)."""
    with socket.create_connection(("127.0.0.1", c.rest_port), timeout=10) as s:
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {length}\r\n"
                  "Expect: 100-continue\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0].decode()


def wordcount(c, *flags, env=None, auth=True):
    """Submits wordcount over a generated text with the CLI; waits for the end; checks the
    output against the oracle."""
    text = os.path.join(c.dir, "input.txt")
    if not os.path.exists(text):
        gen_text(text, N_WORDS)
    out = tempfile.mkdtemp(prefix="out-", dir=c.dir)
    r = c.cli(*flags, "run", "-d", "-p", "2", os.path.join(EXAMPLES, "wordcount.so"), "--input", text,
              "--output", out, env=env, auth=auth, check_rc=0)
    jobid = r.stdout.strip().split()[-1]
    job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=300)
    check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
    lines = check_wordcount_output(out, oracle_counts(text))
    return jobid, lines


# ---------------------------------------------------------------- parts

def part_refusals():
    tmp = tempfile.mkdtemp(prefix="weir-08-refusals-", dir=os.environ.get("WEIR_TEST_TMP"))
    try:
        base = [f"rest.port={free_port()}", f"jobmanager.rpc.port={free_port()}",
                f"blob.storage.directory={tmp}/blobs"]
        jm, tm = "weir-jobmanager", "weir-taskmanager"
        refused(jm, *base, "rest.bind-address=0.0.0.0",
                needles=("rest.bind-address", "0.0.0.0", "rest.auth.token", "rest.auth.token-file"))
        refused(jm, *base, "rest.bind-address=10.11.12.13",
                needles=("rest.bind-address", "rest.auth.token"))
        refused(jm, *base, "jobmanager.bind-host=0.0.0.0",
                needles=("jobmanager.bind-host", "security.insecure", "CURVE"))
        refused(jm, *base, "jobmanager.bind-host=::", needles=("jobmanager.bind-host", "security.insecure"))
        tmbase = [f"jobmanager.rpc.port={free_port()}", f"taskmanager.working-dir={tmp}/tm"]
        refused(tm, *tmbase, "taskmanager.bind-host=0.0.0.0",
                needles=("taskmanager.bind-host", "security.insecure", "CURVE"))
        refused(tm, *tmbase, "taskmanager.host=10.11.12.13",
                needles=("taskmanager.host", "taskmanager.bind-host"))
        # the token's sources
        missing = os.path.join(tmp, "no-such-token")
        refused(jm, *base, f"rest.auth.token-file={missing}", needles=("rest.auth.token-file", missing))
        empty = os.path.join(tmp, "empty-token")
        open(empty, "w").close()
        refused(jm, *base, f"rest.auth.token-file={empty}", needles=("rest.auth.token-file", "empty"))
        refused(jm, *base, "rest.auth.token=", needles=("rest.auth.token", "empty"))
        refused(jm, *base, "rest.auth.token=has space", needles=("rest.auth.token",))
        refused(jm, *base, f"rest.auth.token={TOKEN}", f"rest.auth.token-file={empty}",
                needles=("rest.auth.token", "rest.auth.token-file"))
        # HTTPS settings and bounds
        refused(jm, *base, "rest.ssl.enabled=true", needles=("rest.ssl.certificate",))
        cert, key = make_cert(tmp, "server")
        cert2, key2 = make_cert(tmp, "other")
        refused(jm, *base, "rest.ssl.enabled=true", f"rest.ssl.certificate={cert}",
                needles=("rest.ssl.key",))
        refused(jm, *base, "rest.ssl.enabled=true", f"rest.ssl.certificate={cert}",
                f"rest.ssl.key={tmp}/missing.pem", needles=("rest.ssl.key", "missing.pem"))
        refused(jm, *base, "rest.ssl.enabled=true", f"rest.ssl.certificate={key}", f"rest.ssl.key={key}",
                needles=("rest.ssl.certificate", "PEM certificate"))
        refused(jm, *base, "rest.ssl.enabled=true", f"rest.ssl.certificate={cert}", f"rest.ssl.key={key2}",
                needles=("rest.ssl.key", "rest.ssl.certificate"))
        refused(jm, *base, "rest.max-request-size=10", needles=("rest.max-request-size",))
        refused(jm, *base, "rest.max-connections=0", needles=("rest.max-connections",))
        refused(jm, *base, "rest.idleness-timeout=0", needles=("rest.idleness-timeout",))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # Allowed beyond loopback: REST with a token; RPC and data plane with security.insecure.
    with Cluster("08-rest-security-wide", tms=1, slots=1,
                 conf={"rest.bind-address": "0.0.0.0", "rest.auth.token": TOKEN,
                       "jobmanager.bind-host": "0.0.0.0", "security.insecure": "true"},
                 tm_conf={"taskmanager.bind-host": "0.0.0.0", "security.insecure": "true"}) as c:
        check(c.get("/taskmanagers")["taskmanagers"][0]["id"] == "tm-0", "task manager not registered")
        jm_socks = listening(c.jm.pid)
        check(("0.0.0.0", c.rest_port) in jm_socks, f"REST not on 0.0.0.0: {jm_socks}")
        check(("0.0.0.0", c.rpc_port) in jm_socks, f"RPC not on 0.0.0.0: {jm_socks}")
        tm_socks = listening(c.tms[0].pid)
        check(any(a == "0.0.0.0" for a, _ in tm_socks), f"data plane not on 0.0.0.0: {tm_socks}")
        for name in ("jobmanager.log", "taskmanager-0.log"):
            with open(os.path.join(c.dir, name)) as f:
                log = f.read()
            check("security.insecure" in log and "WARN" in log, f"{name}: no security.insecure warning")
        print(f"allowed with token / security.insecure: job manager {jm_socks}, task manager {tm_socks}")


def part_defaults():
    """No address key at all: everything on loopback, and a job still crosses task managers."""
    unset = {"rest.bind-address": None, "jobmanager.bind-host": None, "jobmanager.rpc.address": None}
    tm_unset = {"taskmanager.bind-host": None, "taskmanager.host": None, "jobmanager.rpc.address": None}
    with Cluster("08-rest-security-defaults", tms=2, slots=1, conf=unset, tm_conf=tm_unset) as c:
        for name, p, at_least in [("job manager", c.jm, 2)] + [(f"task manager {i}", t, 1)
                                                                 for i, t in enumerate(c.tms)]:
            socks = listening(p.pid)
            print(f"{name} (pid {p.pid}) listens on {socks}")
            check(len(socks) >= at_least, f"{name}: {len(socks)} listening sockets, expected {at_least}+")
            for addr, port in socks:
                check(is_loopback(addr), f"{name} listens on {addr}:{port}, beyond loopback")
                ss = ss_addresses(port)
                if ss is not None:
                    check(ss and all(is_loopback(a) for a in ss), f"ss -ltn for port {port}: {ss}")
                    print(f"  ss -ltn: port {port} on {ss}")
        check(any(port == c.rest_port for _, port in listening(c.jm.pid)), "REST port not found")
        jobid, lines = wordcount(c)
        job = c.job(jobid)
        remote = sum(st["metrics"]["bytes_out_remote"] for v in job["vertices"] for st in v["subtasks"])
        check(remote > 0, "no records crossed the data plane between the task managers")
        print(f"default addresses: job {jobid} finished, {lines} lines match the oracle, "
              f"{remote} bytes between task managers over loopback")


def part_token():
    with Cluster("08-rest-security-token", tms=2, slots=1, conf={"rest.auth.token": TOKEN}) as c:
        st, body, _ = request(c, "GET", "/healthz")
        check(st == 200 and body == {"status": "ok"}, f"healthz without a token: {st} {body}")
        for what, hdrs in [("no token", {}),
                           ("a wrong token", {"Authorization": "Bearer wrong"}),
                           ("a wrong token of the same length", {"Authorization": "Bearer " + "x" * len(TOKEN)}),
                           ("the token with a suffix", {"Authorization": f"Bearer {TOKEN}x"}),
                           ("the token as Basic", {"Authorization": f"Basic {TOKEN}"}),
                           ("an empty bearer", {"Authorization": "Bearer "})]:
            for method, path in [("GET", "/jobs"), ("GET", "/taskmanagers"), ("GET", "/nope"),
                                 ("POST", "/jobs/0123/cancel")]:
                st, body, h = request(c, method, path, headers=hdrs)
                check(st == 401, f"{method} {path} with {what}: {st} {body}")
                check(isinstance(body.get("error"), str) and body["error"], f"401 body {body}")
                check(h.get("WWW-Authenticate", "").startswith("Bearer"), f"WWW-Authenticate: {h}")
        print("401:", body["error"])
        # the body of a refused upload is not stored
        blobs = os.path.join(c.dir, "blobs")
        before = sorted(os.listdir(blobs)) if os.path.isdir(blobs) else []
        st, _, _ = request(c, "POST", "/blobs", body=os.urandom(65536),
                           headers={"Content-Type": "application/octet-stream"})
        check(st == 401, f"POST /blobs without a token: {st}")
        after = sorted(os.listdir(blobs)) if os.path.isdir(blobs) else []
        check(before == after, f"a refused upload changed the blob store: {before} -> {after}")
        st, body, _ = request(c, "GET", "/jobs", token=TOKEN)
        check(st == 200 and body == {"jobs": []}, f"GET /jobs with the token: {st} {body}")
        st, _, _ = request(c, "GET", "/jobs", headers={"Authorization": f"bearer   {TOKEN}"})
        check(st == 200, f"lower-case scheme, extra spaces: {st}")

        # the CLI
        r = c.cli("list", auth=False)
        check(r.returncode == 1, f"weir list without the token: exit {r.returncode}")
        print("CLI without token:", one_line(r, "weir: ", "rest.auth.token"))
        r = c.cli("-D", "rest.auth.token=wrong-token", "list", auth=False)
        check(r.returncode == 1, f"weir list with a wrong token: exit {r.returncode}")
        print("CLI wrong token:", one_line(r, "weir: ", "rest.auth.token"))
        r = c.cli("list", auth=False, env={"WEIR_REST_AUTH_TOKEN": "wrong-token"})
        check(r.returncode == 1, f"weir list with a wrong token in the environment: exit {r.returncode}")
        one_line(r, "rest.auth.token")
        jobid, lines = wordcount(c, "-D", f"rest.auth.token={TOKEN}", auth=False)
        print(f"CLI -D rest.auth.token: job {jobid} finished, {lines} lines match the oracle")
        r = c.cli("list", auth=False, env={"WEIR_REST_AUTH_TOKEN": TOKEN}, check_rc=0)
        check(jobid in r.stdout and "FINISHED" in r.stdout, f"weir list: {r.stdout}")
        yaml = os.path.join(c.dir, "client.yaml")
        with open(yaml, "w") as f:
            f.write(f"rest:\n  auth:\n    token: {TOKEN}\n")
        r = c.cli("-c", yaml, "list", auth=False, check_rc=0)
        check(jobid in r.stdout, f"weir -c client.yaml list: {r.stdout}")
        tfile = os.path.join(c.dir, "token")
        with open(tfile, "w") as f:
            f.write(TOKEN + "\n")
        r = c.cli("-D", f"rest.auth.token-file={tfile}", "list", auth=False, check_rc=0)
        check(jobid in r.stdout, f"weir list with rest.auth.token-file: {r.stdout}")
        r = c.cli("-D", f"rest.auth.token-file={tfile}.missing", "list", auth=False)
        check(r.returncode == 1, f"weir with a missing token file: exit {r.returncode}")
        one_line(r, "rest.auth.token-file", tfile + ".missing")

        # bounds of a JSON body: rest.max-request-size (1 MiB by default)
        limit = 1 << 20
        big = b" " * limit + b"{}"
        st, body, _ = request(c, "POST", "/jobs", body=big, token=TOKEN,
                              headers={"Content-Type": "application/json"})
        check(st == 413 and "rest.max-request-size" in body["error"], f"2 bytes over the limit: {st} {body}")
        print("413:", body["error"])
        st, body, _ = request(c, "POST", "/jobs", body=big, headers={"Content-Type": "application/json"})
        check(st == 401, f"oversized without a token: {st} (401 goes first)")
        st, body, _ = request(c, "POST", "/jobs", body=b" " * (limit - 1) + b"x", token=TOKEN,
                              headers={"Content-Type": "application/json"})
        check(st == 400 and "not JSON" in body["error"], f"a body at the limit is parsed: {st} {body}")
        st, body = chunked_post(c, "/jobs", limit + 65536, TOKEN)
        check(st == 413, f"chunked body over the limit: {st} {body}")
        # a client waiting for "100 Continue" is refused before it sends its body
        line = expect_continue(c, "/blobs", 100 << 20)
        check(line.endswith("401 Unauthorized"), f"Expect: 100-continue without a token: {line!r}")
        line = expect_continue(c, "/jobs", 2 << 20, token=TOKEN)
        check(" 413 " in line, f"Expect: 100-continue, 2 MiB of JSON: {line!r}")
        line = expect_continue(c, "/jobs", 100, token=TOKEN)
        check(" 100 " in line, f"Expect: 100-continue, a small authorized body: {line!r}")
        plugin = os.urandom(3 << 20)
        st, body, _ = request(c, "POST", "/blobs", body=plugin, token=TOKEN,
                              headers={"Content-Type": "application/octet-stream"})
        check(st == 200 and body["sha256"] == hashlib.sha256(plugin).hexdigest(),
              f"a 3 MiB upload to /blobs: {st} {body}")
        check(c.healthy(), "job manager down")


def part_limits():
    conf = {"rest.max-connections": "2", "rest.idleness-timeout": "4s"}
    with Cluster("08-rest-security-limits", tms=0, conf=conf) as c:
        idle = [socket.create_connection(("127.0.0.1", c.rest_port)) for _ in range(2)]
        time.sleep(0.3)
        t0 = time.time()
        try:
            urllib.request.urlopen(f"http://{c.address}/healthz", timeout=1).read()
            answered = True
        except (OSError, urllib.error.URLError):
            answered = False
        check(not answered, "a third connection was served while 2 of rest.max-connections 2 were open")
        # the idle ones are closed after rest.idleness-timeout, then the next request is served
        for s in idle:
            s.settimeout(10)
            check(s.recv(1) == b"", "an idle connection was not closed by the server")
            s.close()
        closed = time.time() - t0
        check(c.get("/healthz")["status"] == "ok", "not served after the idle connections closed")
        print(f"rest.max-connections 2: a third connection waited; idle ones closed after {closed:.1f} s")


def make_cert(d, name):
    """A self-signed EC certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    cert, key = os.path.join(d, f"{name}-cert.pem"), os.path.join(d, f"{name}-key.pem")
    openssl = shutil.which("openssl")
    check(openssl is not None, "the openssl command is needed (scripts/install-deps.sh installs it)")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def part_tls():
    tmp = tempfile.mkdtemp(prefix="weir-08-tls-", dir=os.environ.get("WEIR_TEST_TMP"))
    try:
        cert, key = make_cert(tmp, "server")
        other, _ = make_cert(tmp, "other")
        conf = {"rest.ssl.enabled": "true", "rest.ssl.certificate": cert, "rest.ssl.key": key,
                "rest.auth.token": TOKEN}
        with Cluster("08-rest-security-tls", tms=2, slots=1, conf=conf) as c:
            ctx = ssl.create_default_context(cafile=cert)
            with urllib.request.urlopen(f"https://{c.address}/healthz", context=ctx, timeout=10) as r:
                check(json.loads(r.read()) == {"status": "ok"}, "healthz over HTTPS")
            try:
                urllib.request.urlopen(f"https://{c.address}/healthz", timeout=10,
                                       context=ssl.create_default_context(cafile=other))
                check(False, "a client trusting another certificate connected")
            except urllib.error.URLError as e:
                check(isinstance(e.reason, ssl.SSLCertVerificationError), f"not a verification error: {e}")
            try:
                urllib.request.urlopen(f"http://{c.address}/healthz", timeout=10).read()
                check(False, "plain HTTP was answered by the HTTPS server")
            except (OSError, urllib.error.URLError, http.client.HTTPException):
                pass

            tls_env = {"WEIR_REST_SSL_ENABLED": "true", "WEIR_REST_AUTH_TOKEN": TOKEN}
            r = c.cli("list", auth=False, env=dict(tls_env, WEIR_REST_SSL_TRUST_CERT=cert), check_rc=0)
            check("No running jobs." in r.stdout, f"weir list over HTTPS: {r.stdout}")
            r = c.cli("-D", f"rest.ssl.trust-cert={cert}", "list", auth=False,
                      env={"WEIR_REST_AUTH_TOKEN": TOKEN})  # https:// is not implied by trust-cert
            check(r.returncode == 1, f"plain HTTP CLI against HTTPS: exit {r.returncode}")
            print("CLI over plain HTTP:", one_line(r, "weir: ", "rest.ssl.enabled"))
            r = c.cli("list", auth=False, env=tls_env)
            check(r.returncode == 1, f"CLI without rest.ssl.trust-cert: exit {r.returncode}")
            print("CLI without trust-cert:", one_line(r, "weir: ", "rest.ssl.trust-cert"))
            r = c.cli("list", auth=False, env=dict(tls_env, WEIR_REST_SSL_TRUST_CERT=other))
            check(r.returncode == 1, f"CLI trusting another certificate: exit {r.returncode}")
            print("CLI with another certificate:", one_line(r, "weir: ", "rest.ssl.trust-cert"))
            r = c.cli("list", auth=False, env=dict(tls_env, WEIR_REST_SSL_TRUST_CERT=tmp + "/none.pem"))
            check(r.returncode == 1, f"CLI with a missing trust-cert: exit {r.returncode}")
            one_line(r, "rest.ssl.trust-cert", "none.pem")
            r = c.cli("list", auth=False, env={"WEIR_REST_SSL_ENABLED": "true", "WEIR_REST_SSL_TRUST_CERT": cert})
            check(r.returncode == 1, f"CLI over HTTPS without the token: exit {r.returncode}")
            one_line(r, "rest.auth.token")
            argv = [os.path.join(BIN, "weir"), "-m", f"https://{c.address}", "-D", f"rest.ssl.trust-cert={cert}",
                    "-D", f"rest.auth.token={TOKEN}", "list"]
            r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            check(r.returncode == 0, f"weir -m https://...: exit {r.returncode} {r.stderr}")
            jobid, lines = wordcount(c)  # the cluster's settings: HTTPS, trust-cert, token
            print(f"CLI over HTTPS: job {jobid} finished, {lines} lines match the oracle")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


PARTS = {"refusals": part_refusals, "defaults": part_defaults, "token": part_token,
         "limits": part_limits, "tls": part_tls}


def test():
    names = sys.argv[1:] or list(PARTS)
    for name in names:
        if name not in PARTS:
            raise TestFailure(f"unknown part {name!r} (parts: {', '.join(PARTS)})")
        print(f"--- {name}", flush=True)
        PARTS[name]()


run_test(test)
