"""The client side of every check, run as a script inside a cluster namespace (pod or node).

``python3 probe.py SPEC_JSON`` runs a list of requests and prints one JSON list of outcomes, so
one process start (expensive in the lab VM) carries many requests. Each request opens a new
connection (no keep-alive: a reused connection would hide a rule change, as upstream's
httpGetNoConnectionPoolTimeout notes). An outcome is ``{"ok": body}`` or ``{"error": kind}``
with kind one of ``refused`` (ECONNREFUSED / ICMP unreachable: kube-proxy's REJECT),
``timeout`` (no answer: a DROP or nothing there), ``reset``, ``http-<code>``, ``other:<text>``.

Spec: {"requests": [{"proto": "http"|"udp"|"tcp"|"dns", "ip", "port", "path"?, "payload"?,
"name"? (dns: the name to look up, type A), "count"?, "timeout"?, "src_port"?}],
"interval"?: seconds between requests, "for_seconds"?: repeat the whole list until that many
seconds passed, "stream"?: print each outcome at once as its own JSON line (with "t", seconds
since the start) instead of one list at the end}. A dns answer is "TYPE data" per record.
Standard library only: it runs with whatever Python the namespace's host has.
"""

import errno
import json
import socket
import struct
import sys
import time


def _error(exc):
    if isinstance(exc, socket.timeout):
        return "timeout"
    code = getattr(exc, "errno", None)
    if code in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "refused" if code == errno.ECONNREFUSED else "unreachable"
    if code == errno.ECONNRESET:
        return "reset"
    return "other:%s" % exc


def _bind(sock, req):
    if req.get("src_port"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", int(req["src_port"])))


def http(req):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(req.get("timeout", 2.0))
    try:
        _bind(sock, req)
        sock.connect((req["ip"], int(req["port"])))
        sock.sendall(("GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (req.get("path", "/hostname"), req["ip"])).encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        return {"error": _error(exc)}
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ")[1:2]
    if status != [b"200"]:
        return {"error": "http-%s" % (status[0].decode() if status else "none"), "body": body.decode(errors="replace")}
    return {"ok": body.decode(errors="replace").strip()}


def tcp(req):
    """A bare connect: what agnhost connect does (upstream's REFUSED check)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(req.get("timeout", 2.0))
    try:
        _bind(sock, req)
        sock.connect((req["ip"], int(req["port"])))
        return {"ok": "connected"}
    except OSError as exc:
        return {"error": _error(exc)}
    finally:
        sock.close()


def udp(req):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(req.get("timeout", 2.0))
    try:
        _bind(sock, req)
        sock.connect((req["ip"], int(req["port"])))
        if "raw" in req:
            sock.send(req["raw"])
            return {"raw": sock.recv(4096)}
        sock.send((req.get("payload", "hostname") + "\n").encode())
        return {"ok": sock.recv(4096).decode(errors="replace").strip()}
    except OSError as exc:
        return {"error": _error(exc)}
    finally:
        sock.close()


def _dns_name(data, offset):
    """A (possibly compressed) name at ``offset``: (dotted name, offset after it)."""
    labels, end = [], None
    while True:
        length = data[offset]
        if length & 0xC0 == 0xC0:
            end = end or offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length == 0:
            return ".".join(labels), end or offset + 1
        labels.append(data[offset + 1:offset + 1 + length].decode())
        offset += 1 + length


def dns(req):
    """One A query for req["name"] over UDP: the answer records, or the rcode as the error."""
    ident = 0x4E45
    question = b"".join(bytes([len(p)]) + p.encode() for p in req["name"].rstrip(".").split(".")) + b"\0"
    query = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    got = udp(dict(req, payload=None, raw=query))
    if "error" in got:
        return got
    data = got["raw"]
    _, flags, _, ancount, _, _ = struct.unpack(">HHHHHH", data[:12])
    if flags & 0xF:
        return {"error": "rcode-%d" % (flags & 0xF)}
    offset = 12 + len(question) + 4
    records = []
    for _ in range(ancount):
        _, offset = _dns_name(data, offset)
        rtype, _, _, rdlen = struct.unpack(">HHIH", data[offset:offset + 10])
        offset += 10
        if rtype == 1:
            records.append("A " + socket.inet_ntoa(data[offset:offset + 4]))
        elif rtype == 5:
            records.append("CNAME " + _dns_name(data, offset)[0])
        offset += rdlen
    return {"ok": "\n".join(records)}


def main():
    spec = json.loads(sys.argv[1])
    kinds = {"http": http, "tcp": tcp, "udp": udp, "dns": dns}
    out = []
    interval = float(spec.get("interval", 0))
    start = time.monotonic()
    deadline = start + float(spec.get("for_seconds", 0))
    while True:
        for req in spec["requests"]:
            for _ in range(int(req.get("count", 1))):
                got = kinds[req.get("proto", "http")](req)
                if spec.get("stream"):
                    got["t"] = round(time.monotonic() - start, 3)
                    print(json.dumps(got), flush=True)
                else:
                    out.append(got)
                if interval:
                    time.sleep(interval)
        if time.monotonic() >= deadline:
            break
    if not spec.get("stream"):
        print(json.dumps(out))


if __name__ == "__main__":
    main()
