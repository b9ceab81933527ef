"""Integration (issue 7, must show (a)): the identity of the file sink's files. With checkpointing
on, two different wordcount jobs (different texts) write into ONE output directory at the same
time; then the first job is submitted again (a new job id) into the same directory. Checked against
oracles weir did not write (tr | sort | uniq -c per input text; the sink's uuid computed here with
hashlib from the job id and the sink node, as connectors/README.md specifies):
- the directory as a whole, whatever the file names, holds exactly the three runs' output: for
  every word the multiset of counts is 1..nA (first run) + 1..nB + 1..nA (resubmission);
- each run's committed files are exactly the names `part-<its uuid>-<subtask>-<k>` and hold its
  output exactly once (per word the counts 1..n of its own text);
- no committed file of the first two runs changed or vanished because of the resubmission;
- nothing hidden is left behind (no in-progress, pending or fence file after a clean finish)."""

import hashlib
import os
import re
from collections import Counter, defaultdict

from weirtest import EXAMPLES, Cluster, check, gen_text, oracle_counts, run_test

N_A = 60_000
N_B = 45_000
RATE = 1500  # lines/s over all source subtasks: each run spans several checkpoints
P = 2


def sink_uuid(jobid, node):
    """The file sink's uuid (connectors/README.md): SHA-256 of
    "weir-file-sink:<job id>:uid:<uid>" (or ":node:<node id>" without a uid), first 16 bytes,
    version 8 and RFC 9562 variant bits, printed 8-4-4-4-12."""
    ident = f"uid:{node['uid']}" if node.get("uid") else f"node:{node['id']}"
    h = bytearray(hashlib.sha256(f"weir-file-sink:{jobid}:{ident}".encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x80
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def committed(out):
    """{name: (size, sha256)} of every visible file of the directory."""
    res = {}
    for name in os.listdir(out):
        if name.startswith("."):
            continue
        with open(os.path.join(out, name), "rb") as f:
            data = f.read()
        res[name] = (len(data), hashlib.sha256(data).hexdigest())
    return res


def counts_of(out, names):
    """word -> list of counts over the lines of the given files."""
    seen = defaultdict(list)
    for name in names:
        with open(os.path.join(out, name), encoding="utf-8") as f:
            for line in f:
                word, n = line.rstrip("\n").rsplit(" ", 1)
                seen[word].append(int(n))
    return seen


def check_exact(what, seen, oracles):
    """Per word, the multiset of counts equals the union of 1..n over the oracles."""
    want = defaultdict(Counter)
    for o in oracles:
        for w, n in o.items():
            want[w].update(range(1, n + 1))
    got_words, want_words = set(seen), set(want)
    check(got_words == want_words,
          f"{what}: word sets differ: {len(got_words - want_words)} unexpected, "
          f"{len(want_words - got_words)} missing, e.g. {sorted(got_words ^ want_words)[:5]}")
    for w in want:
        got = Counter(seen[w])
        if got != want[w]:
            extra, lost = got - want[w], want[w] - got
            raise AssertionError(f"{what}: word {w!r}: duplicated counts {sorted(extra)[:8]}, "
                                 f"lost counts {sorted(lost)[:8]}")
    return sum(len(v) for v in seen.values())


def run_job(c, text, out):
    return c.submit("-p", str(P), os.path.join(EXAMPLES, "wordcount.so"), "--input", text,
                    "--output", out, "--rate", str(RATE))


def finish(c, jobid, what):
    job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=300)
    check(job["state"] == "FINISHED", f"{what} ({jobid}) ended {job['state']}: {job.get('message')}")
    ck = c.checkpoints(jobid)["counts"]["completed"]
    check(ck >= 3, f"{what}: only {ck} completed checkpoints (the run must span several)")
    return job


def own_files(c, jobid, out_names, what):
    """The committed names of one run: exactly part-<uuid>-<s>-<k>, s < P."""
    graph = c.job(jobid)["graph"]
    sinks = [n for n in graph["nodes"] if n["kind"] == "sink_file"]
    check(len(sinks) == 1, f"{what}: {len(sinks)} file sinks in the graph")
    uuid = sink_uuid(jobid, sinks[0])
    pat = re.compile(r"part-" + re.escape(uuid) + r"-(\d+)-(\d+)$")
    names = sorted(n for n in out_names if pat.match(n))
    check(names, f"{what}: no committed file named part-{uuid}-<subtask>-<k>")
    subtasks = {int(pat.match(n).group(1)) for n in names}
    check(subtasks <= set(range(P)), f"{what}: subtasks {sorted(subtasks)} in names")
    return uuid, names


def test():
    with Cluster("sink-identity", tms=2, slots=2, checkpoints="300ms") as c:
        text_a = os.path.join(c.dir, "a.txt")
        text_b = os.path.join(c.dir, "b.txt")
        gen_text(text_a, N_A, seed=61)
        gen_text(text_b, N_B, seed=62)
        oracle_a, oracle_b = oracle_counts(text_a), oracle_counts(text_b)
        check(sum(oracle_a.values()) == N_A and sum(oracle_b.values()) == N_B, "oracle word totals")
        out = os.path.join(c.dir, "out")

        # Phase 1: two different jobs into one directory at the same time.
        job_a = run_job(c, text_a, out)
        job_b = run_job(c, text_b, out)
        finish(c, job_a, "job A")
        finish(c, job_b, "job B")
        after1 = committed(out)
        n1 = check_exact("phase 1 (A + B, whole directory)", counts_of(out, sorted(after1)),
                         [oracle_a, oracle_b])
        uuid_a, names_a = own_files(c, job_a, after1, "job A")
        uuid_b, names_b = own_files(c, job_b, after1, "job B")
        check(uuid_a != uuid_b, "jobs A and B got the same sink uuid")
        check(set(names_a) | set(names_b) == set(after1),
              f"files of neither job: {sorted(set(after1) - set(names_a) - set(names_b))[:5]}")
        check_exact("job A's own files", counts_of(out, names_a), [oracle_a])
        check_exact("job B's own files", counts_of(out, names_b), [oracle_b])
        print(f"phase 1: {len(names_a)} files of A (uuid {uuid_a}), {len(names_b)} of B "
              f"(uuid {uuid_b}), {n1} lines, each job exactly once")

        # Phase 2: job A again (a new job id) into the same directory.
        job_a2 = run_job(c, text_a, out)
        check(job_a2 != job_a, "the resubmission got the same job id")
        finish(c, job_a2, "job A resubmitted")
        after2 = committed(out)
        changed = [n for n in after1 if after2.get(n) != after1[n]]
        check(not changed, f"{len(changed)} committed files of A or B changed or vanished after the "
                           f"resubmission, e.g. {changed[:5]}")
        uuid_a2, names_a2 = own_files(c, job_a2, after2, "job A resubmitted")
        check(uuid_a2 not in (uuid_a, uuid_b), "the resubmission reused a sink uuid")
        check(set(after2) == set(after1) | set(names_a2),
              f"files of no job: {sorted(set(after2) - set(after1) - set(names_a2))[:5]}")
        check_exact("job A resubmitted, own files", counts_of(out, names_a2), [oracle_a])
        n2 = check_exact("phase 2 (A + B + A again, whole directory)",
                         counts_of(out, sorted(after2)), [oracle_a, oracle_b, oracle_a])
        hidden = sorted(n for n in os.listdir(out) if n.startswith("."))
        check(not hidden, f"hidden files left behind: {hidden[:8]}")
        print(f"phase 2: {len(names_a2)} files of A again (uuid {uuid_a2}); the {len(after1)} files "
              f"of phase 1 unchanged; {n2} lines in the directory, every run exactly once")


run_test(test)
