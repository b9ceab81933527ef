#!/usr/bin/env python3
"""The job manager runs no user code and holds no task-manager code (docs/architecture.md).

Checked on the built binary: none of the global symbols defined by the data-plane, task-runtime,
state or connector modules, nor by the plugin loader, is in weir-jobmanager; it imports no dlopen
and needs no libdl, RocksDB or libweir.so. The forbidden symbol list is read from the built
archives themselves (nm), so a new module function is covered without editing this test.
Allowed, and checked to be there: the checkpoint storage module (weir_storage: POSIX and S3,
which brings libcurl), through which every checkpoint, savepoint and HA file goes."""
import glob
import os
import subprocess
import sys

build = os.environ["WEIR_BUILD"]
jm = os.path.join(build, "bin", "weir-jobmanager")


def nm(*args):
    return subprocess.run(["nm", *args], text=True, capture_output=True, check=True).stdout


def archive(name):
    hits = glob.glob(os.path.join(build, "**", f"lib{name}.a"), recursive=True)
    if len(hits) != 1:
        sys.exit(f"FAIL: cannot find lib{name}.a under {build}")
    return hits[0]


forbidden = {}
for mod in ["weir_dataplane", "weir_task", "weir_state", "weir_connectors",
            "weir_connectors_common", "weir_connector_datagen", "weir_connector_file",
            "weir_connector_print", "weir_taskmanager"]:
    for line in nm("--defined-only", "-g", archive(mod)).splitlines():
        parts = line.split()
        if len(parts) == 3:
            forbidden[parts[2]] = mod
member = None
for line in nm("-A", "--defined-only", "-g", archive("weir_graph")).splitlines():
    path, _, rest = line.partition(": ")
    parts = rest.split()
    if path.endswith("plugin.c.o") and len(parts) == 3:
        forbidden[parts[2]] = "weir_graph (plugin loading)"
if len(forbidden) < 50:
    sys.exit(f"FAIL: only {len(forbidden)} module symbols found (archives not built?)")

jm_syms = {l.split()[-1] for l in nm(jm).splitlines() if l.split()}
bad = sorted(s for s in jm_syms if s in forbidden)
for s in bad:
    print(f"FAIL: weir-jobmanager contains {s} from {forbidden[s]}")
undef = {l.split()[-1].split("@")[0] for l in nm("-u", jm).splitlines() if l.split()}
for s in sorted(undef & {"dlopen", "dlsym", "dlmopen"}):
    print(f"FAIL: weir-jobmanager imports {s}")
    bad.append(s)
needed = subprocess.run(["readelf", "-d", jm], text=True, capture_output=True,
                        check=True).stdout
for lib in ["libdl.so", "librocksdb", "libweir.so"]:
    if lib in needed:
        print(f"FAIL: weir-jobmanager needs {lib}")
        bad.append(lib)
if "weir_storage_open" not in jm_syms:
    print("FAIL: weir-jobmanager does not contain weir_storage_open: its checkpoint, savepoint and "
          "HA files must go through storage/storage.h")
    bad.append("weir_storage_open")
print(f"checked {len(jm_syms)} symbols of weir-jobmanager against {len(forbidden)} module symbols")
sys.exit(1 if bad else 0)
