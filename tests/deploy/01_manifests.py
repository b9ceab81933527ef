#!/usr/bin/env python3
"""Lint and offline schema validation of deploy/kubernetes/ and of the Helm chart deploy/helm/weir.

1. scripts/k8s-tools.sh installs helm and kubernetes-validate under ${WEIR_CACHE}.
2. `helm lint --strict` of the chart with its defaults and in application mode; an install
   without auth.clusterKey fails with a message naming it; an upgrade-unsafe grace period fails.
3. `helm template` in session and application mode; every rendered object and every file of
   deploy/kubernetes/ (but kustomization.yaml, not a Kubernetes object) validates against the
   Kubernetes JSON schemas of KUBE_VERSION in strict mode (unknown fields are errors), with no
   network (`unshare --net`; the schemas ship inside the package).
4. The chart's session render (release "weir") and deploy/kubernetes/ define the same kinds and
   names, the same weir.yaml keys and values, the same pod specs (labels that Helm adds aside);
   the application-mode render and jobmanager-application.yaml likewise, with the same job.
5. Every weir.yaml key, every -D key and every WEIR_* variable is a key of common/config.c (KEYS)
   or one of the issue-10 keys of helper A (PENDING_KEYS), with a value of the key's type; every
   pod has enableServiceLinks: false (weir rejects unknown WEIR_* variables, and Kubernetes would
   add WEIR_JOBMANAGER_SERVICE_HOST & co.).
Negative controls: each check is also run on a broken copy and must fail there.
"""
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

SRC = os.environ.get("WEIR_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
PLAIN = os.path.join(SRC, "deploy/kubernetes")
CHART = os.path.join(SRC, "deploy/helm/weir")
KUBE_VERSION = "1.30.0"
# Keys of CONTRACT10 section 3 (issue 10, helper A) that common/config.c gains with that branch
# (same names and types there; once merged this list adds nothing and can go).
PENDING_KEYS = {
    "application.plugin": "STRING",
    "application.job-id": "STRING",
    "application.cli": "STRING",
    "high-availability.cluster-id": "STRING",
    "execution.savepoint.path": "STRING",
    "execution.savepoint.ignore-unclaimed-state": "BOOL",
    "jobmanager.shutdown.savepoint": "BOOL",
    "jobmanager.shutdown.savepoint-timeout": "DURATION",
}
CONTRACT_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/component")
APP_PLUGIN = "/opt/weir/examples/wordcount.so"

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)
    return ok


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# ---- tools ---------------------------------------------------------------------------------
def tools():
    p = run(["bash", os.path.join(SRC, "scripts/k8s-tools.sh")])
    sys.stdout.write(p.stdout)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        sys.exit("FAIL scripts/k8s-tools.sh exited %d" % p.returncode)
    paths = dict(l.split("=", 1) for l in p.stdout.splitlines() if re.match(r"^[a-z-]+=/", l))
    return paths["helm"], paths["kubernetes-validate"]


# ---- weir's keys -----------------------------------------------------------------------------
def weir_keys():
    text = open(os.path.join(SRC, "common/config.c")).read()
    table = text[text.index("KEYS[] = {"):]
    table = table[: table.index("{NULL,")]
    keys = dict(re.findall(r'\{"([A-Za-z0-9.\-]+)",\s*WEIR_CFG_([A-Z]+)', table))
    assert len(keys) > 40, "cannot parse the KEYS table of common/config.c (%d keys)" % len(keys)
    for k, t in PENDING_KEYS.items():
        keys.setdefault(k, t)
    return keys


def env_name(key):  # common/config.c env_name()
    return "WEIR_" + re.sub(r"[.\-]", "_", key).upper()


TYPE_RE = {
    "INT": r"-?[0-9]+",
    "BOOL": r"true|false",
    "DURATION": r"[0-9]+(ms|s|min|h|d)?",
    "BYTES": r"[0-9]+(b|kb|mb|gb)?",
    "STRING": r".*",
}


def yaml_text(v):  # the text weir's libyaml loader sees for a scalar PyYAML parsed
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def bad_keys(pairs, keys):
    """pairs: (where, key, value). Returns one line per unknown key or ill-typed value."""
    bad = []
    for where, k, v in pairs:
        if k not in keys:
            bad.append("%s: %s is not a weir configuration key" % (where, k))
        elif not re.fullmatch(TYPE_RE[keys[k]], yaml_text(v)):
            bad.append("%s: %s = %r is not a %s" % (where, k, v, keys[k]))
    return bad


# ---- manifests -------------------------------------------------------------------------------
def load_docs(text, where):
    return [(where, d) for d in yaml.safe_load_all(text) if d]


