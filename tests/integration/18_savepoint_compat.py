"""Savepoint compatibility, `weir validate`, damaged savepoints and retained checkpoints (issue 9),
with tests/plugins/compat.c: numbers (generator, uid "numbers") -> count (keyed, uid "count",
value state "n") -> extra (keyed, uid "extra", value state "n") -> the exactly-once file sink
(uid "sink"), each keyed operator writing "<uid> <key> <n>" per number; variants: removed (no
extra), added (one more keyed operator "audit"), listkind (count's "n" a list state), maxpar
(max parallelism 256). One cluster (2 task managers, checkpoints every 500 ms,
RETAIN_ON_CANCELLATION):

1. base at -p 2, stopped with a savepoint S part way: committed output consistent (per key and
   operator the counts 1..k, no gap or duplicate) and a consistent cut (count and extra stopped
   at the same count for every key).
2. `weir validate -s S` (no cluster address): base at -p 3 exit 0, every uid restored, the
   key-group ranges of the 3 new subtasks printed; removed: exit 1, one line naming 'extra' and
   --allowNonRestoredState; removed --allowNonRestoredState: exit 0, extra dropped; added: exit
   0, audit new; listkind: exit 1 naming 'count' and both state kinds; maxpar: exit 1 naming both
   maximum parallelisms.
3. `weir run -s S` of removed, listkind and maxpar: refused with the same kind of line, no job
   created, the job manager up.
4. removed --allowNonRestoredState at -p 1 from S: FINISHED; count's counts continue exactly to
   the oracle's, extra writes nothing more.
5. added at -p 3 from S (the same savepoint again: restoring never consumes it): FINISHED; count
   and extra exactly the oracle, audit starts empty (per key 1..(total - count at S)).
6. Damaged copies of S: _metadata with a byte changed, a keyed file missing, a keyed file
   truncated, an empty directory: validate exits 1 and run -s is refused, each with one line
   naming the file and what is wrong; the job manager stays up and no job is created.
7. A retained checkpoint: base at -p 2, cancelled after 3 checkpoints (RETAIN_ON_CANCELLATION);
   validate of <ckdir>/<job>/chk-n exits 0; run -s chk-n at -p 3; once the new job completed a
   checkpoint, the old job's checkpoint directory is moved away and a task manager killed: the
   job recovers from its own checkpoint (the first checkpoint after a restore is complete on its
   own) and FINISHES with output exactly the oracle, no in-progress or pending file left (the
   cancelled job's fence files stay); the files restored from (chk-n and shared/) are
   byte-identical before, during and after (checksums).
Oracles: the generator's numbers counted per key in Python."""

import json
import os
import re
import shutil
from collections import defaultdict

from weirtest import (TEST_PLUGINS, Cluster, TestFailure, check, run_test, tree_checksum, tree_diff,
                      validate)

PLUGIN = os.path.join(TEST_PLUGINS, "compat.so")
N = 8000
KEYS = 40
RATE = 1500  # numbers per second over all subtasks: about 5 s of input
MAX_PAR = 128


def total(k):
    """The oracle: how many of the numbers 0..N-1 have key k (i mod KEYS)."""
    return N // KEYS + (1 if k < N % KEYS else 0)


def job_args(variant, out):
    return [PLUGIN, "--variant", variant, "--output", out, "--count", str(N), "--keys", str(KEYS),
            "--rate", str(RATE)]


def committed(out):
    """Names of the committed (non-hidden) part files of out."""
    return {f for f in os.listdir(out) if not f.startswith(".")}


def read_counts(out, files):
    """{(uid, key): [n, ...]} of the lines of the given part files."""
    seen = defaultdict(list)
    for name in sorted(files):
        with open(os.path.join(out, name), encoding="utf-8") as f:
            for line in f:
                uid, key, n = line.split()
                seen[(uid, int(key))].append(int(n))
    return seen


def check_counts(seen, uid, expect, what):
    """For every key the counts of uid are exactly 1..expect(k) (expect None: a consistent
    prefix 1..k with k <= total(k)); returns {key: highest count}."""
    top = {}
    for k in range(KEYS):
        got = sorted(seen.get((uid, k), []))
        want = expect(k) if expect else len(got)
        check(got == list(range(1, want + 1)) and want <= total(k),
              f"{what}: {uid} key {k}: counts {got[:5]}...{got[-5:]} ({len(got)}), wanted 1..{want} "
              f"(oracle total {total(k)})")
        top[k] = want
    others = {u for u, _ in seen} - {"count", "extra", "audit"}
    check(not others, f"{what}: lines of unknown operators {others}")
    return top


