#!/usr/bin/env python3
"""t/miltraw.py - a scripted, raw MTA side for milter tests.

    miltraw.py HOST:PORT|/unix/path  < script

Script lines (one packet each, '#' comments):
    O 6 0x1ff 0x1fffff        option negotiation (version actions protocol)
    D C j=mx {daemon_name}=x  macros for a stage
    C host 4 1234 192.0.2.1   CONNECT (family U: just "C host U")
    H helo.example
    M <a@b> SIZE=10            (R likewise)
    T | N | E | A | Q | K      no data
    L Subject value with spaces
    B text with \\r\\n escapes
    RAW 00 00 00 01 41         exact bytes (hex)
    READ                       wait for one reply packet, print it
    READALL                    read until a final reply, print each
    WAIT secs                  sleep
Every reply is printed as one line: the code letter and its data, with
non-printable bytes escaped; "EOF" when the filter closed the socket,
"TIMEOUT" when nothing came within --timeout seconds.
"""
import socket
import struct
import sys
import time

FINAL = set(b"carstdy4")


def esc(b):
    out = []
    for c in b:
        if c == 0:
            out.append("\\0")
        elif 32 <= c < 127 and c != 0x5C:
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    return "".join(out)


def unesc(s):
    return s.encode().decode("unicode_escape").encode("latin-1")


def pkt(code, data=b""):
    return struct.pack(">I", len(data) + 1) + code.encode() + data


def build(line):
    parts = line.split(" ")
    op = parts[0]
    rest = line[len(op) + 1:] if len(line) > len(op) else ""
    if op == "O":
        v, a, p = (int(x, 0) for x in parts[1:4])
        return pkt("O", struct.pack(">III", v, a, p))
    if op == "D":
        data = parts[1].encode()
        for kv in parts[2:]:
            k, _, v = kv.partition("=")
            data += unesc(k) + b"\0" + unesc(v) + b"\0"
        return pkt("D", data)
    if op == "C":
        host, fam = parts[1], parts[2]
        data = host.encode() + b"\0" + fam.encode()
        if fam != "U":
            data += struct.pack(">H", int(parts[3])) + parts[4].encode() + b"\0"
        return pkt("C", data)
    if op in ("H", "U"):
        return pkt(op, unesc(rest) + b"\0")
    if op in ("M", "R"):
        return pkt(op, b"".join(unesc(x) + b"\0" for x in parts[1:]))
    if op == "L":
        return pkt("L", unesc(parts[1]) + b"\0" + unesc(" ".join(parts[2:])) + b"\0")
    if op == "B":
        return pkt("B", unesc(rest))
    if op in ("T", "N", "E", "A", "Q", "K"):
        return pkt(op)
    if op == "RAW":
        return bytes(int(x, 16) for x in parts[1:])
    raise SystemExit("miltraw: bad line: " + line)


class Conn:
    def __init__(self, target, timeout):
        if target.startswith("/"):
            self.s = socket.socket(socket.AF_UNIX)
            self.s.connect(target)
        else:
            host, _, port = target.rpartition(":")
            self.s = socket.create_connection((host, int(port)))
            self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.settimeout(timeout)
        self.buf = b""

    def need(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError
            self.buf += d

    def read(self):
        self.need(4)
        (n,) = struct.unpack(">I", self.buf[:4])
        self.need(4 + n)
        p, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        return p


def main():
    timeout = 10.0
    args = sys.argv[1:]
    if args and args[0].startswith("--timeout="):
        timeout = float(args.pop(0).split("=", 1)[1])
    c = Conn(args[0], timeout)
    for line in sys.stdin.read().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line == "READ" or line == "READALL":
                while True:
                    p = c.read()
                    print(chr(p[0]) + " " + esc(p[1:]) if len(p) > 1 else chr(p[0]))
                    if line == "READ" or p[0] in FINAL:
                        break
            elif line.startswith("WAIT"):
                time.sleep(float(line.split()[1]))
            else:
                c.s.sendall(build(line))
        except EOFError:
            print("EOF")
            return
        except socket.timeout:
            print("TIMEOUT")
            return
        except (BrokenPipeError, ConnectionResetError):
            print("EOF")
            return
        sys.stdout.flush()


if __name__ == "__main__":
    main()
