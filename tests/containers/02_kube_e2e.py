"""End to end on real containers (issue 10, "Must show"): `podman kube play` of the REAL manifests
of deploy/kubernetes/ (ConfigMap, Secret, PVC, Service, the job manager and task manager
Deployments, and jobmanager-application.yaml for the upgrade) on a podman network of its own:

1. one job manager pod and two task manager pods; wordcount (examples/wordcount.so, the
   exactly-once file sink, output on the shared volume, input rate-limited so that it runs long
   enough, a checkpoint every second) is submitted with `weir run` inside the job manager's
   container and runs with parallelism 4 across both task manager pods;
2. a task manager pod is killed (`podman pod kill`, SIGKILL) and replaced by a new pod from the
   same manifest: the job restarts from its latest checkpoint on the new pod;
3. the job manager pod is killed and replaced by a new pod (another IP, the same Service name):
   the new job manager resumes the job from HA (same job id) and the task managers find it
   through the name `weir-jobmanager`;
4. upgrade: `weir savepoint` runs inside the job manager's container (the Secret's token); then
   the job manager's pod is stopped by SIGTERM, as deleting it does: with
   jobmanager.shutdown.savepoint it stops the job with a savepoint (job result store: FINISHED,
   that savepoint) and exits 0; a job manager from jobmanager-application.yaml (application
   mode) starts from that savepoint with another parallelism (the manifest's 2): the job
   continues and finishes, the job manager writes its result and exits 0;
5. the committed output (only committed part files) equals the oracle (tr | sort | uniq -c) exactly:
   for every word the counts 1..n, each once. After every phase the committed output so far is
   an exact prefix (counts 1..k, no gap, no duplicate);
6. `podman kube down` removes every pod; the test's `finally` removes what is left (pods,
   volumes, the network) even when it fails.

Names carry a per-run suffix (pods, volumes, network), so reruns and parallel runs do not collide.
Every place where podman 4.3's `kube play` differs from Kubernetes is transformed in
`podmanize_*` below, each with a comment saying why; nothing else in the manifests changes except
what an operator would set (the image, the test's checkpoint interval, the upgrade's savepoint).
"""

import hashlib
import ipaddress
import json
import os
import tempfile
import time
import urllib.error
import urllib.request

import yaml

import podlib
from podlib import TestFailure, check, kube_down, log, podman
from weirtest import SAVEPOINT_DONE, check_word_prefix, check_wordcount_output, gen_text, \
    oracle_counts, read_word_updates

K8S = os.path.join(podlib.SRC, "deploy", "kubernetes")
N_WORDS = 100_000  # about 11,500 lines
RATE = 60          # lines per second in phases 1-3 (about 190 s for the whole input)
INPUT = "/var/lib/weir/input/words.txt"     # as in jobmanager-application.yaml's job arguments
OUTPUT = "/var/lib/weir/output/wordcount"
PLUGIN = "/opt/weir/examples/wordcount.so"
TEST_CONF = {
    # The operator's settings for this test (ConfigMap values, not podman differences): a
    # checkpoint every second so that the kills fall between recent checkpoints.
    "execution.checkpointing.interval": "1s",
    # The upgrade by pod deletion (docs/kubernetes.md, Graceful shutdown): SIGTERM stops the jobs
    # with a savepoint.
    "jobmanager.shutdown.savepoint": "true",
}


def load(name):
    with open(os.path.join(K8S, name)) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    check(len(docs) == 1, f"deploy/kubernetes/{name}: expected one object, got {len(docs)}")
    return docs[0]


