#!/usr/bin/env python3
"""Writes the seed corpus in fuzz/corpus/<target>/ (seed-*; inputs found by
fuzzing are kept beside them under their own names). Sources: the SIP
messages of SIPp's built-in scenarios (`sipp -sd NAME`, fields filled in as
SIPp fills them), the NG conversation Kamailio 5.6 had with rtpengine 10.5
(shared/peers/samples), and RTP/RTCP/Ethernet packets laid out per RFC 3550,
791, 8200 and 4861 with valid checksums. Run again when a format grows."""
import ast, json, pathlib, re, struct, subprocess, sys, zlib

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"
SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "shared/peers/samples"

def put(target, name, data):
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data if isinstance(data, bytes) else data.encode())

FIELDS = {"service": "bob", "remote_ip": "192.0.2.4", "local_ip": "192.0.2.1",
          "local_port": "5061", "remote_port": "5060", "transport": "UDP",
          "call_number": "7", "call_id": "7-4242@192.0.2.1", "branch": "z9hG4bK-4242-7-0",
          "pid": "4242", "media_ip_type": "4", "media_ip": "192.0.2.1", "media_port": "6000",
          "cseq": "1", "peer_tag_param": ";tag=77SIPpTag017",
          "last_Via:": "Via: SIP/2.0/UDP 192.0.2.1:5061;branch=z9hG4bK-4242-7-0",
          "last_From:": "From: sipp <sip:sipp@192.0.2.1:5061>;tag=4242SIPpTag007",
          "last_To:": "To: bob <sip:bob@192.0.2.4:5060>",
          "last_Call-ID:": "Call-ID: 7-4242@192.0.2.1", "last_CSeq:": "CSeq: 1 INVITE",
          "last_Record-Route:": "", "routes": "", "next_url": "sip:bob@192.0.2.4:5060",
          "local_ip_type": "4", "server_ip": "192.0.2.4", "auto_media_port": "6000"}

def sipp_messages():
    for scenario in ["uac", "uas", "branchc", "branchs", "regexp", "3pcc-C-A", "uac_pcap"]:
        xml = subprocess.run(["sipp", "-sd", scenario], capture_output=True, text=True).stdout
        for i, raw in enumerate(re.findall(r"<send[^>]*>\s*<!\[CDATA\[(.*?)\]\]>", xml, re.S)):
            text = raw.strip("\n")
            lines = [l.strip() for l in text.split("\n")]
            head, _, body = "\n".join(lines).partition("\n\n")
            body = body.strip() + "\n" if body.strip() else ""
            fill = lambda s: re.sub(r"\[([A-Za-z_:-]+)\]", lambda m: FIELDS.get(m.group(1), m.group(0)), s)
            body = fill(body).replace("\n", "\r\n")
            head = fill(head).replace("[len]", str(len(body)))
            head = "\r\n".join(l for l in head.split("\n") if l)
            yield f"sipp-{scenario}-{i}", head + "\r\n\r\n" + body, body

def ng_sample():
    for line in (SAMPLES / "kamailio-5.6-ng-call.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        _, _, cookie, rest = line.split(" ", 3)
        yield cookie, ast.literal_eval(rest)

def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(map(bencode, v)) + b"e"
    return b"d" + b"".join(bencode(k) + bencode(x) for k, x in sorted(v.items())) + b"e"

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data)//2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def ip4(a): return bytes(int(x) for x in a.split("."))
def ip6(last): return bytes.fromhex("20010db8000000000000000000000000")[:15] + bytes([last])
MAC_A, MAC_B = bytes.fromhex("020000000002"), bytes.fromhex("020000000001")

def udp4(src, dst, sport, dport, payload, options=b""):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    pseudo = ip4(src) + ip4(dst) + struct.pack("!BBH", 0, 17, len(seg))
    seg = seg[:6] + struct.pack("!H", csum(pseudo + seg) or 0xFFFF) + seg[8:]
    ihl = 5 + len(options) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(seg), 0x1234, 0x4000, 64, 17, 0,
                    ip4(src), ip4(dst)) + options
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    frame = MAC_B + MAC_A + b"\x08\x00" + h + seg
    return frame + b"\0" * max(0, 60 - len(frame))

