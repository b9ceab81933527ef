#!/usr/bin/env python3
"""A few Kafka wire-protocol requests over a plain socket (no client library), for kafka.sh and the
tests:

  probe.py ready HOST:PORT [CLUSTER_ID]   exit 0 if a broker there answers Metadata, lists itself
                                          at HOST:PORT and (if given) has that cluster id; else 1
  probe.py api-versions HOST:PORT [--json]
                                          the broker's ApiVersions (v4) answer: the version range of
                                          every API key and its finalized features (e.g.
                                          transaction.version); as a table or as JSON

kafka.sh uses `ready` to know the broker it started is up (the cluster id check: another broker
that happens to listen on PORT is not taken for ours). docs/kafka.md records what `api-versions`
shows for the broker of kafka.sh.

Wire formats (https://kafka.apache.org/protocol, all integers big-endian):
  request  = INT32 size | header | body
  header v1 (non-flexible requests) = INT16 api_key | INT16 api_version | INT32 correlation_id
                                      | STRING client_id (INT16 length)
  header v2 (flexible requests)     = header v1 | tagged fields (UVARINT count, here 0)
  response = INT32 size | INT32 correlation_id | (header v1 of flexible responses: tagged fields;
             never for ApiVersions, whose response header is always v0) | body
Flexible versions write arrays and strings "compact" (UVARINT length + 1) and end every
structure with tagged fields.
"""

import json
import socket
import struct
import sys

API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 8: "OffsetCommit", 9: "OffsetFetch",
    10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup",
    15: "DescribeGroups", 16: "ListGroups", 17: "SaslHandshake", 18: "ApiVersions",
    19: "CreateTopics", 20: "DeleteTopics", 21: "DeleteRecords", 22: "InitProducerId",
    23: "OffsetForLeaderEpoch", 24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn",
    27: "WriteTxnMarkers", 28: "TxnOffsetCommit", 29: "DescribeAcls", 30: "CreateAcls",
    31: "DeleteAcls", 32: "DescribeConfigs", 33: "AlterConfigs", 36: "SaslAuthenticate",
    37: "CreatePartitions", 42: "DeleteGroups", 44: "IncrementalAlterConfigs",
    34: "AlterReplicaLogDirs", 35: "DescribeLogDirs", 38: "CreateDelegationToken",
    39: "RenewDelegationToken", 40: "ExpireDelegationToken", 41: "DescribeDelegationToken",
    43: "ElectLeaders", 45: "AlterPartitionReassignments", 46: "ListPartitionReassignments",
    47: "OffsetDelete", 48: "DescribeClientQuotas", 49: "AlterClientQuotas",
    50: "DescribeUserScramCredentials", 51: "AlterUserScramCredentials", 55: "DescribeQuorum",
    57: "UpdateFeatures", 60: "DescribeCluster", 61: "DescribeProducers", 64: "UnregisterBroker",
    65: "DescribeTransactions", 66: "ListTransactions", 68: "ConsumerGroupHeartbeat",
    69: "ConsumerGroupDescribe", 71: "GetTelemetrySubscriptions", 72: "PushTelemetry",
    74: "ListConfigResources", 75: "DescribeTopicPartitions", 76: "ShareGroupHeartbeat",
    77: "ShareGroupDescribe", 78: "ShareFetch", 79: "ShareAcknowledge", 80: "AddRaftVoter",
    81: "RemoveRaftVoter", 83: "InitializeShareGroupState", 84: "ReadShareGroupState",
    85: "WriteShareGroupState", 86: "DeleteShareGroupState", 87: "ReadShareGroupStateSummary",
    90: "DescribeShareGroupOffsets", 91: "AlterShareGroupOffsets", 92: "DeleteShareGroupOffsets",
}
CLIENT_ID = b"weir-probe"


class UnsupportedVersion(Exception):
    pass


class Reader:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise ValueError("truncated response")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self):
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7

    def string(self):  # STRING / NULLABLE_STRING
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def compact_string(self):  # COMPACT_STRING / COMPACT_NULLABLE_STRING
        n = self.uvarint() - 1
        return None if n < 0 else self.take(n).decode()

    def tagged_fields(self):
        """{tag: raw bytes}"""
        out = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            out[tag] = self.take(self.uvarint())
        return out


def uvarint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def compact_string(s):
    b = s.encode()
    return uvarint(len(b) + 1) + b