def plain_docs(names):
    out = []
    for n in names:
        out += load_docs(open(os.path.join(PLAIN, n)).read(), n)
    return out


def pods(docs):
    for where, d in docs:
        if d["kind"] == "Deployment":
            yield where + ":" + d["metadata"]["name"], d["spec"]["template"]["spec"]


def config_of(docs):
    for _, d in docs:
        if d["kind"] == "ConfigMap":
            return yaml.safe_load(d["data"]["weir.yaml"])
    return None


def key_pairs(docs):
    """Every (where, key, value) that weir reads: weir.yaml, -D args, WEIR_* variables."""
    out = []
    for where, d in docs:
        if d["kind"] == "ConfigMap":
            for k, v in yaml.safe_load(d["data"]["weir.yaml"]).items():
                out.append((where + " weir.yaml", k, v))
    for where, spec in pods(docs):
        for c in spec["containers"]:
            args = c.get("args", [])
            for i, a in enumerate(args):
                if a == "--":
                    break
                if a == "-D":
                    k, _, v = args[i + 1].partition("=")
                    out.append((where + " -D", k, v))
            for e in c.get("env", []):
                if e["name"].startswith("WEIR_"):
                    out.append((where + " env", e["name"], e.get("value", "")))
    return out


def check_keys(docs, keys):
    envs = {env_name(k): k for k in keys}
    pairs = []
    for where, k, v in key_pairs(docs):
        if where.endswith(" env"):
            if k not in envs:
                pairs.append((where, k, v))  # reported as unknown
                continue
            k = envs[k]
            v = v or "x"  # fieldRef: a string key
        pairs.append((where, k, v))
    return bad_keys(pairs, keys)


def check_service_links(docs):
    return ["%s: enableServiceLinks is not false" % w for w, s in pods(docs)
            if s.get("enableServiceLinks") is not False]


def normalise(d):
    """The object without what Helm adds (instance/chart labels, checksum annotations)."""
    d = copy.deepcopy(d)

    def labels(m):
        return {k: v for k, v in (m or {}).items() if k in CONTRACT_LABELS}

    md = d["metadata"]
    md["labels"] = labels(md.get("labels"))
    md.pop("annotations", None)
    if d["kind"] == "Deployment":
        d["spec"]["selector"]["matchLabels"] = labels(d["spec"]["selector"]["matchLabels"])
        t = d["spec"]["template"]["metadata"]
        t["labels"] = labels(t.get("labels"))
        t.pop("annotations", None)
    if d["kind"] == "Service":
        d["spec"]["selector"] = labels(d["spec"]["selector"])
    if d["kind"] == "ConfigMap":
        d["data"] = {k: yaml.safe_load(v) for k, v in d["data"].items()}
    if d["kind"] == "Secret":  # values differ by design (placeholders, generated token)
        d["data"] = sorted(set(d.pop("data", {})) | set(d.pop("stringData", {})))
    if d["kind"] == "PersistentVolumeClaim":
        d["spec"].pop("storageClassName", None)
    return d


def diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append("%s.%s only in %s" % (path, k, "chart" if k in b else "deploy/kubernetes"))
            else:
                out += diff(a[k], b[k], "%s.%s" % (path, k))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff(x, y, "%s[%d]" % (path, i))
        return out
    return [] if a == b else ["%s: deploy/kubernetes %r, chart %r" % (path, a, b)]


def compare(plain, chart, skip_args=False):
    """Differences between two sets of objects: kinds and names, then each object."""
    pa = {(d["kind"], d["metadata"]["name"]): normalise(d) for _, d in plain}
    ch = {(d["kind"], d["metadata"]["name"]): normalise(d) for _, d in chart}
    out = []
    if set(pa) != set(ch):
        out.append("objects differ: only in deploy/kubernetes %s, only in the chart %s"
                   % (sorted(set(pa) - set(ch)), sorted(set(ch) - set(pa))))
    for key in sorted(set(pa) & set(ch)):
        a, b = pa[key], ch[key]
        if skip_args and key == ("Deployment", "weir-jobmanager"):
            for o in (a, b):
                o["spec"]["template"]["spec"]["containers"][0].pop("args")
        out += ["%s/%s %s" % (key[0], key[1], l) for l in diff(a, b)]
    return out


def job_of(args):
    """(plugin, job args, other -D pairs) of a job manager's argument list."""
    cut = args.index("--") if "--" in args else len(args)
    d = dict(args[i + 1].partition("=")[::2] for i in range(cut) if args[i] == "-D")
    return d.pop("application.plugin", None), args[cut + 1:], d


