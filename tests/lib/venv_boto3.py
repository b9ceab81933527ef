"""boto3, the tests' S3 client independent of weir, from the project's venv.

scripts/python-deps.sh installs boto3 into ${WEIR_CACHE:-~/.cache/weir}/venv; the tests run with
whatever python3 is on PATH. `import_boto3()` makes `import boto3` work there: a boto3 already
importable is used as is, else the venv's site-packages is appended to sys.path, and if boto3 is
not in the venv either, scripts/python-deps.sh runs once first. Raises RuntimeError naming what
failed. Used by tests/lib/s3test.py and tests/storage/s3_oracle.py (the oracle of the C tests)."""

import glob
import os
import subprocess
import sys

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CACHE = os.environ.get("WEIR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "weir")
VENV = os.path.join(CACHE, "venv")


def _venv_site_packages():
    own = os.path.join(VENV, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")
    found = [own] if os.path.isdir(own) else sorted(glob.glob(os.path.join(VENV, "lib", "python3*", "site-packages")))
    return found[0] if found else None


def import_boto3():
    for attempt in range(2):
        try:
            import boto3  # noqa: F401
            return
        except ImportError:
            pass
        site = _venv_site_packages()
        if site and os.path.isdir(os.path.join(site, "boto3")):
            if site not in sys.path:
                sys.path.append(site)
            continue
        if attempt == 0:
            script = os.path.join(SRC, "scripts", "python-deps.sh")
            print(f"venv_boto3: boto3 not in {VENV}; running {script}", file=sys.stderr, flush=True)
            r = subprocess.run(["bash", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=600)
            if r.returncode != 0:
                raise RuntimeError(f"scripts/python-deps.sh failed (exit {r.returncode}):\n{r.stdout}")
    import boto3  # noqa: F401 (raises ImportError naming the module)
