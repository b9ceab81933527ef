"""A savepoint on S3, copied by another tool and resumed from the copy at another parallelism:
wordcount (throttled file source -> split -> key_by -> count -> the exactly-once file sink) with
checkpoints on a real S3 server (SeaweedFS, deploy/local/s3.sh):

  run 1 at -p 2  -> `weir stop --savepointPath s3://B/sp1`   (the savepoint; job FINISHED)
  every object under sp1/ copied with boto3 (server-side CopyObject) to copy/sp1/, then the
  originals deleted with boto3 (DeleteObjects): only the copy exists
  `weir validate -s s3://B/copy/sp1/<savepoint> -p 3` passes
  run 2 at -p 3 from s3://B/copy/sp1/<savepoint> -> FINISHED

Checks, against oracles weir did not write (boto3 for the bucket, tr | sort | uniq -c for the
words): the savepoint is under s3://B/sp1/ with a _metadata object (boto3); after run 1 the
committed output is a strict prefix (every word's counts 1..k, no gap, no duplicate); after the
copy boto3 lists nothing under sp1/; run 2 has parallelism 3 (REST); at the end the committed
output equals the oracle exactly."""

import os

from s3test import S3Server, savepoint_uri, split_uri, uri
from weirtest import (EXAMPLES, Cluster, check, check_word_prefix, check_wordcount_output, gen_text,
                      oracle_counts, read_word_updates, run_test)

N_WORDS = 60_000  # about 6,900 lines
RATE = 400  # lines per second over all source subtasks: about 17 s of input in all
PLUGIN = os.path.join(EXAMPLES, "wordcount.so")


def test():
    with S3Server("s3-savepoint") as s3:
        bucket = s3.make_bucket()
        s3cfg = s3.weir_config()
        conf = dict(s3cfg)
        conf["state.checkpoints.dir"] = uri(bucket, "checkpoints")
        with Cluster("s3-savepoint", tms=2, slots=2, checkpoints="1s", conf=conf, tm_conf=s3cfg) as c:
            text = os.path.join(c.dir, "input.txt")
            gen_text(text, N_WORDS, seed=363)
            oracle = oracle_counts(text)
            out = os.path.join(c.dir, "out")
            args = [PLUGIN, "--input", text, "--output", out, "--rate", str(RATE)]
            cli_env = s3.weir_env()

            job1 = c.submit("-p", "2", *args)
            c.wait_checkpoints(job1, 2)
            r = c.cli("stop", "--savepointPath", uri(bucket, "sp1"), job1, check_rc=0, env=cli_env)
            sp = savepoint_uri(r)
            check(c.job(job1)["state"] == "FINISHED", f"job {job1} is {c.job(job1)['state']} after weir stop")
            b, key = split_uri(sp)
            check(b == bucket and key.startswith("sp1/"), f"savepoint {sp} is not under s3://{bucket}/sp1/")
            objs = s3.list_sizes(bucket, "sp1/")
            check(objs.get(key + "/_metadata", 0) > 0, f"boto3: no _metadata under {sp}: {sorted(objs)}")
            print(f"savepoint {sp}: {len(objs)} objects, {sum(objs.values())} bytes (boto3)")
            seen, lines = read_word_updates(out)
            n = check_word_prefix(seen, oracle, "lines")
            check(n == lines and 0 < lines < N_WORDS, f"run 1 stopped with {lines} committed lines of "
                                                      f"{N_WORDS}: wanted a strict prefix")
            print(f"run 1 (-p 2) stopped: {lines} of {N_WORDS} lines committed")

            copied = s3.copy_prefix(bucket, "sp1/", "copy/sp1/")
            deleted = s3.delete_prefix(bucket, "sp1/")
            check(copied == len(objs) and deleted == len(objs), f"copied {copied}, deleted {deleted} of {len(objs)}")
            check(not s3.list_sizes(bucket, "sp1/"), "boto3 still lists objects under sp1/ after deleting them")
            copy_sizes = s3.list_sizes(bucket, "copy/sp1/")
            check(sorted(v for v in copy_sizes.values()) == sorted(objs.values()),
                  "the copy's object sizes differ from the original's")
            moved = uri(bucket, "copy", key)
            print(f"copied {copied} objects to {moved} with boto3 and deleted the originals")

            v = c.cli("validate", "-s", moved, "-p", "3", *args, env=cli_env)
            check(v.returncode == 0, f"weir validate -s {moved} -p 3 exited {v.returncode}:\n{v.stdout}{v.stderr}")
            print(f"validate of the copy:\n{v.stdout.rstrip()}")

            r = c.cli(*c.run_args(moved, *args, p=3), check_rc=0, env=cli_env)
            job2 = next((ln.split()[-1] for ln in r.stdout.splitlines()
                         if ln.startswith("Job has been submitted with JobID ")), None)
            check(job2, f"no JobID line in: {r.stdout}")
            c.wait_state(job2, {"RUNNING", "FINISHED"}, timeout=60)
            ps = {vx["name"]: vx["parallelism"] for vx in c.job(job2)["vertices"]}
            check(all(p == 3 for p in ps.values()), f"run 2: parallelism {ps}, asked for 3")
            restored = c.checkpoints(job2).get("latest", {}).get("restored") or {}
            check(restored.get("path", "").rstrip("/") == moved.rstrip("/"),
                  f"run 2 restored from {restored.get('path')!r}, not the copy {moved}")
            c.wait_finished(job2, timeout=300, what="run 2")
            lines = check_wordcount_output(out, oracle)
            print(f"{lines} lines over 2 runs (-p 2 then -p 3 from the boto3 copy), {len(oracle)} words: exactly the oracle")


run_test(test)