def udp6(sport, dport, payload):
    s, d = ip6(2), ip6(1)
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    pseudo = s + d + struct.pack("!I3xB", len(seg), 17)
    seg = seg[:6] + struct.pack("!H", csum(pseudo + seg) or 0xFFFF) + seg[8:]
    return MAC_B + MAC_A + b"\x86\xdd" + struct.pack("!IHBB", 0x60000000, len(seg), 17, 64) + s + d + seg

def ndp_solicit():
    s, d = ip6(2), bytes.fromhex("ff0200000000000000000001ff000001")
    msg = struct.pack("!BBHI", 135, 0, 0, 0) + ip6(1) + b"\x01\x01" + MAC_A
    pseudo = s + d + struct.pack("!I3xB", len(msg), 58)
    msg = msg[:2] + struct.pack("!H", csum(pseudo + msg)) + msg[4:]
    return bytes.fromhex("3333ff000001") + MAC_A + b"\x86\xdd" + struct.pack("!IHBB", 0x60000000, len(msg), 58, 255) + s + d + msg

def arp_request():
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + MAC_A + ip4("192.0.2.2") + b"\0" * 6 + ip4("192.0.2.1")
    return b"\xff" * 6 + MAC_A + b"\x08\x06" + body + b"\0" * 18

def rtp(pt=0, seq=0x1234, ts=160, ssrc=0xDEADBEEF, payload=b"\xff" * 160, csrc=(), ext=None, pad=0):
    b0 = 0x80 | len(csrc) | (0x10 if ext else 0) | (0x20 if pad else 0)
    out = struct.pack("!BBHII", b0, pt, seq, ts, ssrc) + b"".join(struct.pack("!I", c) for c in csrc)
    if ext:
        out += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    out += payload
    if pad:
        out += b"\0" * (pad - 1) + bytes([pad])
    return out

def rtcp_sr():
    sr = struct.pack("!BBHIIIIII", 0x81, 200, 12, 0xDEADBEEF, 0xE5A1B2C3, 0x10000000, 160, 50, 8000)
    block = struct.pack("!IIIIII", 0x01020304, 0x01000002, 0x1234, 20, 0, 0)
    sdes = struct.pack("!BBHI", 0x81, 202, 3, 0xDEADBEEF) + b"\x01\x04sipp\x00\x00"
    return sr + block + sdes

def spool_segment(first, n):
    out = b"TGSPOOL1"
    for i in range(n):
        seq = first + i
        rec = json.dumps({"event": "call.started", "call_id": f"call-{seq}", "at_ms": seq,
                          "from_number": "100", "to_number": "200", "source_ip": None, "org_id": None},
                         separators=(",", ":")).encode()
        out += struct.pack("<IIQ", len(rec), zlib.crc32(struct.pack("<Q", seq) + rec), seq) + rec
    return out