# ---- main ------------------------------------------------------------------------------------
def main():
    helm, kv = tools()
    keys = weir_keys()
    tmp = tempfile.mkdtemp(prefix="weir-deploy-")
    try:
        run_checks(helm, kv, keys, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d check(s) failed:" % len(failures))
        for f in failures:
            print("  " + f)
        sys.exit(1)
    print("all deploy checks passed")


def helm_ok(p):
    out = p.stdout + p.stderr
    return p.returncode == 0 and "[WARNING]" not in out and "[ERROR]" not in out


def run_checks(helm, kv, keys, tmp):
    env = dict(os.environ, HELM_CACHE_HOME=tmp + "/helm-cache", HELM_CONFIG_HOME=tmp + "/helm-config",
               HELM_DATA_HOME=tmp + "/helm-data")
    key = os.path.join(tmp, "cluster.key")  # not a real key: nothing here parses it
    with open(key, "w") as f:
        f.write("# test placeholder\npublic-key: none\nsecret-key: none\n")
    app_values = os.path.join(tmp, "app-values.yaml")
    app_job = job_of(yaml.safe_load(open(os.path.join(PLAIN, "jobmanager-application.yaml")))
                     ["spec"]["template"]["spec"]["containers"][0]["args"])
    with open(app_values, "w") as f:
        yaml.safe_dump({"job": {"plugin": app_job[0], "args": app_job[1]},
                        "parallelism": int(app_job[2].get("parallelism.default", 1))}, f)

    # 2. lint
    for name, extra in (("defaults", []), ("application mode", ["-f", app_values])):
        p = run([helm, "lint", "--strict", "--kube-version", KUBE_VERSION, CHART] + extra, env=env)
        check(helm_ok(p), "helm lint --strict (%s)" % name) or print(p.stdout + p.stderr)
    p = run([helm, "template", "weir", CHART, "--kube-version", KUBE_VERSION], env=env)
    check(p.returncode != 0 and "auth.clusterKey" in p.stderr,
          "helm template without auth.clusterKey fails naming it") or print(p.stderr)
    p = run([helm, "template", "weir", CHART, "--kube-version", KUBE_VERSION, "--set-file", "auth.clusterKey=" + key,
             "--set", "shutdownSavepoint.enabled=true", "--set", "shutdownSavepoint.timeoutSeconds=120"],
            env=env)
    check(p.returncode != 0 and "terminationGracePeriodSeconds" in p.stderr,
          "helm template refuses a grace period below the shutdown savepoint timeout") or print(p.stderr)

    # 3. render
    renders = {}
    for name, extra in (("session", []), ("application", ["-f", app_values])):
        p = run([helm, "template", "weir", CHART, "--kube-version", KUBE_VERSION, "--set-file", "auth.clusterKey=" + key] + extra,
                env=env)
        if not check(p.returncode == 0, "helm template (%s mode)" % name):
            print(p.stderr)
            return
        path = os.path.join(tmp, "rendered-%s.yaml" % name)
        with open(path, "w") as f:
            f.write(p.stdout)
        renders[name] = (path, load_docs(p.stdout, "chart(%s)" % name))
    p = run([helm, "template", "other", CHART, "--kube-version", KUBE_VERSION, "--set-file", "auth.clusterKey=" + key,
             "--set", "storage.existingClaim=shared", "--set", "auth.existingSecret=mine"], env=env)
    docs = load_docs(p.stdout, "chart(other)") if p.returncode == 0 else []
    names = {(d["kind"], d["metadata"]["name"]) for _, d in docs}
    check(p.returncode == 0 and ("Service", "other-weir-jobmanager") in names
          and not any(k in ("Secret", "PersistentVolumeClaim") for k, _ in names)
          and config_of(docs)["jobmanager.rpc.address"] == "other-weir-jobmanager",
          "release 'other' with existingClaim/existingSecret: prefixed names, no Secret or PVC")

    # schema validation, offline
    offline = run(["unshare", "--net", "true"]).returncode == 0
    wrap = ["unshare", "--net"] if offline else []
    print("schema validation %s" % ("without network (unshare --net)" if offline else
                                    "with network access (unshare --net is not permitted here)"))

    def validate(path):
        p = run(wrap + [kv, "--kubernetes-version", KUBE_VERSION, "--strict", path])
        return p.returncode == 0, (p.stdout + p.stderr).strip()

    plain_files = sorted(f for f in os.listdir(PLAIN) if f.endswith(".yaml"))
    for f in plain_files:
        if f == "kustomization.yaml":
            continue
        ok, out = validate(os.path.join(PLAIN, f))
        check(ok, "kubernetes-validate --strict %s (Kubernetes %s)" % (f, KUBE_VERSION)) or print(out)
    for name, (path, docs) in renders.items():
        ok, out = validate(path)
        check(ok and len(docs) >= 6,
              "kubernetes-validate --strict chart %s render: %d objects" % (name, len(docs))) or print(out)
    # negative controls: strict validation must reject an unknown field and a wrong type
    dep = yaml.safe_load(open(os.path.join(PLAIN, "taskmanager.yaml")))
    for what, mutate in (
            ("an unknown field", lambda d: d["spec"]["template"]["spec"]["containers"][0]
             .__setitem__("livenesProbe", {"tcpSocket": {"port": 6121}})),
            ("a string replicas", lambda d: d["spec"].__setitem__("replicas", "two"))):
        bad = copy.deepcopy(dep)
        mutate(bad)
        path = os.path.join(tmp, "broken.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(bad, f)
        ok, out = validate(path)
        check(not ok, "kubernetes-validate rejects %s" % what) or print(out)

    # kustomization: exactly the session cluster's files
    kust = yaml.safe_load(open(os.path.join(PLAIN, "kustomization.yaml")))
    want = set(plain_files) - {"kustomization.yaml", "secret.yaml", "jobmanager-application.yaml"}
    check(set(kust["resources"]) == want, "kustomization.yaml lists %s" % sorted(want))

    # 4. chart == deploy/kubernetes
    session_plain = plain_docs(sorted(want | {"secret.yaml"}))
    app_plain = plain_docs(sorted(want - {"jobmanager.yaml"} | {"secret.yaml", "jobmanager-application.yaml"}))
    base = compare(session_plain, renders["session"][1])
    d = base
    check(not d, "chart session render == deploy/kubernetes (kinds, names, weir.yaml, pod specs)") or print("\n".join(d))
    check(config_of(session_plain) == config_of(renders["session"][1]) and config_of(session_plain),
          "same weir.yaml keys and values")
    d = compare(app_plain, renders["application"][1], skip_args=True)
    # parallelism: -D parallelism.default in the plain file, weir.yaml in the chart
    d = [l for l in d if "parallelism.default" not in l]
    check(not d, "chart application render == jobmanager-application.yaml but the args") or print("\n".join(d))
    chart_args = next(s for _, s in pods(renders["application"][1])
                      if s["containers"][0]["name"] == "jobmanager")["containers"][0]["args"]
    cj = job_of(chart_args)
    check(cj[:2] == app_job[:2] and app_job[0] == APP_PLUGIN and chart_args[:2] == ["-c", "/etc/weir/weir.yaml"]
          and str(config_of(renders["application"][1]).get("parallelism.default"))
          == app_job[2].get("parallelism.default"),
          "application mode: same plugin %s, job args and parallelism" % APP_PLUGIN)
    # negative controls of the comparison
    broken = copy.deepcopy(session_plain)
    for _, o in broken:
        if o["kind"] == "ConfigMap":
            o["data"]["weir.yaml"] += "state.checkpoints.num-retained: 3\n"
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "weir-taskmanager":
            o["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 31
    d = compare(broken, renders["session"][1])
    check(len(d) == len(base) + 2, "the comparison finds a changed weir.yaml and a changed pod spec") or print(d)
    d = compare(session_plain[:-1], renders["session"][1])
    check(any("objects differ" in l for l in d), "the comparison finds a missing object")

    # 5. keys
    alldocs = plain_docs([f for f in plain_files if f != "kustomization.yaml"])
    for name, docs in (("deploy/kubernetes", alldocs), ("chart session", renders["session"][1]),
                       ("chart application", renders["application"][1])):
        bad = check_keys(docs, keys)
        check(not bad and key_pairs(docs), "%s: every weir key known and well typed" % name) or print("\n".join(bad))
        bad = check_service_links(docs)
        check(not bad, "%s: enableServiceLinks false in every pod" % name) or print("\n".join(bad))
    broken = copy.deepcopy(alldocs)
    for _, o in broken:
        if o["kind"] == "ConfigMap":
            o["data"]["weir.yaml"] = o["data"]["weir.yaml"].replace(
                "taskmanager.numberOfTaskSlots", "taskmanager.numberOfTaskSlot").replace(
                "execution.checkpointing.interval: 10s", "execution.checkpointing.interval: often")
        if o["kind"] == "Deployment":
            o["spec"]["template"]["spec"].pop("enableServiceLinks")
            for c in o["spec"]["template"]["spec"]["containers"]:
                for e in c.get("env", []):
                    e["name"] = "WEIR_TASKMANAGER_HOSTNAME"
    check(len(check_keys(broken, keys)) == 3 and len(check_service_links(broken)) == 3,
          "the key check finds an unknown key, a bad duration and an unknown WEIR_ variable; "
          "the pod check a missing enableServiceLinks")


if __name__ == "__main__":
    main()
