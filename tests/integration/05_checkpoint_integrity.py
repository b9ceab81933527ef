"""Checkpoint integrity, through a job-manager restart (HA) that must read checkpoints from disk:
- a checkpoint exists iff its _metadata is complete: a chk-N directory without _metadata (a
  half-written checkpoint) is never restored;
- a truncated _metadata of the latest checkpoint makes restore fall back to the previous one, with
  a warning in the job manager's log;
- a checkpoint directory that vanished gives a clear error: the job FAILS with a message naming the
  missing directory, and the job manager stays up."""

import os
import re
import time

from weirtest import EXAMPLES, Cluster, check, gen_text, run_test


def chk_ids(ckdir):
    ids = []
    for name in os.listdir(ckdir):
        m = re.fullmatch(r"chk-(\d+)", name)
        if m and os.path.exists(os.path.join(ckdir, name, "_metadata")):
            ids.append(int(m.group(1)))
    return sorted(ids)


def kill_all(c):
    for p in c.tms:
        c.kill9(p)
    c.kill9(c.jm)


def restart_all(c):
    c.restart_jobmanager()
    for i in range(len(c.tms)):
        c.start_taskmanager(index=i)


def test():
    with Cluster("integrity", tms=2, slots=2, checkpoints="300ms", retained=3, ha=True) as c:
        text = os.path.join(c.dir, "input.txt")
        gen_text(text, 200_000, seed=5)
        wc = os.path.join(EXAMPLES, "wordcount.so")

        # 1. Corrupt latest + half-written newer checkpoint -> restore from the previous one.
        jobid = c.submit("-p", "2", wc, "--input", text, "--output", os.path.join(c.dir, "o1"),
                         "--rate", "1500")
        c.wait_checkpoints(jobid, 4)
        kill_all(c)
        ckdir = os.path.join(c.conf["state.checkpoints.dir"], jobid)
        ids = chk_ids(ckdir)
        check(len(ids) >= 2, f"expected >= 2 retained checkpoints, found {ids}")
        latest, previous = ids[-1], ids[-2]
        meta = os.path.join(ckdir, f"chk-{latest}", "_metadata")
        size = os.path.getsize(meta)
        with open(meta, "r+b") as f:
            f.truncate(size // 2)
        half = os.path.join(ckdir, f"chk-{latest + 5}")
        os.makedirs(os.path.join(half, "0-0"), exist_ok=True)
        with open(os.path.join(half, "0-0", "MANIFEST-000001"), "w") as f:
            f.write("partial")
        print(f"truncated chk-{latest}/_metadata to {size // 2} of {size} bytes; "
              f"made a half-written chk-{latest + 5}")
        restart_all(c)
        deadline = time.time() + 60
        restored = None
        while time.time() < deadline and restored is None:
            try:
                restored = c.checkpoints(jobid)["latest"]["restored"]
            except Exception:  # noqa: BLE001 - job manager starting
                pass
            time.sleep(0.2)
        check(restored is not None, "the restarted job manager did not restore the job")
        check(restored["id"] == previous,
              f"restored chk-{restored['id']}, expected the previous valid chk-{previous}")
        with open(os.path.join(c.dir, "jobmanager.log")) as f:
            log = f.read()
        warn = [l for l in log.splitlines() if "WARN" in l and f"chk-{latest}" in l]
        check(warn, f"no warning about the corrupt chk-{latest} in the job manager's log")
        print("warning:", warn[-1])
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=300)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")

        # 2. A vanished checkpoint directory -> a clear error, the job manager stays up.
        jobid = c.submit("-p", "2", wc, "--input", text, "--output", os.path.join(c.dir, "o2"),
                         "--rate", "1500")
        c.wait_checkpoints(jobid, 2)
        kill_all(c)
        ckdir = os.path.join(c.conf["state.checkpoints.dir"], jobid)
        import shutil
        shutil.rmtree(ckdir)
        restart_all(c)
        job = c.wait_state(jobid, {"FAILED", "FINISHED", "CANCELED"}, timeout=120)
        check(job["state"] == "FAILED", f"job ended {job['state']} without its checkpoints")
        check("missing" in job["message"] and jobid in job["message"],
              f"unclear error for a vanished checkpoint directory: {job['message']!r}")
        print("vanished directory:", job["message"])
        check(c.healthy(), "job manager down after a vanished checkpoint directory")


run_test(test)