class Env:
    """One run: names, the host directory for hostPath files, the network, the image."""

    def __init__(self, cleanup):
        self.cleanup = cleanup
        self.rid = podlib.run_id()
        cleanup.add("sweep", self.rid)  # runs last
        self.image = podlib.image_tag()
        self.dir = cleanup.add("dir", tempfile.mkdtemp(prefix=f"weir-e2e-{self.rid}-"))
        self.net = cleanup.add("network", f"weir-e2e-{self.rid}")
        self.configmap = load("configmap.yaml")
        self.secret = load("secret.yaml")
        self.pvc = load("pvc.yaml")
        self.service = load("service.yaml")
        self.volume = f"{self.pvc['metadata']['name']}-{self.rid}"
        self.token = None

    def name(self, base):
        return f"{base}-{self.rid}"

    # --- the objects podman has no kind for: ConfigMap, Secret, Service ------------------------

    def write_configmap(self):
        """ConfigMap -> files under self.dir (mounted by hostPath, see podmanize_pod_spec)."""
        data = dict(self.configmap["data"])
        conf = yaml.safe_load(data["weir.yaml"])
        conf.update(TEST_CONF)
        data["weir.yaml"] = "".join(f"{k}: {v}\n" for k, v in conf.items())
        self.conf = conf
        d = os.path.join(self.dir, "configmap", self.configmap["metadata"]["name"])
        os.makedirs(d)
        for key, text in data.items():
            with open(os.path.join(d, key), "w") as f:
                f.write(text)
            os.chmod(os.path.join(d, key), 0o644)  # ConfigMap volumes default to 0644

    def write_secret(self):
        """Secret -> files under self.dir: the template's keys with real values (the key pair
        from `weir keygen` in the image, a random token), as the template's comment says to do."""
        keys = set(self.secret.get("stringData", {})) | set(self.secret.get("data", {}))
        check(keys == {"rest-token", "cluster.key"}, f"secret.yaml has keys {sorted(keys)}")
        self.token = os.urandom(24).hex()
        r = podman("run", "--rm", "--no-healthcheck", self.image, "weir", "keygen")
        check("secret-key:" in r.stdout, f"weir keygen printed {r.stdout!r}")
        d = os.path.join(self.dir, "secret", self.secret["metadata"]["name"])
        os.makedirs(d)
        os.chmod(os.path.join(self.dir, "secret"), 0o755)
        for key, text in {"rest-token": self.token, "cluster.key": r.stdout}.items():
            path = os.path.join(d, key)
            with open(path, "w") as f:
                f.write(text)
            # Kubernetes: defaultMode 0400 plus group read for the pod's fsGroup (9999), owned
            # root:9999 (the kubelet's fsGroup ownership of secret volumes).
            os.chown(path, 0, 9999)
            os.chmod(path, 0o440)
        os.chown(d, 0, 9999)
        os.chmod(d, 0o750)

    def check_service(self):
        """Service -> a network alias (kube play ignores Services): the alias is the Service's
        name and reaches the pod's ports directly, so every Service port must equal its target
        port; the selector must select the job manager's pods."""
        spec = self.service["spec"]
        jm = load("jobmanager.yaml")
        labels = jm["spec"]["template"]["metadata"]["labels"]
        for k, v in spec["selector"].items():
            check(labels.get(k) == v, f"the Service's selector {k}={v} misses the job manager pod")
        ports = {p["name"]: p["containerPort"] for p in jm["spec"]["template"]["spec"]["containers"][0]["ports"]}
        for p in spec["ports"]:
            target = p.get("targetPort", p["port"])
            target = ports.get(target, target)
            check(target == p["port"], f"Service port {p['name']} {p['port']} -> {target}: a "
                  f"network alias cannot remap ports")
        return self.service["metadata"]["name"]

    # --- Deployments -> what podman 4.3's kube play runs like Kubernetes --------------------------

    def podmanize_pod_spec(self, spec, pod_key):
        """Transforms a pod template's spec in place (pod_key: unique per pod, for emptyDirs)."""
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        # podman 4.3 makes an emptyDir a named volume called like the pod's volume ("tmp"),
        # shared by every pod that has one of that name (removed with the pod). A name per pod
        # keeps it the pod's own, as in Kubernetes.
        renamed = {n: f"{pod_key}-{n}" for n, v in volumes.items() if "emptyDir" in v}
        new_volumes = []
        for c in spec["containers"]:
            # Image: the tag this run built (the manifests say localhost/weir:dev); never pulled.
            c["image"] = self.image
            c["imagePullPolicy"] = "Never"
            # podman 4.3 publishes every containerPort on the host (Kubernetes never does): the
            # second task manager pod could not listen on 6121, and a parallel run would clash.
            # The ports go; probes that name a port get its number.
            named = {p["name"]: p["containerPort"] for p in c.pop("ports", []) if "name" in p}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                for kind in ("httpGet", "tcpSocket"):
                    action = c.get(probe, {}).get(kind)
                    if action and isinstance(action.get("port"), str):
                        action["port"] = named[action["port"]]
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("fieldRef", {})
                if ref.get("fieldPath") == "status.podIP":
                    # podman 4.3 refuses fieldRef status.podIP ("not valid or not supported") but
                    # has metadata.name: the pod's name, which the network's DNS (aardvark-dns)
                    # resolves to the pod's IP for every other pod, so peers reach the same place.
                    ref["fieldPath"] = "metadata.name"
            mounts = []
            for m in c.get("volumeMounts", []):
                v = volumes[m["name"]]
                if "configMap" in v and "subPath" in m:
                    # podman 4.3 ignores subPath: the ConfigMap's whole volume would be mounted as
                    # a directory at /etc/weir/weir.yaml. A hostPath File of that key instead.
                    name = f"{m['name']}-{m['subPath'].replace('.', '-')}"
                    path = os.path.join(self.dir, "configmap", v["configMap"]["name"], m["subPath"])
                    check(os.path.isfile(path), f"ConfigMap {v['configMap']['name']} has no key "
                          f"{m['subPath']}")
                    new_volumes.append({"name": name, "hostPath": {"path": path, "type": "File"}})
                    m = {"name": name, "mountPath": m["mountPath"], "readOnly": True}
                elif m["name"] in renamed:
                    m = dict(m, name=renamed[m["name"]])
                mounts.append(m)
            c["volumeMounts"] = mounts
        out = []
        for v in spec.get("volumes", []):
            if "secret" in v:
                # podman 4.3 panics on a secret volume without `optional`, ignores defaultMode
                # and writes `data` values still base64-encoded (stringData not at all): the
                # Secret's files, made as Kubernetes makes them, by hostPath instead.
                path = os.path.join(self.dir, "secret", v["secret"]["secretName"])
                check(os.path.isdir(path), f"no Secret {v['secret']['secretName']}")
                v = {"name": v["name"], "hostPath": {"path": path, "type": "Directory"}}
            elif "configMap" in v:
                if not any(n["name"].startswith(v["name"] + "-") for n in new_volumes):
                    raise TestFailure(f"volume {v['name']}: a ConfigMap mounted without subPath")
                continue  # replaced by the hostPath files above
            elif "persistentVolumeClaim" in v:
                # PVC -> podman named volume, whose names are global on the host: per run.
                check(v["persistentVolumeClaim"]["claimName"] == self.pvc["metadata"]["name"],
                      f"volume {v['name']} claims {v['persistentVolumeClaim']['claimName']}")
                v = {"name": v["name"], "persistentVolumeClaim": {"claimName": self.volume}}
            elif "emptyDir" in v:
                v = dict(v, name=renamed[v["name"]])
            out.append(v)
        spec["volumes"] = out + new_volumes

    def podmanize_deployment(self, dep, replica=None):
        """A Deployment of this run: unique name (pod names are host-global: the pods are
        <name>-pod-<i>). replica=i: Deployment of N replicas -> this one replica alone (what its
        ReplicaSet would make), so that a single pod can be killed and replaced, as a ReplicaSet
        replaces one pod, and each pod gets an emptyDir of its own."""
        dep = json.loads(json.dumps(dep))
        base = dep["metadata"]["name"]
        name = self.name(base) if replica is None else self.name(f"{base}-{replica}")
        dep["metadata"]["name"] = name
        if replica is not None:
            dep["spec"]["replicas"] = 1
        check(dep["spec"].get("replicas", 1) == 1, f"{base}: one replica per played Deployment")
        self.podmanize_pod_spec(dep["spec"]["template"]["spec"], name)
        return dep, f"{name}-pod-0"

    def write_yaml(self, name, doc):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False)
        return path