def request(sock, api_key, version, body, flexible, corr):
    header = struct.pack(">hhih", api_key, version, corr, len(CLIENT_ID)) + CLIENT_ID
    if flexible:
        header += uvarint(0)
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    r = Reader(recv_exact(sock, size))
    if r.i32() != corr:
        raise ValueError("correlation id mismatch")
    if flexible and api_key != 18:  # ApiVersions answers with response header v0 at any version
        r.tagged_fields()
    return r


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def api_versions(sock):
    """ApiVersions v4, or v3 where the broker has no v4 (both flexible requests: header v2; the
    response header stays v0): ({api_key: (min, max)}, {feature: (min_level, max_level)}
    finalized, {feature: (min, max)} supported). Below v4 a broker leaves out the supported
    features whose minimum is 0 (KIP-1022), hence v4 first."""
    body = compact_string("weir-probe") + compact_string("1") + uvarint(0)
    try:
        return parse_api_versions(request(sock, 18, 4, body, flexible=True, corr=1))
    except UnsupportedVersion:
        return parse_api_versions(request(sock, 18, 3, body, flexible=True, corr=3))


def parse_api_versions(r):
    err = r.i16()
    if err == 35:  # UNSUPPORTED_VERSION; the rest of the answer is in v0's layout
        raise UnsupportedVersion()
    if err != 0:
        raise ValueError(f"ApiVersions error code {err}")
    apis = {}
    for _ in range(r.uvarint() - 1):
        key, lo, hi = r.i16(), r.i16(), r.i16()
        r.tagged_fields()
        apis[key] = (lo, hi)
    r.i32()  # throttle_time_ms
    tags = r.tagged_fields()
    supported, finalized = {}, {}
    if 0 in tags:  # SupportedFeatures: [name, min_version, max_version]
        t = Reader(tags[0])
        for _ in range(t.uvarint() - 1):
            name, lo, hi = t.compact_string(), t.i16(), t.i16()
            t.tagged_fields()
            supported[name] = (lo, hi)
    if 2 in tags:  # FinalizedFeatures: [name, max_version_level, min_version_level]
        t = Reader(tags[2])
        for _ in range(t.uvarint() - 1):
            name, hi, lo = t.compact_string(), t.i16(), t.i16()
            t.tagged_fields()
            finalized[name] = (lo, hi)
    return apis, finalized, supported


def metadata(sock, apis):
    """Metadata without topics, at the highest non-flexible version 4..8 the broker takes:
    (brokers [(node_id, host, port)], cluster_id)."""
    lo, hi = apis.get(3, (0, -1))
    versions = [v for v in range(4, 9) if lo <= v <= hi]
    if not versions:
        raise ValueError(f"broker supports Metadata v{lo}..v{hi}, probe needs one of v4..v8")
    v = versions[-1]
    body = struct.pack(">i", 0) + b"\x01"  # topics: empty array; allow_auto_topic_creation
    if v >= 8:
        body += b"\x00\x00"  # include_cluster/topic_authorized_operations
    r = request(sock, 3, v, body, flexible=False, corr=2)
    r.i32()  # throttle_time_ms
    brokers = []
    for _ in range(r.i32()):
        node, host, port = r.i32(), r.string(), r.i32()
        r.string()  # rack
        brokers.append((node, host, port))
    return brokers, r.string()


def connect(hostport, timeout):
    host, port = hostport.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout), host, int(port)


def main(argv):
    if len(argv) < 3 or argv[1] not in ("ready", "api-versions"):
        print(__doc__, file=sys.stderr)
        return 2
    cmd, hostport = argv[1], argv[2]
    if cmd == "ready":
        want_cluster = argv[3] if len(argv) > 3 else None
        try:
            sock, host, port = connect(hostport, 2.0)
            with sock:
                apis, _, _ = api_versions(sock)
                brokers, cluster = metadata(sock, apis)
        except (OSError, ValueError) as e:
            print(f"probe: {hostport}: {e}", file=sys.stderr)
            return 1
        if not any(h == host and p == port for _, h, p in brokers):
            print(f"probe: {hostport}: metadata lists brokers {brokers}, not itself", file=sys.stderr)
            return 1
        if want_cluster is not None and cluster != want_cluster:
            print(f"probe: {hostport}: cluster id {cluster}, expected {want_cluster}", file=sys.stderr)
            return 1
        return 0
    sock, _, _ = connect(hostport, 10.0)
    with sock:
        apis, finalized, supported = api_versions(sock)
    if "--json" in argv[3:]:
        print(json.dumps({"apis": {str(k): list(v) for k, v in sorted(apis.items())},
                          "finalized_features": {k: list(v) for k, v in sorted(finalized.items())},
                          "supported_features": {k: list(v) for k, v in sorted(supported.items())}}))
        return 0
    print(f"{'key':>4} {'api':<28} min max")
    for k, (lo, hi) in sorted(apis.items()):
        print(f"{k:>4} {API_NAMES.get(k, '?'):<28} {lo:>3} {hi:>3}")
    print("finalized features (min level, max level):")
    for name, (lo, hi) in sorted(finalized.items()):
        print(f"  {name} {lo} {hi}")
    print("supported features (min, max):")
    for name, (lo, hi) in sorted(supported.items()):
        print(f"  {name} {lo} {hi}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
