#!/usr/bin/env python3
"""smtpchat.py - a scripted SMTP client for exact-byte tests (stdlib only).

    smtpchat.py [--host H] [--port P] [--raw] [--timeout S] [--bind ADDR]
                [--no-banner] [--linger S] [--tls] [--sni NAME]
                [--cert FILE --key FILE] < script

Connects, reads the banner (unless --no-banner), then runs the script from
stdin, one line at a time:

  text          sent with CRLF appended (with --raw: the line is unescaped -
                \\r \\n \\t \\0 \\\\ \\xHH - and sent exactly, nothing appended)
  !sleep N      pause N seconds (fractions allowed)
  !pipeline     the lines up to "!end" are sent in ONE write, then all their
  ...           replies are read
  !end
  !expect N     the next write expects N replies (instead of the count below)
  !read [T]     read one reply (timeout T, default --timeout)
  !wait_close [T]  read until the server closes (prints "!closed") or T passes
  !shutdown     half-close: no more data from us (SHUT_WR)
  !starttls     the TLS handshake on the connection (after the server's
                "220" to STARTTLS); prints "!tls VERSION CIPHER" or
                "!tls-failed REASON" (then the script stops)

--tls: implicit TLS (an smtps listener), the handshake before the banner.
--sni NAME: the server name sent in the handshake; --cert/--key: a client
certificate.  The server's certificate is not verified.

How many replies a write expects is worked out the way a server reads the
stream: one per CRLF-terminated command line (a bare LF does not end a
command); after "DATA" the bytes up to CRLF.CRLF are message content, whose
end gets one reply; "BDAT n [LAST]" is followed by n bytes of chunk (taken
from the following lines/bytes) and gets one reply once the chunk is
complete.  DATA is assumed to be answered 354 inside a pipeline group; when
sent on its own, its real reply decides.

Output: every reply line received, without CRLF, in order; "!timeout" when
an expected reply did not come within the timeout; "!closed" when the server
closed the connection (then the script stops).  After the script, stray
lines arriving within --linger seconds (0.3) are printed too.
Exit status: 0, or 2 on a usage or connection error.
"""

import argparse
import re
import select
import socket
import ssl
import sys
import time

REPLY_LAST = re.compile(rb"^\d{3}(?: |$)")
REPLY_MORE = re.compile(rb"^\d{3}-")


def unescape(line):
    out = bytearray()
    i = 0
    n = len(line)
    while i < n:
        c = line[i]
        if c == 0x5C and i + 1 < n:
            e = line[i + 1]
            simple = {ord("r"): b"\r", ord("n"): b"\n", ord("t"): b"\t",
                      ord("0"): b"\0", 0x5C: b"\\"}
            if e in simple:
                out += simple[e]
                i += 2
                continue
            if e == ord("x") and i + 3 < n and re.match(
                    rb"[0-9A-Fa-f]{2}", line[i + 2:i + 4]):
                out.append(int(line[i + 2:i + 4], 16))
                i += 4
                continue
        out.append(c)
        i += 1
    return bytes(out)


class Closed(Exception):
    pass


class Counter:
    """Follows the client->server stream to count the replies it asks for."""

    def __init__(self):
        self.mode = "cmd"
        self.buf = b""
        self.tail = b""
        self.bdat_left = 0
        self.data_fresh = False

    def feed(self, data):
        """Returns the list of expected replies (tags: 'DATA' or '')."""
        tags = []
        self.buf += data
        while True:
            if self.mode == "cmd":
                i = self.buf.find(b"\r\n")
                if i < 0:
                    break
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                words = line.split()
                verb = words[0].upper() if words else b""
                if verb == b"DATA" and len(words) == 1:
                    tags.append("DATA")
                    self.mode = "data"
                    self.tail = b"\r\n"
                    self.data_fresh = True
                elif verb == b"BDAT" and len(words) >= 2 and \
                        words[1].isdigit():
                    self.bdat_left = int(words[1])
                    self.mode = "bdat"
                    if self.bdat_left == 0:
                        tags.append("")
                        self.mode = "cmd"
                else:
                    tags.append("")
            elif self.mode == "data":
                if not self.buf:
                    break
                self.data_fresh = False
                both = self.tail + self.buf
                i = both.find(b"\r\n.\r\n")
                if i < 0:
                    self.tail = both[-4:]
                    self.buf = b""
                    break
                self.buf = both[i + 5:]
                self.mode = "cmd"
                tags.append("")
            else:  # bdat
                if not self.buf and self.bdat_left > 0:
                    break
                take = min(self.bdat_left, len(self.buf))
                self.bdat_left -= take
                self.buf = self.buf[take:]
                if self.bdat_left == 0:
                    self.mode = "cmd"
                    tags.append("")
        return tags

    def data_refused(self):
        """DATA got no 354 and nothing followed it: back to commands."""
        if self.mode == "data" and self.data_fresh:
            self.mode = "cmd"
            self.tail = b""