def one_line(r, what, *parts):
    """r (a CompletedProcess) failed with exactly one line on stderr holding every part."""
    err = r.stderr.strip()
    check(r.returncode != 0, f"{what}: exit 0, expected a refusal\n{r.stdout}{r.stderr}")
    check(len(err.splitlines()) == 1, f"{what}: expected one line on stderr, got:\n{r.stderr}")
    for p in parts:
        check(p in err, f"{what}: {p!r} missing from: {err}")
    print(f"{what}: exit {r.returncode}: {err}")
    return err


def metadata(path):
    """The JSON of a _metadata file (its last line is "sha256 <hex>")."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    body, last = text.rstrip("\n").rsplit("\n", 1)
    check(last.startswith("sha256 "), f"{path}: last line is not a checksum: {last[:80]!r}")
    return json.loads(body)


def keyed_file(sp):
    """(task, name, recorded size) of one file a keyed handle of savepoint sp lists (an SST when
    there is one)."""
    found = []
    for t in metadata(os.path.join(sp, "_metadata"))["tasks"]:
        h = t.get("keyed")
        if isinstance(h, str):
            h = json.loads(h)
        if not h:
            continue
        for f in h.get("private", []):
            found.append((not f.get("sst", False), h["task"], f["name"], f["size"]))
    check(found, f"{sp}/_metadata lists no keyed file")
    found.sort()
    _, task, name, size = found[0]
    check(os.path.isfile(os.path.join(sp, task, name)), f"{sp}/{task}/{name} listed but absent")
    return task, name, size


def jobs(c):
    return [j["id"] for j in c.get("/jobs")["jobs"]]


def refused_run(c, path, variant, out, what, *parts, allow=False):
    before = jobs(c)
    r = c.run_from(path, *job_args(variant, out), p=2, allow_non_restored=allow)
    err = one_line(r, what, *parts)
    check(jobs(c) == before, f"{what}: a refused restore created a job: {jobs(c)} (was {before})")
    check(c.healthy(), f"{what}: the job manager is down")
    return err


def keygroup_ranges(p, maxp=MAX_PAR):
    """weir_keygroup_range (runtime/graph/keygroup.c, Flink's formula) for every subtask."""
    return [(k * maxp + p - 1) // p for k in range(p)], [((k + 1) * maxp + p - 1) // p - 1 for k in range(p)]


def stop_part_way(c, out):
    job = c.submit("-p", "2", *job_args("base", out))
    c.wait_checkpoints(job, 2)
    sp = c.stop_with_savepoint(job)
    files = committed(out)
    seen = read_counts(out, files)
    at_count = check_counts(seen, "count", None, "after the stop")
    at_extra = check_counts(seen, "extra", None, "after the stop")
    check(at_count == at_extra, f"not a consistent cut: count {at_count} extra {at_extra}")
    done = sum(at_count.values())
    check(0 < done < N, f"the stop fell after {done} of {N} numbers: not part way")
    print(f"1. base -p 2 stopped after {done} of {N} numbers; savepoint {sp}")
    return sp, files, at_count


def validate_cases(sp, out):
    v = validate(sp, *job_args("base", out), p=3)
    check(v.returncode == 0, f"validate base -p 3: exit {v.returncode}\n{v.stdout}{v.stderr}")
    lines = v.stdout.splitlines()
    for uid in ("numbers", "count", "extra"):
        check(any(f"'{uid}'" in ln or re.search(rf"\b{uid}\b", ln) for ln in lines if "restored" in ln),
              f"validate base: uid {uid} not reported restored:\n{v.stdout}")
    firsts, lasts = keygroup_ranges(3)
    for a, b in zip(firsts, lasts):
        check(f"{a}-{b}" in v.stdout, f"validate base -p 3: key groups {a}-{b} not in the report:\n{v.stdout}")
    print(f"2. validate base -p 3: exit 0\n{v.stdout.rstrip()}")

    r = validate(sp, *job_args("removed", out))
    one_line(r, "2. validate removed", "'extra'", "--allowNonRestoredState")
    check(r.returncode == 1, f"validate removed: exit {r.returncode}, expected 1")

    v = validate(sp, *job_args("removed", out), allow_non_restored=True)
    check(v.returncode == 0, f"validate removed --allowNonRestoredState: exit {v.returncode}\n{v.stdout}{v.stderr}")
    check(any("extra" in ln and "dropped" in ln for ln in v.stdout.splitlines()),
          f"validate removed --allowNonRestoredState: extra not reported dropped:\n{v.stdout}")
    print("2. validate removed --allowNonRestoredState: exit 0, extra dropped")

    v = validate(sp, *job_args("added", out))
    check(v.returncode == 0, f"validate added: exit {v.returncode}\n{v.stdout}{v.stderr}")
    check(any("audit" in ln and "new" in ln for ln in v.stdout.splitlines()),
          f"validate added: audit not reported new:\n{v.stdout}")
    print("2. validate added: exit 0, audit new")

    r = validate(sp, *job_args("listkind", out))
    one_line(r, "2. validate listkind", "'count'", "value state", "list state")
    check(r.returncode == 1, f"validate listkind: exit {r.returncode}, expected 1")

    r = validate(sp, *job_args("maxpar", out))
    one_line(r, "2. validate maxpar", "128", "256", "max parallelism")
    check(r.returncode == 1, f"validate maxpar: exit {r.returncode}, expected 1")


def damaged_copies(c, sp, out):
    work = os.path.join(c.dir, "damaged")
    os.makedirs(work)

    bad = os.path.join(work, "flipped")
    shutil.copytree(sp, bad)
    meta = os.path.join(bad, "_metadata")
    with open(meta, "r+b") as f:
        data = bytearray(f.read())
        i = len(data) // 3
        data[i] = ord("7") if data[i] != ord("7") else ord("3")
        f.seek(0)
        f.write(data)
    tail = os.path.join("flipped", "_metadata")
    one_line(validate(bad, *job_args("base", out)), "6. validate, _metadata changed", tail, "corrupt")
    refused_run(c, bad, "base", out, "6. run -s, _metadata changed", tail, "corrupt")

    task, name, size = keyed_file(sp)
    gone = os.path.join(work, "missing")
    shutil.copytree(sp, gone)
    os.unlink(os.path.join(gone, task, name))
    tail = os.path.join("missing", task, name)
    one_line(validate(gone, *job_args("base", out)), "6. validate, keyed file missing", tail, "missing")
    refused_run(c, gone, "base", out, "6. run -s, keyed file missing", tail, "missing")

    short = os.path.join(work, "short")
    shutil.copytree(sp, short)
    with open(os.path.join(short, task, name), "r+b") as f:
        f.truncate(size // 2)
    tail = os.path.join("short", task, name)
    one_line(validate(short, *job_args("base", out)), "6. validate, keyed file truncated", tail,
             str(size // 2), str(size))
    refused_run(c, short, "base", out, "6. run -s, keyed file truncated", tail, str(size // 2), str(size))

    empty = os.path.join(work, "empty")
    os.makedirs(empty)
    one_line(validate(empty, *job_args("base", out)), "6. validate, no _metadata", "empty", "no _metadata")
    refused_run(c, empty, "base", out, "6. run -s, no _metadata", "empty", "no _metadata")
    check(c.healthy(), "the job manager is down after the damaged savepoints")


def retained_checkpoint(c):
    out = os.path.join(c.dir, "out-retained")
    job = c.submit("-p", "2", *job_args("base", out))
    c.wait_checkpoints(job, 3)
    c.cli("cancel", job, check_rc=0)
    st = c.wait_state(job, {"CANCELED", "FAILED", "FINISHED"}, timeout=60)
    check(st["state"] == "CANCELED", f"job {job} ended {st['state']} after cancel")
    ckdir = os.path.join(c.conf["state.checkpoints.dir"], job)
    ids = sorted(int(m.group(1)) for m in (re.fullmatch(r"chk-(\d+)", d) for d in os.listdir(ckdir))
                 if m and os.path.isfile(os.path.join(ckdir, m.group(0), "_metadata")))
    check(ids, f"RETAIN_ON_CANCELLATION kept no complete checkpoint in {ckdir}: {os.listdir(ckdir)}")
    chk = os.path.join(ckdir, f"chk-{ids[-1]}")
    roots = [chk] + ([os.path.join(ckdir, "shared")] if os.path.isdir(os.path.join(ckdir, "shared")) else [])

    def sums():
        return {r: tree_checksum(r) for r in roots}

    before = sums()
    n_files = sum(len(s) for s in before.values())
    v = validate(chk, *job_args("base", out), p=3)
    check(v.returncode == 0, f"validate -s {chk}: exit {v.returncode}\n{v.stdout}{v.stderr}")
    print(f"7. retained {chk} ({n_files} files); validate -p 3: exit 0")

    job2 = c.resume(chk, *job_args("base", out), p=3)
    c.wait_checkpoints(job2, 1)
    for r, s in sums().items():
        d = tree_diff(before[r], s)
        check(not d, f"restoring changed the files it restored from in {r}: {d}")
    # The new job's first checkpoint must not need the old files: take them away and fail over.
    away = ckdir + ".away"
    os.rename(ckdir, away)
    attempt = c.job(job2)["attempt"]
    c.kill9(c.tms[0])
    c.start_taskmanager(index=0)
    end = c.wait_state(job2, {"FINISHED", "FAILED", "CANCELED"}, timeout=120)
    os.rename(away, ckdir)
    check(end["state"] == "FINISHED", f"job restored from {chk} ended {end['state']}: {end.get('message')}")
    check(end["attempt"] > attempt, f"job {job2} did not fail over (attempt {end['attempt']})")
    for r, s in sums().items():
        d = tree_diff(before[r], s)
        check(not d, f"the files restored from changed in {r}: {d}")
    # The cancelled job's sink keeps its fence files (.fence-<uuid>-<subtask>.a<attempt>): a
    # cancelled sink leaves its fence for a later attempt of its own job to revoke, and a job
    # resumed from its checkpoint never deletes the fence of another job (that job may still run:
    # connectors/README.md, "Attempt fencing"). Nothing else may stay hidden: no in-progress or
    # pending file, which would be data of an epoch no one commits.
    hidden = [f for f in os.listdir(out) if f.startswith(".")]
    fences = [f for f in hidden if re.fullmatch(r"\.fence-[0-9a-f-]+-\d+\.a\d+", f)]
    check(hidden == fences and len(fences) <= 2,
          f"files left behind besides the cancelled job's 2 fences at most: {sorted(hidden)}")
    seen = read_counts(out, committed(out))
    check_counts(seen, "count", total, "7. retained checkpoint, run -s, failover, finished")
    check_counts(seen, "extra", total, "7. retained checkpoint, run -s, failover, finished")
    print(f"7. resumed at -p 3 from {os.path.basename(chk)}, failed over without the old directory, "
          f"FINISHED: output exactly the oracle; the {n_files} files restored from are unchanged")


def test():
    conf = {"execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION"}
    with Cluster("sp-compat", tms=2, slots=2, checkpoints="500ms", savepoints=True, conf=conf) as c:
        out = os.path.join(c.dir, "out")
        sp, files0, at_sp = stop_part_way(c, out)

        validate_cases(sp, out)

        refused_run(c, sp, "removed", out, "3. run -s removed", "'extra'", "--allowNonRestoredState")
        refused_run(c, sp, "listkind", out, "3. run -s listkind", "'count'", "value state", "list state")
        refused_run(c, sp, "maxpar", out, "3. run -s maxpar", "128", "256")

        job = c.resume(sp, *job_args("removed", out), p=1, allow_non_restored=True)
        end = c.wait_state(job, {"FINISHED", "FAILED", "CANCELED"}, timeout=120)
        check(end["state"] == "FINISHED", f"removed -n ended {end['state']}: {end.get('message')}")
        files1 = committed(out) - files0
        seen = read_counts(out, files0 | files1)
        check_counts(seen, "count", total, "4. removed --allowNonRestoredState")
        check(not any(u == "extra" for u, _ in read_counts(out, files1)),
              "4. removed: lines of extra after the restore")
        print("4. removed --allowNonRestoredState -p 1: FINISHED, count exactly the oracle")

        job = c.resume(sp, *job_args("added", out), p=3)
        end = c.wait_state(job, {"FINISHED", "FAILED", "CANCELED"}, timeout=120)
        check(end["state"] == "FINISHED", f"added ended {end['state']}: {end.get('message')}")
        files2 = committed(out) - files0 - files1
        seen = read_counts(out, files0 | files2)
        check_counts(seen, "count", total, "5. added")
        check_counts(seen, "extra", total, "5. added")
        check_counts(seen, "audit", lambda k: total(k) - at_sp[k], "5. added (audit starts empty)")
        print("5. added -p 3: FINISHED, count and extra exactly the oracle, audit started empty")

        damaged_copies(c, sp, out)
        retained_checkpoint(c)
        if not os.path.isdir(sp):
            raise TestFailure(f"the savepoint {sp} vanished")


run_test(test)
