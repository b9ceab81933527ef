#!/usr/bin/env python3
"""libweir.so exports exactly the functions declared in include/weir/.

The declared set comes from the compiler (gcc -aux-info lists every prototype it saw, with the
file that declared it), the exported set from `nm -D --defined-only`. A symbol exported but not
declared is an internal a plugin could bind to (the test fails); a function declared but not
exported is an API promise libweir.so does not keep (the test fails too)."""
import os
import re
import subprocess
import sys
import tempfile

build = os.environ["WEIR_BUILD"]
src = os.environ["WEIR_SRC"]
inc = os.path.join(src, "include")
lib = os.path.join(build, "lib", "libweir.so")


def declared():
    out = set()
    with tempfile.TemporaryDirectory() as tmp:
        for h in sorted(os.listdir(os.path.join(inc, "weir"))):
            if not h.endswith(".h"):
                continue
            aux = os.path.join(tmp, h + ".aux")
            subprocess.run(["gcc", "-fsyntax-only", "-x", "c", "-I", inc,
                            *subprocess.run(["pkg-config", "--cflags", "msgpack"], text=True,
                                            capture_output=True).stdout.split(),
                            "-aux-info", aux, os.path.join(inc, "weir", h)], check=True)
            for line in open(aux):
                m = re.match(r"/\* (\S+):\d+:\w+ \*/ (.*)", line)
                if not m or not os.path.abspath(m.group(1)).startswith(os.path.join(inc, "weir")):
                    continue
                name = re.search(r"(\w+) \(", m.group(2))
                if name:
                    out.add(name.group(1))
    return out


def exported():
    nm = subprocess.run(["nm", "-D", "--defined-only", lib], text=True, capture_output=True,
                        check=True).stdout
    return {l.split()[-1] for l in nm.splitlines() if l.split() and l.split()[-2] in "TtWiDdBbRr"}


decl, exp = declared(), exported()
if len(decl) < 40:
    sys.exit(f"FAIL: only {len(decl)} declarations found in include/weir/ (parser broken?)")
extra = sorted(exp - decl)
missing = sorted(decl - exp)
for s in extra:
    print(f"FAIL: libweir.so exports {s}, which include/weir/ does not declare")
for s in missing:
    print(f"FAIL: include/weir/ declares {s}, which libweir.so does not export")
print(f"{len(decl)} declared, {len(exp)} exported")
sys.exit(1 if extra or missing else 0)
