"""The container image (deploy/docker/): builds with podman from the Containerfile through
deploy/docker/build.sh; runs `weir-jobmanager --help` (the default command) as the non-root user
weir (uid 9999); carries its labels and its HEALTHCHECK; finds libweir.so and every shared library;
and, locked down like the Kubernetes manifests (read-only root filesystem, every capability
dropped, no-new-privileges, /tmp a tmpfs, /var/lib/weir a named volume), a job manager and a task
manager start in one pod, pass the health check, and run the wordcount example, whose output
equals a coreutils oracle. A container without a weir daemon fails the health check.
"""

import os
import subprocess
import time

import podlib
from podlib import check, log, podman
from weirtest import check_wordcount_output, oracle_counts

IMAGE_DIRS = ["/opt/weir/bin/weir-jobmanager", "/opt/weir/bin/weir-taskmanager",
              "/opt/weir/bin/weir", "/opt/weir/bin/weir-healthcheck", "/opt/weir/lib/libweir.so",
              "/opt/weir/examples/wordcount.so", "/opt/weir/examples/kafka_wordcount.so",
              "/opt/weir/examples/nexmark.so", "/opt/weir/examples/data/weir-tales.txt"]


def test():
    image = podlib.image_tag()
    podlib.setup_podman()
    secs = podlib.build_image(image)
    log(f"image {image} built in {secs:.1f}s")

    info = podlib.inspect("image", image)
    cfg = info["Config"]
    check(cfg.get("User") == "9999:9999", f"image USER is {cfg.get('User')!r}, want 9999:9999")
    check(cfg.get("Cmd") == ["weir-jobmanager", "--help"], f"image CMD is {cfg.get('Cmd')}")
    check(not cfg.get("Entrypoint"), f"image has an ENTRYPOINT {cfg.get('Entrypoint')}")
    check(cfg.get("WorkingDir") == "/opt/weir", f"WORKDIR is {cfg.get('WorkingDir')}")
    check("/opt/weir/bin" in next(e for e in cfg.get("Env", []) if e.startswith("PATH=")),
          "/opt/weir/bin is not on the image's PATH")
    labels = info.get("Labels") or cfg.get("Labels") or {}
    for key in ["title", "description", "version", "revision", "base.name"]:
        check(labels.get(f"org.opencontainers.image.{key}"),
              f"label org.opencontainers.image.{key} missing: {labels}")
    check(labels["org.opencontainers.image.title"] == "weir", f"title label {labels}")
    head = subprocess.run(["git", "-C", podlib.SRC, "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    if head:
        check(labels["org.opencontainers.image.revision"] == head,
              f"revision label {labels['org.opencontainers.image.revision']} != git HEAD {head}")
    hc = cfg.get("Healthcheck") or info.get("Healthcheck") or {}
    check(hc.get("Test") == ["CMD", "weir-healthcheck"],
          f"HEALTHCHECK is {hc} (built without --format docker?)")
    log(f"config ok: user 9999:9999, labels {sorted(labels)}, healthcheck {hc['Test']}")

    # The default command: weir-jobmanager --help, as uid 9999.
    r = podman("run", "--rm", "--no-healthcheck", image, check_rc=False)
    check(r.returncode == 0 and "weir-jobmanager" in r.stdout,
          f"default CMD (weir-jobmanager --help) exited {r.returncode}: {r.stdout}{r.stderr}")
    for prog in ["weir-taskmanager", "weir"]:
        r = podman("run", "--rm", "--no-healthcheck", image, prog, "--help", check_rc=False)
        check(r.returncode == 0 and prog in r.stdout,
              f"{prog} --help exited {r.returncode}: {r.stdout}{r.stderr}")
    who = podman("run", "--rm", "--no-healthcheck", image, "id").stdout.strip()
    check(who.startswith("uid=9999(weir) gid=9999(weir)"), f"`id` in the image says {who}")
    script = ("set -e; ls -l " + " ".join(IMAGE_DIRS) + " >/dev/null; "
              "ldconfig -p | grep -q 'libweir.so.*/opt/weir/lib/libweir.so'; "
              "! ldd /opt/weir/bin/* /opt/weir/lib/*.so /opt/weir/examples/*.so 2>/dev/null "
              "| grep 'not found'; stat -c '%u:%g %a' /var/lib/weir; echo LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}")
    out = podman("run", "--rm", "--no-healthcheck", image, "bash", "-c", script).stdout.split()
    check(out == ["9999:9999", "750", "LD_LIBRARY_PATH="], f"image layout check printed {out}")
    log("weir-jobmanager --help, weir-taskmanager --help, weir --help run as uid 9999; "
        "libraries resolve without LD_LIBRARY_PATH")

    rid = podlib.run_id()
    pod, vol = f"weir-img-{rid}", f"weir-img-{rid}"
    locked = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
              "--tmpfs", "/tmp:rw,mode=1777", "-v", f"{vol}:/var/lib/weir"]
    with podlib.Cleanup() as cleanup:
        cleanup.add("volume", vol)
        cleanup.add("pod", pod)
        podman("volume", "create", vol)
        podman("pod", "create", "--name", pod)
        jm, tm, idle = cleanup.add("container", f"{pod}-jm"), cleanup.add("container", f"{pod}-tm"), \
            cleanup.add("container", f"{pod}-idle")
        t0 = time.monotonic()
        podman("run", "-d", "--pod", pod, "--name", jm, *locked, image, "weir-jobmanager",
               "-D", "blob.storage.directory=/var/lib/weir/blobs")
        podman("run", "-d", "--pod", pod, "--name", tm, *locked, image, "weir-taskmanager",
               "-D", "taskmanager.numberOfTaskSlots=2", "-D", "taskmanager.working-dir=/tmp/weir-tm")
        podlib.wait_for("the task manager to register",
                        lambda: "registered: 2 slots" in podlib.logs(jm), 30)
        log(f"job manager + task manager up and registered in {time.monotonic() - t0:.1f}s")
        for c in (jm, tm):
            r = podman("healthcheck", "run", c, check_rc=False)
            check(r.returncode == 0, f"health check of {c}: exit {r.returncode} {r.stdout}{r.stderr}")
        podman("run", "-d", "--pod", pod, "--name", idle, image, "sleep", "60")
        r = podman("healthcheck", "run", idle, check_rc=False)
        check(r.returncode != 0, "the health check passed in a container without a weir daemon")
        log("health check: job manager and task manager healthy; a container without weir unhealthy")

        r = podman("exec", jm, "weir", "-m", "127.0.0.1:8081", "run", "-p", "2",
                   "/opt/weir/examples/wordcount.so", "--input",
                   "/opt/weir/examples/data/weir-tales.txt", "--output", "/var/lib/weir/wc-out",
                   check_rc=False, timeout=180)
        check(r.returncode == 0, f"weir run wordcount exited {r.returncode}: {r.stdout}{r.stderr}")
        mount = podlib.inspect("volume", vol)["Mountpoint"]
        oracle = oracle_counts(os.path.join(podlib.SRC, "examples", "data", "weir-tales.txt"))
        lines = check_wordcount_output(os.path.join(mount, "wc-out"), oracle)
        owners = subprocess.run(["stat", "-c", "%u", os.path.join(mount, "wc-out")],
                                capture_output=True, text=True).stdout.strip()
        check(owners == "9999", f"output on the volume is owned by uid {owners}, want 9999")
        log(f"wordcount across the job manager and task manager containers: {lines} lines, "
            f"{len(oracle)} words, exactly the oracle (tr | sort | uniq -c)")


if __name__ == "__main__":
    podlib.main("containers.01_image", test)