class Pod:
    """One played pod: its kube file, name, container, network options."""

    def __init__(self, env, kube_file, pod, container, alias=None):
        self.env, self.file, self.pod, self.alias = env, kube_file, pod, alias
        self.container = f"{pod}-{container}"
        env.cleanup.add("kube", kube_file)
        env.cleanup.add("pod", pod)

    def play(self, ip=None):
        net = self.env.net + (f":alias={self.alias}" if self.alias else "")
        args = ["kube", "play", "--network", net] + (["--ip", ip] if ip else []) + [self.file]
        t0 = time.monotonic()
        podman(*args, timeout=120)
        return time.monotonic() - t0

    def ip(self):
        infra = podlib.inspect("pod", self.pod)["InfraContainerID"]
        nets = podlib.inspect("container", infra)["NetworkSettings"]["Networks"]
        return nets[self.env.net]["IPAddress"]

    def kill_and_remove(self, partition=False):
        """SIGKILL to every container of the pod, then the pod is deleted. partition=True: the
        pod is cut off its network first, so its peers get no FIN or RST (its node was lost):
        their connections to it stay half-open."""
        if partition:
            infra = podlib.inspect("pod", self.pod)["InfraContainerID"]
            podman("network", "disconnect", self.env.net, infra)
        podman("pod", "kill", "-s", "KILL", self.pod)
        time.sleep(1)
        status = podman("ps", "-a", "--filter", f"pod={self.pod}", "--format",
                        "{{.Names}} {{.State}}").stdout.split("\n")
        podman("pod", "rm", "-f", "-t", "0", self.pod, timeout=120)
        return [s for s in status if s]

    def exec(self, *args, timeout=300, check_rc=True):
        return podman("exec", self.container, *args, timeout=timeout, check_rc=check_rc)


