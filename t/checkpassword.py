#!/usr/bin/python3
"""checkpassword.py - a checkpassword program (cr.yp.to/checkpwd) for tests.

    checkpassword.py DIR subprogram [args...]

Reads "user\\0password\\0timestamp\\0" from descriptor 3 and appends one line
to DIR/got describing the call:

    user=U pass=P ts=T sub=SUBPROGRAM fds=OPEN env=NAMES

(OPEN: which of descriptors 0-31 were open; NAMES: the environment's
names, sorted, without the LC_CTYPE Python may add itself).  Then does what DIR/mode says (no file: "check"):

    check     user "alice" with password "s3cret" runs the subprogram
              (exit status: its own); anything else exits 1
    tempfail  exit 111
    hang      sleep for 600 s (the caller's timeout must kill it)
    crash     exit 42
"""
import os
import sys
import time


def main():
    d = sys.argv[1]
    fds = []
    for fd in range(32):
        try:
            os.fstat(fd)
            fds.append(str(fd))
        except OSError:
            pass
    data = b""
    while True:
        chunk = os.read(3, 4096)
        if not chunk:
            break
        data += chunk
    os.close(3)
    parts = data.split(b"\0")
    user, pw, ts = (parts + [b"", b"", b""])[:3]
    # Python itself may add LC_CTYPE (PEP 538): not the caller's doing.
    env = sorted(k for k in os.environ if k != "LC_CTYPE")
    with open(os.path.join(d, "got"), "ab") as f:
        f.write(b"user=%s pass=%s ts=%s sub=%s fds=%s env=%s\n" % (
            user, pw, ts, " ".join(sys.argv[2:]).encode(),
            ",".join(fds).encode(), ",".join(env).encode()))
    try:
        with open(os.path.join(d, "mode")) as f:
            mode = f.read().strip()
    except OSError:
        mode = "check"
    if mode == "tempfail":
        sys.exit(111)
    if mode == "hang":
        time.sleep(600)
        sys.exit(111)
    if mode == "crash":
        sys.exit(42)
    if user == b"alice" and pw == b"s3cret":
        os.execv(sys.argv[2], sys.argv[2:])
    sys.exit(1)


main()
