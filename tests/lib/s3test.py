"""S3 test harness: a real S3 server (SeaweedFS, started by deploy/local/s3.sh) and an S3 client
weir did not write (boto3, the independent oracle), for the S3 integration, chaos and storage
tests and bench/s3_bench.py. Imported as plain `import s3test`, next to weirtest (ctest puts
tests/lib on PYTHONPATH).

    from s3test import S3Server

    with S3Server() as s3:                      # s3.sh start, on a free port, fresh directory
        bucket = s3.make_bucket()               # a random bucket, made with boto3
        cfg = s3.weir_config()                  # {"s3.endpoint": ..., "s3.access-key": ..., ...}
        ...                                     # run weir with state.checkpoints.dir = s3://bucket/...
        sizes = s3.list_sizes(bucket, "job/")   # {key: size} with boto3 (paginated)
        s3.copy_prefix(bucket, "sp1/", "copy/sp1/"); s3.delete_prefix(bucket, "sp1/")
        s3.stop(); time.sleep(5); s3.start()    # the same DIR and PORT: buckets and objects survive

Credentials are the static test ones of deploy/local/s3.sh (docs/s3.md): access key weir-test,
secret weir-test-secret, region us-east-1, path-style addressing.

boto3 comes from the venv of scripts/python-deps.sh (${WEIR_CACHE:-~/.cache/weir}/venv; it and its
dependencies are pure Python): importing this module puts that venv's site-packages on sys.path
after the running python's own (a boto3 already importable is used as is); if boto3 is missing, it
runs scripts/python-deps.sh once first.

Every wait is bounded: a test fails with a message instead of hanging.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import venv_boto3
from weirtest import SRC, TestFailure, check, free_port

S3_SH = os.path.join(SRC, "deploy", "local", "s3.sh")
ACCESS_KEY = "weir-test"
SECRET_KEY = "weir-test-secret"
REGION = "us-east-1"


try:
    venv_boto3.import_boto3()
except RuntimeError as e:
    raise TestFailure(str(e))
import boto3  # noqa: E402
import botocore.config  # noqa: E402
import botocore.exceptions  # noqa: E402


def process_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class S3Server:
    """One SeaweedFS S3 server started by deploy/local/s3.sh in a fresh directory on a free port,
    as a context manager. The directory is <$WEIR_TEST_TMP or /tmp>/weir-s3-<name>-XXXXXX. Leaving
    the block stops the server; on success the directory is removed; on an exception the end of
    weed.out is printed and the directory kept (its path printed). stop() / start() in between
    restart it on the same directory and port (buckets and objects survive); start_seconds is how
    long the last s3.sh start took."""

    def __init__(self, name=None, port=None):
        if name is None:
            name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"weir-s3-{name}-", dir=os.environ.get("WEIR_TEST_TMP"))
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.start_seconds = None
        self._client = None
        try:
            self.start()
        except BaseException:
            self._close(failed=True)
            raise

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self._close(failed=exc_type is not None)
        return False

    def _close(self, failed):
        if failed:
            print(f"--- log of S3 server {self.name} ({self.endpoint}) ---\n{self.log_tail()}", flush=True)
        try:
            self.stop()
        finally:
            if failed or os.environ.get("WEIR_KEEP_S3"):
                print(f"S3 server files kept in {self.dir}", flush=True)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def s3_sh(self, *args, timeout=180):
        return subprocess.run(["bash", S3_SH] + [str(a) for a in args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout)

    def start(self):
        t0 = time.time()
        r = self.s3_sh("start", self.dir, self.port)
        check(r.returncode == 0, f"s3.sh start {self.dir} {self.port} exited {r.returncode}:\n{r.stderr}")
        self.start_seconds = time.time() - t0

    def stop(self):
        r = self.s3_sh("stop", self.dir)
        check(r.returncode == 0, f"s3.sh stop {self.dir} exited {r.returncode}:\n{r.stderr}")

    def pid(self):
        """The server's pid, or None when it is not running."""
        try:
            with open(os.path.join(self.dir, "pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def log_tail(self, n=40):
        try:
            with open(os.path.join(self.dir, "weed.out"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no weed.out)"

    # --- weir's side ---

    def weir_config(self, **overrides):
        """The s3.* keys that point weir at this server (docs/configuration.md), as a dict for the
        job manager's / task manager's config (-D key=value or a config file)."""
        cfg = {
            "s3.endpoint": self.endpoint,
            "s3.access-key": ACCESS_KEY,
            "s3.secret-key": SECRET_KEY,
            "s3.region": REGION,
            "s3.path.style.access": "true",
        }
        cfg.update({k: str(v) for k, v in overrides.items()})
        return cfg

    def weir_env(self, **overrides):
        """weir_config() as WEIR_* environment variables (the CLI: `weir run -s s3://...`,
        `weir validate`): WEIR_ + upper case, '.' and '-' -> '_' (common/config.c)."""
        return {"WEIR_" + k.upper().replace(".", "_").replace("-", "_"): v
                for k, v in self.weir_config(**overrides).items()}

    # --- the oracle: boto3 ---

    def client(self):
        """A boto3 S3 client of this server (path-style, SigV4, a few quick retries, short
        timeouts: a stopped server fails a call within seconds)."""
        if self._client is None:
            self._client = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY, region_name=REGION,
                config=botocore.config.Config(
                    signature_version="s3v4", s3={"addressing_style": "path"},
                    connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}))
        return self._client

    def make_bucket(self, prefix="weir-test"):
        """Creates a bucket with a random name (boto3) and returns the name."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def list_sizes(self, bucket, prefix=""):
        """{key: size} of every object under prefix (ListObjectsV2, all pages)."""
        out = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                out[o["Key"]] = o["Size"]
        return out

    def list_common_prefixes(self, bucket, prefix=""):
        """The "directories" directly under prefix (delimiter "/")."""
        out = []
        for page in self.client().get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, Delimiter="/"):
            out += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        return out

    def get(self, bucket, key):
        return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()

    def put(self, bucket, key, data):
        self.client().put_object(Bucket=bucket, Key=key, Body=data)

    def exists(self, bucket, key):
        try:
            self.client().head_object(Bucket=bucket, Key=key)
            return True
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def copy_prefix(self, bucket, src, dst, dst_bucket=None):
        """Server-side copies every object under src to the same key with src replaced by dst
        (CopyObject; objects above 5 GiB are not expected here). Returns the number copied."""
        dst_bucket = dst_bucket or bucket
        n = 0
        for key in sorted(self.list_sizes(bucket, src)):
            self.client().copy_object(Bucket=dst_bucket, Key=dst + key[len(src):],
                                      CopySource={"Bucket": bucket, "Key": key})
            n += 1
        return n

    def delete_prefix(self, bucket, prefix):
        """Deletes every object under prefix (DeleteObjects in batches of 1000). Returns the count."""
        keys = sorted(self.list_sizes(bucket, prefix))
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i:i + 1000]]
            r = self.client().delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            check(not r.get("Errors"), f"DeleteObjects under s3://{bucket}/{prefix}: {r.get('Errors')}")
        return len(keys)


def savepoint_uri(result):
    """The location of the line "Savepoint completed. Path: <location>" that `weir savepoint` /
    `weir stop` print (result: a CompletedProcess or its stdout), which must be an s3:// URI."""
    out = result if isinstance(result, str) else result.stdout
    done = "Savepoint completed. Path: "
    paths = [ln[len(done):].strip() for ln in out.splitlines() if ln.startswith(done)]
    check(len(paths) == 1, f"expected one line {done!r}<location>, got:\n{out}")
    check(paths[0].startswith("s3://"), f"savepoint location {paths[0]!r} is not an s3:// URI")
    return paths[0]


def split_uri(u):
    """"s3://bucket/a/b" -> ("bucket", "a/b")."""
    check(u.startswith("s3://"), f"{u!r} is not an s3:// URI")
    bucket, _, key = u[len("s3://"):].partition("/")
    return bucket, key.strip("/")


def uri(bucket, *parts):
    """"s3://bucket/a/b" from parts (no empty segments)."""
    return "s3://" + "/".join([bucket] + [p.strip("/") for p in parts if p.strip("/")])