class Rest:
    """The job manager's REST API from the host (the podman network is routed to the host)."""

    def __init__(self, env):
        self.env, self.ip = env, None

    def get(self, path, timeout=5):
        req = urllib.request.Request(f"http://{self.ip}:8081{path}",
                                     headers={"Authorization": f"Bearer {self.env.token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise TestFailure(f"GET {path} on {self.ip}: {e}")

    def job(self, jobid):
        return self.get(f"/jobs/{jobid}")

    def completed(self, jobid):
        return self.get(f"/jobs/{jobid}/checkpoints")["counts"]["completed"]


def running_on(rest, jobid):
    """The task manager ids that run the job's subtasks, once every subtask is RUNNING."""
    job = rest.job(jobid)
    if job["state"] != "RUNNING":
        return None
    subtasks = [s for v in job["vertices"] for s in v["subtasks"]]
    if not subtasks or any(s["state"] != "RUNNING" for s in subtasks):
        return None
    return {s["taskmanager"] for s in subtasks}


def wait_checkpoints(rest, jobid, n, what, timeout=90):
    """Waits until n more checkpoints of the job completed than now (the job made progress);
    logs how long that took, with the checkpoints' durations when it was slow."""
    t0 = time.monotonic()
    start = rest.completed(jobid)
    podlib.wait_for(f"{n} checkpoints of job {jobid} after {what}",
                    lambda: rest.completed(jobid) >= start + n, timeout)
    took = time.monotonic() - t0
    if took > 15:
        hist = rest.get(f"/jobs/{jobid}/checkpoints")["history"]
        log(f"slow: {n} checkpoints after {what} took {took:.1f}s: " + ", ".join(
            f"{h['id']} {h['status']} {h.get('duration_ms')} ms" for h in hist[-8:]))


def committed_prefix(out_dir, oracle, what):
    seen, _ = read_word_updates(out_dir)
    n = check_word_prefix(seen, oracle, "lines")
    log(f"{what}: committed output is an exact prefix, {n} of {sum(oracle.values())} lines")
    return n


def test():
    podlib.setup_podman()
    with podlib.Cleanup() as cleanup:
        env = Env(cleanup)
        secs = podlib.build_image(env.image)
        log(f"image {env.image} ready in {secs:.1f}s; run {env.rid}, files in {env.dir}")
        alias = env.check_service()
        env.write_configmap()
        env.write_secret()
        podman("network", "create", env.net)
        subnet = podlib.inspect("network", env.net)["subnets"][0]["subnet"]

        # PVC: played as is but for its name (podman volume names are global on the host).
        pvc = json.loads(json.dumps(env.pvc))
        pvc["metadata"]["name"] = env.volume
        cleanup.add("volume", env.volume)
        # (--network: without it even a PVC-only play creates podman-default-kube-network.)
        podman("kube", "play", "--network", env.net, env.write_yaml("pvc.yaml", pvc))
        # The job's input on the shared volume, written as the image's user (as `kubectl cp`
        # into a pod would); the text and its oracle from tests/lib.
        text = os.path.join(env.dir, "words.txt")
        gen_text(text, N_WORDS, seed=10)
        oracle = oracle_counts(text)
        with open(text) as f:
            podman("run", "--rm", "-i", "--no-healthcheck", "-v", f"{env.volume}:/var/lib/weir",
                   env.image, "bash", "-c",
                   f"mkdir -p {os.path.dirname(INPUT)} && cat > {INPUT}", input=f.read())
        mount = podlib.inspect("volume", env.volume)["Mountpoint"]
        out_dir = mount + OUTPUT[len("/var/lib/weir"):]

        # 1. One job manager (network alias = the Service's name) and two task managers.
        jm_dep, jm_pod = env.podmanize_deployment(load("jobmanager.yaml"))
        jm = Pod(env, env.write_yaml("jobmanager.yaml", jm_dep), jm_pod, "jobmanager", alias)
        tm_src = load("taskmanager.yaml")
        tms = []
        for i in range(tm_src["spec"]["replicas"]):
            dep, pod = env.podmanize_deployment(tm_src, replica=i)
            tms.append(Pod(env, env.write_yaml(f"taskmanager-{i}.yaml", dep), pod, "taskmanager"))
        t0 = time.monotonic()
        jm.play()
        for tm in tms:
            tm.play()
        rest = Rest(env)
        rest.ip = jm.ip()
        slots = int(env.conf["taskmanager.numberOfTaskSlots"])
        registered = lambda n: len(rest.get("/taskmanagers")["taskmanagers"]) == n
        podlib.wait_for("2 task managers registered", lambda: registered(len(tms)), 60)
        log(f"played 1 job manager ({jm.pod}, {rest.ip}, alias {alias}) + {len(tms)} task "
            f"managers on {env.net} ({subnet}): registered in {time.monotonic() - t0:.1f}s")
        for p in [jm] + tms:
            info = podlib.inspect("container", p.container)
            check(info["Config"]["User"] in ("9999", "9999:9999"), f"{p.container} runs as "
                  f"{info['Config']['User']}")
            check(info["HostConfig"]["ReadonlyRootfs"], f"{p.container}: root filesystem writable")
        # The job manager's httpGet liveness probe, as podman runs it (curl in the image).
        r = podman("healthcheck", "run", jm.container, check_rc=False)
        check(r.returncode == 0, f"the job manager's liveness probe as a podman health check "
              f"({podlib.inspect('container', jm.container)['Config'].get('Healthcheck')}): "
              f"exit {r.returncode} {r.stdout}{r.stderr}")

        p = len(tms) * slots
        cli = ["weir", "-c", "/etc/weir/weir.yaml", "-m", "127.0.0.1:8081"]
        r = jm.exec(*cli, "run", "-d", "-p", str(p), PLUGIN, "--input", INPUT, "--output", OUTPUT,
                    "--rate", str(RATE), check_rc=False)
        ids = [ln.split()[-1] for ln in r.stdout.splitlines() if ln.startswith("Job has been submitted")]
        check(r.returncode == 0 and len(ids) == 1, f"weir run exited {r.returncode}: {r.stdout}{r.stderr}")
        jobid = ids[0]
        t0 = time.monotonic()
        tm_ids = podlib.wait_for(f"job {jobid} running", lambda: running_on(rest, jobid), 60)
        log(f"job {jobid} submitted by `weir run` in the job manager's container: every subtask "
            f"RUNNING after {time.monotonic() - t0:.1f}s")
        check(len(tm_ids) == len(tms), f"job {jobid} runs on {tm_ids}, not across {len(tms)} pods")
        wait_checkpoints(rest, jobid, 3, "the start")
        committed_prefix(out_dir, oracle, f"job {jobid} (-p {p}) across {len(tm_ids)} pods")

        # 2. A task manager pod killed and replaced.
        victim = tms[0]
        old_ip = victim.ip()
        restarts = rest.job(jobid)["restarts"]
        t0 = time.monotonic()
        states = victim.kill_and_remove()
        log(f"killed task manager pod {victim.pod} ({old_ip}); 1 s after `pod kill` its "
            f"containers were {states}; pod removed")
        victim.play()
        new_ip = victim.ip()
        new_ids = podlib.wait_for(f"job {jobid} running again after the task manager kill",
                                  lambda: (rest.job(jobid)["restarts"] > restarts
                                           and running_on(rest, jobid)), 120)
        check(new_ids != tm_ids and len(new_ids) == len(tms),
              f"job runs on {new_ids} after the replacement (before: {tm_ids})")
        wait_checkpoints(rest, jobid, 2, "the task manager's replacement")
        log(f"task manager pod replaced ({new_ip}): job {jobid} restarted "
            f"({rest.job(jobid)['restarts']} restarts) and checkpoints again, "
            f"{time.monotonic() - t0:.1f}s after the kill")
        committed_prefix(out_dir, oracle, "after the task manager's replacement")

        # 3. The job manager pod lost with its node (cut off the network, then killed: the task
        # managers' connections to it stay half-open) and replaced at another IP: the task
        # managers must notice, connect anew and resolve weir-jobmanager again.
        last = rest.get(f"/jobs/{jobid}/checkpoints")["latest"]["completed"]["id"]
        old_jm_ip = rest.ip
        t0 = time.monotonic()
        states = jm.kill_and_remove(partition=True)
        log(f"job manager pod {jm.pod} ({old_jm_ip}; latest checkpoint {last}) cut off the "
            f"network and killed; 1 s after `pod kill`: {states}; pod removed")
        # A new IP for sure (IPAM would hand the freed one out again): from the subnet's top.
        used = {old_jm_ip, new_ip} | {t.ip() for t in tms[1:]}
        hosts = list(ipaddress.ip_network(subnet).hosts())
        other = next(str(h) for h in reversed(hosts[:-1]) if str(h) not in used)
        jm.play(ip=other)
        rest.ip = jm.ip()
        check(rest.ip != old_jm_ip, f"the new job manager pod has the old IP {old_jm_ip}")
        # Two heartbeat.timeout periods (10 s each) without an answer, then a new connection.
        podlib.wait_for("the task managers registered with the new job manager",
                        lambda: registered(len(tms)), 60)
        t_reg = time.monotonic() - t0
        for t in tms:
            check("opening a new connection to the job manager at tcp://weir-jobmanager:6123"
                  in podlib.logs(t.container), f"{t.container} did not open a new connection")
        check(any(j["id"] == jobid for j in rest.get("/jobs")["jobs"]),
              f"the new job manager does not know job {jobid}: {rest.get('/jobs')}")
        podlib.wait_for(f"job {jobid} running under the new job manager",
                        lambda: running_on(rest, jobid), 120)
        ck = rest.get(f"/jobs/{jobid}/checkpoints")
        restored = (ck["latest"].get("restored") or {}).get("id")
        check(restored is not None and restored >= last,
              f"job {jobid} restored from {restored}, expected checkpoint {last} or later")
        wait_checkpoints(rest, jobid, 2, "the job manager's replacement")
        log(f"job manager pod replaced ({old_jm_ip} -> {rest.ip}): task managers re-registered "
            f"through '{alias}' in {t_reg:.1f}s; job {jobid} resumed from HA (checkpoint "
            f"{restored}) and checkpoints again, {time.monotonic() - t0:.1f}s after the kill")
        committed_prefix(out_dir, oracle, "after the job manager's replacement")

        # 4. Upgrade. First a savepoint by the CLI in the job manager's container (the Secret's
        # token through rest.auth.token-file); then the job manager's pod is deleted: SIGTERM,
        # and with jobmanager.shutdown.savepoint the job manager stops the job with a savepoint
        # and exits 0. Pod deletion -> `podman stop -t <terminationGracePeriodSeconds>` of the
        # container, then `kube down`: podman 4.3's `pod stop`/`kube down` ignore the grace
        # period (10 s) and tear the pod's network down while the container is still shutting
        # down (its task managers then never reach it again); Kubernetes keeps the pod's network
        # until its containers exited. Also keeps the log and exit code readable.
        t0 = time.monotonic()
        r = jm.exec(*cli, "savepoint", jobid, check_rc=False)
        sps = [ln[len(SAVEPOINT_DONE):].strip() for ln in r.stdout.splitlines()
               if ln.startswith(SAVEPOINT_DONE)]
        check(r.returncode == 0 and len(sps) == 1,
              f"weir savepoint exited {r.returncode}: {r.stdout}{r.stderr}")
        check(os.path.isfile(os.path.join(mount, sps[0][len("/var/lib/weir/"):], "_metadata")),
              f"savepoint {sps[0]} has no _metadata on the volume")
        log(f"weir savepoint in the job manager's container: {sps[0]} "
            f"({time.monotonic() - t0:.1f}s)")
        t0 = time.monotonic()
        grace = jm_dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        podman("stop", "-t", grace, jm.container, timeout=grace + 30)
        t_stop = time.monotonic() - t0
        state = podlib.inspect("container", jm.container)["State"]
        jm_log = podlib.logs(jm.container)
        done = [ln.split(" stopped with savepoint ", 1)[1].strip() for ln in jm_log.splitlines()
                if f"shutdown: job {jobid} stopped with savepoint " in ln]
        check(state["ExitCode"] == 0 and len(done) == 1, f"SIGTERM: job manager exited "
              f"{state['ExitCode']}, shutdown savepoint lines {done}:\n{jm_log[-3000:]}")
        sp = done[0]
        check(sp.startswith(env.conf["state.savepoints.dir"] + "/") and sp != sps[0],
              f"shutdown savepoint {sp} (state.savepoints.dir {env.conf['state.savepoints.dir']})")
        ha = os.path.join(mount, env.conf["high-availability.storageDir"][len("/var/lib/weir/"):])
        with open(os.path.join(ha, "results", f"{jobid}.json")) as f:
            res = json.load(f)
        check(res["state"] == "FINISHED" and res.get("savepoint") == sp,
              f"job result store entry of {jobid}: {res} (savepoint {sp})")
        stopped = committed_prefix(out_dir, oracle, f"SIGTERM stopped job {jobid} with savepoint "
                                   f"{sp} in {t_stop:.1f}s, job manager exit 0")
        check(stopped < sum(oracle.values()), "the input was consumed before the upgrade: "
              "raise N_WORDS or lower RATE")
        kube_down(jm.file)
        app_src = load("jobmanager-application.yaml")
        app_dep, app_pod = env.podmanize_deployment(app_src)
        args = app_dep["spec"]["template"]["spec"]["containers"][0]["args"]
        # The upgrade step the manifest's comment gives: execution.savepoint.path (before "--").
        args[args.index("--"):args.index("--")] = ["-D", f"execution.savepoint.path={sp}"]
        job_args = args[args.index("--") + 1:]
        check(job_args[job_args.index("--input") + 1] == INPUT and
              job_args[job_args.index("--output") + 1] == OUTPUT,
              f"jobmanager-application.yaml's job arguments {job_args} differ from the job's")
        app_p = int(next(a.split("=", 1)[1] for a in args if a.startswith("parallelism.default=")))
        check(app_p != p, f"the upgrade keeps parallelism {p}")
        app = Pod(env, env.write_yaml("jobmanager-application.yaml", app_dep), app_pod,
                  "jobmanager", alias)
        app.play()
        rest.ip = app.ip()
        cluster_id = env.conf.get("high-availability.cluster-id", "default")
        app_id = hashlib.sha256(f"weir-application\n{cluster_id}\n{sp}".encode()).hexdigest()[:32]
        result = os.path.join(ha, "results", f"{app_id}.json")
        podlib.wait_for(f"the application job {app_id} to finish ({result})",
                        lambda: os.path.exists(result), 300)
        with open(result) as f:
            res = json.load(f)
        check(res["state"] == "FINISHED" and res["id"] == app_id, f"job result store: {res}")
        log(f"upgrade: application job manager (-p {app_p}) ran job "
            f"{app_id} from it to FINISHED in {time.monotonic() - t0:.1f}s")
        # The job manager exits 0 once the job is FINISHED (the pod's restartPolicy Always then
        # starts it again: it finds the result and exits 0 again).
        def exited():
            info = podlib.inspect("container", app.container)
            done = info["State"].get("Status") == "exited" or info.get("RestartCount", 0) > 0
            return info["State"] if done else None
        state = podlib.wait_for("the application job manager to exit", exited, 60, interval=0.2)
        check(state["ExitCode"] == 0, f"application job manager exited {state['ExitCode']}: {state}")
        jm_log = podlib.logs(app.container)
        for want in [f"submitting application job {app_id}: ", f" -p {app_p} -s {sp} {PLUGIN} ",
                     f"application job {app_id} FINISHED", "exiting 0"]:
            check(want in jm_log, f"the application job manager's log lacks {want!r}:\n{jm_log}")
        restarts = podlib.inspect("container", app.container).get("RestartCount", 0)
        log(f"application job manager exited 0 after FINISHED; restartPolicy Always restarted it "
            f"{restarts} time(s) so far"
            + (" (it found the job result and exited 0 again)"
               if f"application job {app_id} already reached FINISHED" in jm_log else ""))

        # 5. The committed output equals the oracle exactly.
        lines = check_wordcount_output(out_dir, oracle)
        log(f"committed output: {lines} lines, {len(oracle)} words: exactly the oracle "
            f"(tr | sort | uniq -c), over -p {p}, a task manager and a job manager replacement "
            f"and an upgrade to -p {app_p}")

        # 6. kube down removes every pod. The application job manager's container restarts in a
        # loop (restartPolicy Always, exit 0 each time): podman 4.3's `kube down` of a container
        # that is being restarted fails ("unlinkat .../shm: device or resource busy"), so its pod
        # is stopped first, which ends the loop (Kubernetes: the Deployment scaled to 0).
        podman("pod", "stop", "-t", "10", app.pod, timeout=120)
        for f in [app.file] + [t.file for t in tms]:
            kube_down(f)
        left = podman("pod", "ps", "--filter", f"name={env.rid}", "--format", "{{.Name}}").stdout.split()
        check(not left, f"pods left after kube down: {left}")
        vols = podman("volume", "ls", "--format", "{{.Name}}").stdout.split()
        left = [v for v in vols if env.rid in v and v != env.volume]
        check(not left, f"emptyDir volumes left after kube down: {left}")
        log(f"kube down removed every pod and emptyDir; the PVC's volume {env.volume} stays "
            f"(as a PersistentVolume does) and is removed by the test")


if __name__ == "__main__":
    podlib.main("containers.02_kube_e2e", test)
