"""Helpers of the container tests (tests/containers/NN_*.py): real podman containers of weir's
image (deploy/docker/). Every podman call is bounded by a timeout; every name a test creates
(pods, containers, networks, volumes) carries a per-run suffix and is registered with a Cleanup,
which removes it in a `finally` even when the test fails.

Environment: WEIR_CONTAINER_TESTS=0 skips the container tests (one "SKIPPED:" line, exit 0);
WEIR_IMAGE overrides the tag the tests build and use (default: one tag per source tree, so two
trees on one machine do not replace each other's image mid-run).
"""

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time

SRC = os.environ.get("WEIR_SRC") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# tests/lib (weirtest's oracles) also when a script runs without ctest's PYTHONPATH.
sys.path.insert(0, os.path.join(SRC, "tests", "lib"))


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def skip_unless_enabled(name):
    """Exit 0 with a SKIPPED line when WEIR_CONTAINER_TESTS=0 (developer machines without podman)."""
    if os.environ.get("WEIR_CONTAINER_TESTS", "1") == "0":
        print(f"SKIPPED: {name}: WEIR_CONTAINER_TESTS=0 (unset it to run the container tests; "
              f"they need podman as root: scripts/podman-setup.sh)")
        sys.exit(0)


def image_tag():
    if os.environ.get("WEIR_IMAGE"):
        return os.environ["WEIR_IMAGE"]
    return "localhost/weir:ctest-" + hashlib.sha1(os.path.realpath(SRC).encode()).hexdigest()[:10]


def run_id():
    """A suffix unique to this run: pid + random, lower case (valid in pod and network names)."""
    return f"{os.getpid()}{secrets.token_hex(3)}"


def podman(*args, check_rc=True, timeout=120, input=None):
    """Runs podman; returns the CompletedProcess (text). check_rc: a non-zero exit raises."""
    cmd = ["podman", *[str(a) for a in args]]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired:
        raise TestFailure(f"timed out after {timeout}s: {' '.join(cmd)}")
    if check_rc and r.returncode != 0:
        raise TestFailure(f"exit {r.returncode}: {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r


def kube_down(path, attempts=5):
    """`podman kube down PATH`, again after a pause when podman 4.3 fails on a container whose
    shm mount is still busy (it unmounts asynchronously after a stop: "unlinkat .../shm: device
    or resource busy"); any other failure, or the same one `attempts` times, raises."""
    for i in range(attempts):
        r = podman("kube", "down", path, check_rc=False, timeout=120)
        if r.returncode == 0:
            return r
        if "device or resource busy" not in r.stderr or i == attempts - 1:
            raise TestFailure(f"exit {r.returncode}: podman kube down {path}\n{r.stdout}{r.stderr}")
        time.sleep(2)


def inspect(kind, name):
    r = podman(kind, "inspect", name)
    data = json.loads(r.stdout)
    return data[0] if isinstance(data, list) else data


def build_image(tag):
    """deploy/docker/build.sh TAG (podman setup, base image, cached layers); returns seconds."""
    t0 = time.monotonic()
    r = subprocess.run(["bash", os.path.join(SRC, "deploy", "docker", "build.sh"), tag],
                       capture_output=True, text=True, timeout=1200)
    if r.returncode != 0:
        raise TestFailure(f"deploy/docker/build.sh {tag} exited {r.returncode}:\n"
                          f"{r.stdout[-4000:]}{r.stderr[-4000:]}")
    return time.monotonic() - t0


def setup_podman():
    r = subprocess.run(["bash", os.path.join(SRC, "scripts", "podman-setup.sh")],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise TestFailure(f"scripts/podman-setup.sh exited {r.returncode}:\n{r.stdout}{r.stderr}")


def wait_for(what, fn, timeout, interval=0.5):
    """Polls fn() until it returns a true value (returned); fails naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except TestFailure:
            last = None
        if last:
            return last
        time.sleep(interval)
    raise TestFailure(f"timed out after {timeout}s waiting for {what}")


def logs(container, tail=None):
    args = ["logs"] + (["--tail", str(tail)] if tail else []) + [container]
    r = podman(*args, check_rc=False, timeout=30)
    return r.stdout + r.stderr


class Cleanup:
    """Registers what a test creates and removes it (in reverse order) on exit, even on failure:
    kube YAML files (`podman kube down`), pods, containers, volumes, networks, host directories,
    and a sweep of every pod and volume whose name holds a run's suffix (emptyDir volumes that a
    failed `kube down` left). Used as a context
    manager; prints the logs of every registered container first when the block raised."""

    def __init__(self):
        self.items = []  # (kind, name)

    def add(self, kind, name):
        self.items.append((kind, name))
        return name

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.dump_logs()
        for kind, name in reversed(self.items):
            if kind == "kube":
                podman("kube", "down", name, check_rc=False, timeout=120)
            elif kind == "pod":
                podman("pod", "rm", "-f", "-t", "0", name, check_rc=False, timeout=120)
            elif kind == "container":
                podman("rm", "-f", "-v", "-t", "0", name, check_rc=False, timeout=120)
            elif kind == "volume":
                podman("volume", "rm", "-f", name, check_rc=False, timeout=120)
            elif kind == "network":
                podman("network", "rm", "-f", name, check_rc=False, timeout=120)
            elif kind == "dir":
                shutil.rmtree(name, ignore_errors=True)
            elif kind == "sweep":  # whatever still carries the run's suffix: pods, then volumes
                for what in ("pod", "volume"):
                    ls = podman(what, "ls", "--format", "{{.Name}}", check_rc=False).stdout.split()
                    for n in ls:
                        if name in n:
                            podman(what, "rm", "-f", n, check_rc=False, timeout=120)
        return False

    def dump_logs(self):
        names = podman("ps", "-a", "--format", "{{.Names}}", check_rc=False).stdout.split()
        for kind, name in self.items:
            for c in names:
                if (kind == "container" and c == name) or (kind == "pod" and c.startswith(name + "-")):
                    print(f"----- logs of {c} (last 60 lines) -----")
                    print(logs(c, tail=60))


def main(name, fn):
    """Runs a test body fn() with the skip rule and one PASSED/FAILED line."""
    skip_unless_enabled(name)
    t0 = time.monotonic()
    try:
        fn()
    except TestFailure as e:
        print(f"FAILED: {name}: {e}")
        sys.exit(1)
    print(f"PASSED: {name} in {time.monotonic() - t0:.0f}s")