def main():
    bodies = set()
    for name, msg, body in sipp_messages():
        put("sip_message", name, msg)
        if body:
            bodies.add(body)
    put("sip_message", "register-digest",
        "REGISTER sip:192.0.2.4 SIP/2.0\r\nv: SIP/2.0/TCP [2001:db8::9]:5070;branch=z9hG4bK77;rport\r\n"
        "f: <sip:alice@example.com>;tag=a1\r\nt: <sip:alice@example.com>\r\ni: reg-1@192.0.2.1\r\n"
        "CSeq: 2 REGISTER\r\nm: <sip:alice@192.0.2.1:5070;transport=tcp>;expires=3600\r\n"
        "Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"18c2f0a1.9f\", "
        "uri=\"sip:192.0.2.4\", response=\"0123456789abcdef0123456789abcdef\", algorithm=SHA-256, "
        "qop=auth, nc=00000001, cnonce=\"x\"\r\nMax-Forwards: 70\r\nl: 0\r\n\r\n")
    put("sip_digest", "sha256",
        'Digest username="alice", realm="example.com", nonce="18c2f0a1.9f", uri="sip:192.0.2.4", '
        'response="0123456789abcdef", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="x"')
    put("sip_digest", "md5", 'Digest username="bob",realm="r",nonce="1.2",uri="sip:a@b",response="ab"')
    for cookie, d in ng_sample():
        if "sdp" in d:
            bodies.add(d["sdp"])
        put("ng_message", f"bencode-{cookie}", cookie.encode() + b" " + bencode(d))
        put("ng_message", f"json-{cookie}", cookie + " " + json.dumps(d))
        put("ng_bencode", cookie, bencode(d))
        put("ng_json", cookie, json.dumps(d))
    for i, body in enumerate(sorted(bodies)):
        put("sdp", f"{i:02}", body)
    put("sdp", "ice-rtcp-two-media",
        "v=0\r\no=- 1 2 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\na=ice-lite\r\n"
        "m=audio 5004 RTP/AVPF 0 8 101 18\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
        "a=rtcp:5005 IN IP6 2001:db8::1\r\na=rtcp-mux\r\na=candidate:1 1 UDP 1 2001:db8::1 5004 typ host\r\n"
        "a=ptime:20\r\na=sendonly\r\nm=video 0 RTP/AVP 31\r\nc=IN IP4 0.0.0.0\r\n")
    pcmu = rtp()
    put("rtp", "pcmu", pcmu)
    put("rtp", "csrc-ext-pad", rtp(pt=0x80 | 96, csrc=(1, 2), ext=b"\x10\xab\x00\x00", pad=4, payload=b"abc"))
    put("rtp", "rtcp-sr-sdes", rtcp_sr())
    put("rtp", "rtcp-rr-bye", struct.pack("!BBHI", 0x80, 201, 1, 7) + struct.pack("!BBHI", 0x81, 203, 1, 7))
    put("frame", "ipv4-rtp", udp4("192.0.2.2", "192.0.2.1", 6000, 30000, pcmu))
    put("frame", "ipv4-short-rtcp", udp4("192.0.2.2", "192.0.2.1", 6001, 30001, rtcp_sr()[:8]))
    put("frame", "ipv4-options", udp4("192.0.2.2", "192.0.2.1", 6000, 30000, b"x", options=b"\x01\x01\x01\x00"))
    put("frame", "ipv6-rtp", udp6(6000, 30000, pcmu))
    put("frame", "ndp-solicit", ndp_solicit())
    put("frame", "arp-request", arp_request())
    flow = {"local": "127.0.0.1:30000", "source": "127.0.0.1:30002", "destination": "127.0.0.1:6000",
            "learn": True, "strict": False, "clock_rate": 8000, "stages": [{"kind": "null"}]}
    for op in ["hello", "flow_list", "idle", "counters", "workers", "events"]:
        put("control", f"req-{op}", json.dumps({"v": 1, "op": op}))
    put("control", "req-flow_put", json.dumps({"v": 1, "op": "flow_put", "flow": flow}))
    put("control", "req-flow_del", json.dumps({"v": 1, "op": "flow_del", "local": "[::1]:30000"}))
    put("control", "reply-hello", json.dumps({"ok": True, "result": {"version": 1, "backend": "socket", "instance": 9}}))
    put("control", "reply-counters", json.dumps({"ok": True, "result": {"rx": 10, "tx": 9}}))
    put("control", "reply-refused", json.dumps({"ok": False, "error": "no such flow", "kind": "not_found"}))
    framed = json.dumps({"v": 1, "op": "hello"}).encode()
    put("control", "frames", struct.pack("!I", len(framed)) + framed + struct.pack("!I", 2) + b"{}")
    for name, seg in [("three", spool_segment(1, 3)), ("from-40", spool_segment(40, 2)),
                      ("last-seq", spool_segment(2**64 - 1, 1)), ("empty", b"TGSPOOL1")]:
        put("spool_segment", name, seg)
        put("spool", name, seg)
    put("spool_cursor", "at-u64-max", json.dumps({"delivered_seq": 2**64 - 1, "delivered": 1}))
    put("spool_cursor", "at-1", json.dumps({"delivered_seq": 1, "delivered": 1}))
    put("spool_cursor", "failing", json.dumps({"delivered_seq": 0, "delivered": 0,
                                               "last_error": "connection refused", "failing_since_ms": 1}))

main()
