"""Chaos on S3: the wordcount chaos run of 01_wordcount_chaos.py (tests/lib/chaoslib.py
wordcount_chaos: kill -9 of task managers and of the job manager once, SIGSTOP/SIGCONT zombies,
checkpoints every 500 ms) with state.checkpoints.dir and high-availability.storageDir on a real S3
server (SeaweedFS, deploy/local/s3.sh) instead of the local disk: every checkpoint, the HA records
of the restarted job manager and every restore go through S3. The job must FINISH and the
committed output must equal the oracle exactly (tr | sort | uniq -c). Afterwards the bucket is
listed with boto3 (not weir): the HA records and checkpoint objects are there, and the latest
completed checkpoint REST names is an s3:// location whose _metadata object exists."""

import os

from chaoslib import wordcount_chaos
from s3test import S3Server, uri
from weirtest import check, run_test


def test():
    with S3Server("chaos-s3") as s3:
        bucket = s3.make_bucket()
        s3cfg = s3.weir_config()
        conf = dict(s3cfg)
        conf["state.checkpoints.dir"] = uri(bucket, "checkpoints")
        conf["high-availability.storageDir"] = uri(bucket, "ha")
        job, _, cks = wordcount_chaos("chaos-s3", os.environ.get("WEIR_CHAOS_SIZE") == "large",
                                      conf=conf, tm_conf=s3cfg)
        objs = s3.list_sizes(bucket)
        ha = [k for k in objs if k.startswith("ha/")]
        ck = [k for k in objs if k.startswith("checkpoints/")]
        print(f"bucket {bucket} (boto3): {len(objs)} objects, {sum(objs.values())} bytes; "
              f"{len(ha)} under ha/, {len(ck)} under checkpoints/")
        check(ck, f"no checkpoint object in s3://{bucket}/checkpoints/ (boto3 listing): the checkpoints did not go to S3")
        check(ha, f"no HA record in s3://{bucket}/ha/ (boto3 listing): HA did not go to S3")
        latest = (cks.get("latest") or {}).get("completed") or {}
        path = latest.get("path", "")
        print(f"latest completed checkpoint: {latest.get('id')} at {path}")
        prefix = f"s3://{bucket}/"
        check(path.startswith(prefix + "checkpoints/"), f"the latest checkpoint is not on S3: {path!r}")
        meta = path[len(prefix):].rstrip("/") + "/_metadata"
        check(objs.get(meta, 0) > 0, f"boto3 finds no (or an empty) s3://{bucket}/{meta}, the latest checkpoint's _metadata")
        chks = sorted({k.split("/")[2] for k in ck if len(k.split("/")) > 3 and k.split("/")[2].startswith("chk-")})
        print(f"chk-* prefixes left under s3://{bucket}/checkpoints/{job['id']}/: {chks}")


run_test(test)
