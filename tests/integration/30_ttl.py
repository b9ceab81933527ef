"""State time to live end to end (issue 12 item 6, "Must show": expired state is never returned
and the RocksDB size shrinks after expiry; docs/event-time.md "State time to live",
state/README.md "Time to live (TTL)").

tests/plugins/ttl.so at -p 1 on one task manager with checkpoints every 500 ms: a keyed process
function writes value, list, map and reducing state with a 3 s time to live (ON_CREATE_AND_WRITE)
for 2,000 keys (about 2 MB of incompressible payload), reads each key back at once ("W") and
about a second later ("E"), lets 9 s pass (records of another key, no state access), then reads
every key again ("L") and writes a new value after the expiry. It emits exactly what it read and
the age of the key's write (processing time), through the exactly-once file sink.

The reference (Python, from the plugin's documented payload formula, not from weir's output):
- W and E reads younger than the TTL (minus a 300 ms margin for the clocks of the function and
  of the backend) return exactly what was written (value, both list elements in order, both map
  entries, the reducing sum); reads older than the TTL plus the margin return nothing at all
  (an expired value is never returned); every L read is that old and returns nothing, and the
  value written after the expiry reads back;
- size: the SST files of the task manager's live RocksDB instance (the subtask's state
  directory <tm working dir>/.../state; local checkpoint copies are not counted), sampled every
  100 ms: after reaching a peak of at least the payload size, they shrink below a tenth of the
  peak before the L phase can have started (its first record is due (2*keys + gap) / rate s
  after the submission), i.e. without any read or write of the expired keys: the backend's
  background TTL cleanup compacted the expired entries away (without it the SSTs keep them
  until RocksDB happens to compact)."""

import os
import time

from weirtest import TEST_PLUGINS, Cluster, check, read_part_lines, run_test

KEYS = 2000
TTL = 3000
GAP_MS = 9000
RATE = 2000
PAYLOAD = 200
MARGIN = 300
M64 = (1 << 64) - 1


def payload(j, s):
    x = (j * 1000003 + s * 7919 + 1) & M64
    out = []
    for _ in range(PAYLOAD):
        x = (x * 6364136223846793005 + 1442695040888963407) & M64
        out.append(chr(97 + (x >> 33) % 26))
    return "".join(out)


def present(j):
    return [f"v={payload(j, 0)}", f"l={payload(j, 1)},{payload(j, 2)}",
            f"m=a:{payload(j, 3)},b:{payload(j, 4)}", f"r={2 * (j + 1)}"]


ABSENT = ["v=-", "l=-", "m=-", "r=-"]


def read_output(out):
    return read_part_lines(out)


def sst_bytes(tm_dir):
    """Bytes of the SST files of the live RocksDB instances under a task manager's directory."""
    total = 0
    for root, _dirs, files in os.walk(tm_dir):
        if os.path.basename(root) != "state" or "CURRENT" not in files:
            continue
        for f in files:
            if f.endswith(".sst"):
                try:
                    total += os.path.getsize(os.path.join(root, f))
                except FileNotFoundError:  # compacted away meanwhile
                    pass
    return total


def check_reads(lines):
    by_tag = {"W": {}, "E": {}, "L": {}}
    for line in lines:
        f = line.split(" ")
        check(f[0] in by_tag and len(f) == (8 if f[0] == "L" else 7),
              f"malformed line {line[:120]}")
        j = int(f[1][1:])
        check(f[1] == f"k{j}" and 0 <= j < KEYS and j not in by_tag[f[0]],
              f"unexpected or repeated key in {line[:120]}")
        by_tag[f[0]][j] = (int(f[2]), f[3:7], f[7:])
    for tag in by_tag:
        check(len(by_tag[tag]) == KEYS, f"{len(by_tag[tag])} {tag} lines, expected {KEYS}")
    counts = {"present": 0, "absent": 0, "boundary": 0}
    for tag in ("W", "E", "L"):
        for j, (age, got, again) in by_tag[tag].items():
            check(age >= 0, f"{tag} k{j}: no write time")
            if tag == "W":
                check(age < TTL - MARGIN, f"W k{j}: read back {age} ms after the write")
            if tag == "L":
                check(age >= TTL + MARGIN, f"L k{j}: read only {age} ms after the write: raise "
                                           f"GAP_MS")
                check(again == ["again=again"], f"L k{j}: after the expiry a new value reads "
                                                f"back as {again}")
            if age < TTL - MARGIN:
                check(got == present(j), f"{tag} k{j}: {age} ms after the write read "
                                         f"{[g[:20] for g in got]}, not what was written")
                counts["present"] += 1
            elif age >= TTL + MARGIN:
                check(got == ABSENT, f"{tag} k{j}: {age} ms after the write (time to live {TTL}) "
                                     f"an expired value was returned: {[g[:20] for g in got]}")
                counts["absent"] += 1
            else:
                counts["boundary"] += 1
    check(counts["present"] >= KEYS + KEYS // 2,
          f"only {counts['present']} reads within the time to live: the machine is too slow "
          f"for TTL {TTL} ms")
    return counts


def test():
    with Cluster("ttl", tms=1, slots=1, checkpoints="500ms") as c:
        out = os.path.join(c.dir, "out")
        tm_dir = os.path.join(c.dir, "tm-0")
        submitted = time.time()
        jobid = c.submit("-p", "1", os.path.join(TEST_PLUGINS, "ttl.so"), "--output", out,
                         "--keys", str(KEYS), "--ttl", str(TTL), "--gap-ms", str(GAP_MS),
                         "--rate", str(RATE), "--payload", str(PAYLOAD))
        l_phase = submitted + (2 * KEYS + GAP_MS * RATE / 1000) / RATE
        samples = []
        deadline = time.time() + 120
        while time.time() < deadline:
            samples.append((time.time(), sst_bytes(tm_dir)))
            if c.job(jobid)["state"] in ("FINISHED", "FAILED", "CANCELED"):
                break
            time.sleep(0.1)
        job = c.wait_state(jobid, {"FINISHED", "FAILED", "CANCELED"}, timeout=60)
        check(job["state"] == "FINISHED", f"job ended {job['state']}: {job.get('message')}")
        counts = check_reads(read_output(out))
        print(f"reads: {counts['present']} within the time to live exactly as written, "
              f"{counts['absent']} after it all absent ({counts['boundary']} within "
              f"{MARGIN} ms of the expiry not checked); a new value after the expiry reads back")

        pre = [s for s in samples if s[0] < l_phase]  # no read of an expired key yet
        peak_at, peak = max(pre, key=lambda s: s[1])
        check(peak >= KEYS * PAYLOAD * 5 // 2,
              f"the state never reached the disk: peak {peak} bytes of SST files")
        low = min([b for t, b in pre if t > peak_at] or [peak])
        check(low < peak // 10,
              f"RocksDB size did not shrink after the expiry: peak {peak} bytes, lowest "
              f"{low} bytes before the expired keys were read again "
              f"(every second: {[b for _, b in pre][::10]})")
        shrunk_at = next(t for t, b in samples if t > peak_at and b == low)
        print(f"RocksDB SST files of the subtask: peak {peak} bytes, {low} bytes "
              f"{shrunk_at - submitted:.1f} s after the submission, without a read of the "
              f"expired keys (L phase from {l_phase - submitted:.1f} s)")


if __name__ == "__main__":
    run_test(test)
