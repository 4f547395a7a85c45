#!/usr/bin/env python3
"""smtpfake.py - a scripted SMTP / LMTP next hop for the queue plugin tests.

    smtpfake.py LISTEN MODE DIR [CODES]

LISTEN is a TCP port on 127.0.0.1, or a unix socket path (starting with
'/').  Writes DIR/ready once listening, then serves each connection in a
thread, by MODE:

  record           a well-behaved ESMTP server (PIPELINING, SIZE, 8BITMIME,
                   SMTPUTF8, XCLIENT): every command line is appended to
                   DIR/commands, the DATA of message N exactly as it came
                   (dot-stuffed, final dot included) goes to DIR/data.N;
                   the end of data gets "250 2.0.0 Ok: queued as FAKE<N>"
  lmtp             the same as an LMTP server (LHLO); the end of data gets
                   one reply per recipient, codes from CODES (e.g.
                   "250,452,550"; missing ones are 250)
  silent           accepts and never sends a byte
  hang-data        record, but never answers the end of data
  malformed        greets with a line that is no SMTP reply
  bad-ehlo         an EHLO reply whose lines change their code
  bare-lf          greets with a line ended by LF alone
  starttls-inject  offers STARTTLS and sends a second reply behind its 220
  drop-data        closes the connection in the middle of the message
  refuse-greeting  greets with 554
  rcpt-421         answers RCPT with 421 and closes
  refuse-ext       offers STARTTLS, XCLIENT and XFORWARD and refuses them
                   (454, 550, 550), then behaves as record
  plain            record without SMTPUTF8, 8BITMIME and XCLIENT

Stdlib only; stops on SIGTERM.
"""

import os
import signal
import socket
import sys
import threading

LISTEN, MODE, DIR = sys.argv[1], sys.argv[2], sys.argv[3]
CODES = [int(c) for c in sys.argv[4].split(",")] if len(sys.argv) > 4 else []
LMTP = MODE == "lmtp"
lock = threading.Lock()
count = [0]

TEXTS = {250: "2.0.0 Ok", 251: "2.1.5 Ok", 450: "4.2.1 Mailbox busy",
         451: "4.3.0 Local error", 452: "4.2.2 Over quota",
         550: "5.1.1 No such user", 552: "5.2.2 Mailbox full",
         554: "5.7.1 Rejected"}


def log_command(line):
    with lock:
        with open(os.path.join(DIR, "commands"), "ab") as f:
            f.write(line + b"\n")


def serve(conn):
    f = conn.makefile("rb")

    def send(s):
        conn.sendall(s.encode() if isinstance(s, str) else s)

    if MODE == "silent":
        f.read()  # until the client gives up
        return
    if MODE == "malformed":
        send("hello there\r\n")
        f.read()
        return
    if MODE == "bare-lf":
        send("220 fake.test ESMTP\n")
        f.read()
        return
    if MODE == "refuse-greeting":
        send("554 5.3.2 fake.test closed for maintenance\r\n")
        f.read()
        return
    send("220 fake.test ESMTP smtpfake\r\n")
    rcpts = 0
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line.rstrip(b"\r\n")
        log_command(cmd)
        verb = cmd.split(b" ", 1)[0].upper()
        if verb in (b"EHLO", b"LHLO"):
            if MODE == "bad-ehlo":
                send("250-fake.test\r\n251 PIPELINING\r\n")
                continue
            caps = ["fake.test", "PIPELINING", "SIZE 10240000",
                    "ENHANCEDSTATUSCODES"]
            if MODE != "plain":
                caps += ["8BITMIME", "SMTPUTF8"]
            if MODE in ("starttls-inject", "refuse-ext"):
                caps.append("STARTTLS")
            if MODE in ("record", "refuse-ext"):
                caps.append("XCLIENT NAME ADDR PORT PROTO HELO LOGIN")
            if MODE == "refuse-ext":
                caps.append("XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE")
            send("".join("250%s%s\r\n" % ("-" if i < len(caps) - 1 else " ",
                                          c) for i, c in enumerate(caps)))
        elif verb == b"HELO":
            send("250 fake.test\r\n")
        elif verb == b"STARTTLS" and MODE == "refuse-ext":
            send("454 4.7.0 TLS not available\r\n")
        elif verb == b"STARTTLS":
            send("220 2.0.0 Ready to start TLS\r\n250 injected\r\n")
        elif verb in (b"XCLIENT", b"XFORWARD") and MODE == "refuse-ext":
            send("550 5.7.0 Error: insufficient authorization\r\n")
        elif verb == b"XCLIENT":
            send("220 fake.test ESMTP smtpfake\r\n")
        elif verb == b"MAIL":
            rcpts = 0
            send("250 2.1.0 Ok\r\n")
        elif verb == b"RCPT" and MODE == "rcpt-421":
            send("421 4.3.2 Service shutting down\r\n")
            return
        elif verb == b"RCPT":
            rcpts += 1
            send("250 2.1.5 Ok\r\n")
        elif verb == b"DATA":
            send("354 End data with <CR><LF>.<CR><LF>\r\n")
            data = b""
            while True:
                l = f.readline()
                if not l:
                    return
                data += l
                if MODE == "drop-data" and len(data) > 10:
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                if l == b".\r\n":
                    break
            with lock:
                count[0] += 1
                n = count[0]
            with open(os.path.join(DIR, "data.%d" % n), "wb") as out:
                out.write(data)
            if MODE == "hang-data":
                f.read()
                return
            if LMTP:
                for i in range(rcpts):
                    c = CODES[i] if i < len(CODES) else 250
                    send("%d %s (rcpt %d)\r\n" % (c, TEXTS.get(c, "x"), i))
            else:
                send("250 2.0.0 Ok: queued as FAKE%d\r\n" % n)
        elif verb == b"RSET":
            send("250 2.0.0 Ok\r\n")
        elif verb == b"QUIT":
            send("221 2.0.0 Bye\r\n")
            return
        else:
            send("502 5.5.2 Error: command not recognized\r\n")


def handle(conn):
    try:
        serve(conn)
    except OSError:
        pass
    finally:
        conn.close()


def main():
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    if LISTEN.startswith("/"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(LISTEN)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(LISTEN)))
    s.listen(16)
    open(os.path.join(DIR, "ready"), "w").close()
    while True:
        conn, _ = s.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


main()
