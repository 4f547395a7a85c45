#!/usr/bin/env python3
"""t/miltraw.py - a scripted, raw MTA side for milter tests.

    miltraw.py HOST:PORT|/unix/path  < script

Script lines (one packet each, '#' comments):
    O 6 0x1ff 0x1fffff        option negotiation (version actions protocol)
    D C j=mx {daemon_name}=x  macros for a stage
    C host 4 1234 192.0.2.1   CONNECT (family U: just "C host U")
    H helo.example
    M <a@b> SIZE=10            (R likewise)
    T | N | A | Q | K          no data
    E [text]                   end of body; text (escapes allowed) is sent
                               as data in the packet, which MTAs never do
    L Subject value with spaces
    B text with \\r\\n escapes
    RAW 00 00 00 01 41         exact bytes (hex)
    PKT X data\\0with escapes   one packet: command byte X, the unescaped
                               data, the length computed (\\0 before a
                               digit reads as octal: write \\x00 there)
    FILL X N [HH]              one packet: command byte X and N data bytes
                               (0x78 'x', or the byte HH in hex)
    READ                       wait for one reply packet, print it
    READALL                    read until a final reply, print each
    READO                      read one packet; an 'O' answer is printed
                               decoded: "O version=V actions=0xA
                               protocol=0xP" then " stageN=list" for each
                               macro list
    SHUT                       half-close: shutdown(SHUT_WR), reads go on
    WAIT secs                  sleep
    NEW [label]                close the connection and open a new one;
                               prints "== label"
Every reply is printed as one line: the code letter and its data, with
non-printable bytes escaped; "EOF" when the filter closed the socket,
"TIMEOUT" when nothing came within --timeout seconds.  After EOF or
TIMEOUT the rest of that connection's script is skipped: the script
stops, or goes on at the next NEW.
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
    if op == "E":
        return pkt("E", unesc(rest))
    if op in ("T", "N", "A", "Q", "K"):
        return pkt(op)
    if op == "RAW":
        return bytes(int(x, 16) for x in parts[1:])
    if op == "PKT":
        code = parts[1].encode()
        if len(code) != 1:
            raise SystemExit("miltraw: PKT needs a one-byte command: " + line)
        return pkt(parts[1], unesc(line[len(op) + 3:].lstrip(" ")))
    if op == "FILL":
        fill = bytes([int(parts[3], 16)]) if len(parts) > 3 else b"x"
        return pkt(parts[1], fill * int(parts[2], 0))
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


def show_optneg(p):
    if p[:1] != b"O" or len(p) < 13:
        return chr(p[0]) + " " + esc(p[1:]) if len(p) > 1 else chr(p[0])
    v, a, pr = struct.unpack(">III", p[1:13])
    out = "O version=%d actions=0x%x protocol=0x%x" % (v, a, pr)
    rest = p[13:]
    while len(rest) >= 4:
        (st,) = struct.unpack(">I", rest[:4])
        lst, _, rest = rest[4:].partition(b"\0")
        out += " stage%d=%s" % (st, esc(lst))
    return out


def main():
    timeout = 10.0
    args = sys.argv[1:]
    if args and args[0].startswith("--timeout="):
        timeout = float(args.pop(0).split("=", 1)[1])
    target = args[0]
    lines = [ln.strip() for ln in sys.stdin.read().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    # The first connection is opened at once, unless the script starts
    # with NEW (so that every session of the script is one of its NEWs).
    c = None if lines and lines[0].split(" ")[0] == "NEW" else \
        Conn(target, timeout)
    skipping = False
    for line in lines:
        if line.split(" ")[0] == "NEW":
            if c is not None:
                c.s.close()
            print("== " + (line[4:].strip() or "NEW"))
            sys.stdout.flush()
            c = Conn(target, timeout)
            skipping = False
            continue
        if skipping:
            continue
        try:
            if line == "READ" or line == "READALL":
                while True:
                    p = c.read()
                    print(chr(p[0]) + " " + esc(p[1:]) if len(p) > 1 else chr(p[0]))
                    if line == "READ" or p[0] in FINAL:
                        break
            elif line == "READO":
                print(show_optneg(c.read()))
            elif line == "SHUT":
                c.s.shutdown(socket.SHUT_WR)
            elif line.startswith("WAIT"):
                time.sleep(float(line.split()[1]))
            else:
                c.s.sendall(build(line))
        except EOFError:
            print("EOF")
            skipping = True
        except socket.timeout:
            print("TIMEOUT")
            skipping = True
        except (BrokenPipeError, ConnectionResetError):
            print("EOF")
            skipping = True
        sys.stdout.flush()
    if c is not None:
        c.s.close()

if __name__ == "__main__":
    main()
