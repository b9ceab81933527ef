#!/usr/bin/env python3
"""The independent S3 client of tests/unit/test_storage_s3.c: boto3 (not weir) makes and removes
the test's bucket, lists what weir wrote, hashes objects and writes objects weir must read.

usage: s3_oracle.py ENDPOINT ACCESS SECRET COMMAND ARGS...
  mkbucket B          create bucket B
  rmbucket B          delete every object of B, then B
  ls B PREFIX         one line "<key> <size>" per object under PREFIX (every page)
  sha256 B KEY        the SHA-256 (hex) of the object's bytes
  put B KEY FILE      upload FILE as KEY (one PutObject)
  get B KEY           the object's bytes on stdout
Exit 0 on success; a boto3 error is printed and exits 1."""
import hashlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import venv_boto3  # noqa: E402

venv_boto3.import_boto3()
import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402


def main():
    endpoint, access, secret, cmd, *args = sys.argv[1:]
    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access,
                      aws_secret_access_key=secret, region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"},
                                    retries={"max_attempts": 3}))
    if cmd == "mkbucket":
        s3.create_bucket(Bucket=args[0])
    elif cmd == "rmbucket":
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args[0]):
            for o in page.get("Contents", []):
                s3.delete_object(Bucket=args[0], Key=o["Key"])
        s3.delete_bucket(Bucket=args[0])
    elif cmd == "ls":
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args[0], Prefix=args[1]):
            for o in page.get("Contents", []):
                print(o["Key"], o["Size"])
    elif cmd == "sha256":
        body = s3.get_object(Bucket=args[0], Key=args[1])["Body"].read()
        print(hashlib.sha256(body).hexdigest())
    elif cmd == "get":
        sys.stdout.buffer.write(s3.get_object(Bucket=args[0], Key=args[1])["Body"].read())
    elif cmd == "put":
        with open(args[2], "rb") as f:
            s3.put_object(Bucket=args[0], Key=args[1], Body=f.read())
    else:
        sys.exit(f"s3_oracle.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