class Chat:
    def __init__(self, sock, timeout):
        self.sock = sock
        self.timeout = timeout
        self.rbuf = b""
        self.closed = False

    def out(self, line):
        sys.stdout.buffer.write(line + b"\n")
        sys.stdout.buffer.flush()

    def read_line(self, deadline):
        while True:
            i = self.rbuf.find(b"\n")
            if i >= 0:
                line, self.rbuf = self.rbuf[:i], self.rbuf[i + 1:]
                if line.endswith(b"\r"):
                    line = line[:-1]
                return line
            if self.closed:
                raise Closed()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return None
            except ssl.SSLError as e:
                self.out(("!tls-error %s" % e).encode())
                d = b""
            except (ConnectionResetError, BrokenPipeError):
                d = b""
            if not d:
                self.closed = True
                if self.rbuf:  # unterminated last line
                    line, self.rbuf = self.rbuf, b""
                    return line
                raise Closed()
            self.rbuf += d

    def read_reply(self, timeout=None):
        """Prints one (multi-line) reply; returns its code, or None."""
        deadline = time.monotonic() + (self.timeout if timeout is None
                                       else timeout)
        code = None
        while True:
            line = self.read_line(deadline)
            if line is None:
                self.out(b"!timeout")
                return None
            self.out(line)
            if code is None:
                code = line[:3]
            if REPLY_LAST.match(line) or not REPLY_MORE.match(line):
                return code

    def poll(self):
        """Prints what arrived unasked; raises Closed on end of stream."""
        while not self.closed:
            pending = getattr(self.sock, "pending", lambda: 0)()
            r = pending > 0 or select.select([self.sock], [], [], 0)[0]
            if not r:
                break
            self.sock.settimeout(0.0)
            try:
                d = self.sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                break  # a TLS record without data (a session ticket)
            except (ConnectionResetError, BrokenPipeError):
                d = b""
            if not d:
                self.closed = True
            self.rbuf += d
        while b"\n" in self.rbuf or (self.closed and self.rbuf):
            self.out(self.read_line(time.monotonic()))
        if self.closed:
            raise Closed()

    def send(self, data):
        if not data:
            return
        self.poll()
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True
            self.poll()

    def drain(self, seconds, until_close=False):
        deadline = time.monotonic() + seconds
        while True:
            line = self.read_line(deadline)
            if line is None:
                if until_close:
                    self.out(b"!timeout")
                return
            self.out(line)


def main():
    ap = argparse.ArgumentParser(description="scripted SMTP client")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--raw", action="store_true")
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--bind", default=None)
    ap.add_argument("--no-banner", action="store_true")
    ap.add_argument("--linger", type=float, default=0.3)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--sni", default=None)
    ap.add_argument("--cert", default=None)
    ap.add_argument("--key", default=None)
    a = ap.parse_args()

    def tls_wrap(plain):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if a.cert:
            ctx.load_cert_chain(a.cert, a.key)
        plain.settimeout(a.timeout)
        t = ctx.wrap_socket(plain, server_hostname=a.sni)
        sys.stdout.buffer.write(("!tls %s %s\n" % (
            t.version(), t.cipher()[0])).encode())
        sys.stdout.buffer.flush()
        return t

    lines = sys.stdin.buffer.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()

    def encode(line):
        return unescape(line) if a.raw else line + b"\r\n"

    try:
        sock = socket.create_connection(
            (a.host, a.port), timeout=a.timeout,
            source_address=(a.bind, 0) if a.bind else None)
    except OSError as e:
        sys.stderr.write("smtpchat: connect %s:%d: %s\n" % (a.host, a.port, e))
        return 2
    if a.tls:
        try:
            sock = tls_wrap(sock)
        except (ssl.SSLError, OSError) as e:
            print("!tls-failed %s" % e)
            return 0
    chat = Chat(sock, a.timeout)
    counter = Counter()
    expect = None

    def write_and_read(data):
        nonlocal expect
        chat.send(data)
        tags = counter.feed(data)
        n = len(tags) if expect is None else expect
        expect = None
        for k in range(n):
            code = chat.read_reply()
            if k < len(tags) and tags[k] == "DATA" and code != b"354":
                counter.data_refused()

    try:
        if not a.no_banner:
            chat.read_reply()
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if line.startswith(b"!sleep"):
                time.sleep(float(line.split()[1]))
            elif line == b"!pipeline":
                group = bytearray()
                while i < len(lines) and lines[i] != b"!end":
                    group += encode(lines[i])
                    i += 1
                i += 1
                write_and_read(bytes(group))
            elif line.startswith(b"!expect"):
                expect = int(line.split()[1])
            elif line.startswith(b"!read"):
                w = line.split()
                chat.read_reply(float(w[1]) if len(w) > 1 else None)
            elif line.startswith(b"!wait_close"):
                w = line.split()
                chat.drain(float(w[1]) if len(w) > 1 else a.timeout, True)
            elif line == b"!shutdown":
                sock.shutdown(socket.SHUT_WR)
            elif line == b"!starttls":
                if chat.rbuf:
                    chat.out(b"!plaintext-after-220 " + chat.rbuf)
                try:
                    sock = chat.sock = tls_wrap(chat.sock)
                except (ssl.SSLError, OSError) as e:
                    chat.out(("!tls-failed %s" % e).encode())
                    raise Closed()
            else:
                write_and_read(encode(line))
        if a.linger > 0:
            chat.drain(a.linger)
    except Closed:
        chat.out(b"!closed")
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # our reader went away (e.g. grep -q)
        sys.exit(0)
