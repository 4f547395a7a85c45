#!/usr/bin/env python3
"""procstat.py - /proc measurements and an idle-connection holder for
t/bench/run.sh (python3 stdlib only).

  procstat.py cpu PIDS             CPU ms (utime+stime+cutime+cstime) of PID
                                   and all its live descendants
  procstat.py rss PIDS             resident KiB (VmRSS) of PID + descendants
  procstat.py hwm PID              VmHWM KiB of PID alone
  procstat.py peak PIDS STOPFILE   samples "rss" every 20 ms until STOPFILE
                                   exists or a PID is gone; prints the maximum

PIDS is one PID or several separated by commas (e.g. Postfix's master and
a milter): their process trees are summed, each process counted once.
  procstat.py idle PORT N READYFILE STOPFILE
                                   opens N connections to 127.0.0.1:PORT,
                                   reads each banner, writes "N_OK" into
                                   READYFILE, holds them until STOPFILE exists
"""
import os
import socket
import sys
import time

TCK = os.sysconf("SC_CLK_TCK")


def stat(pid):
    try:
        s = open("/proc/%d/stat" % pid).read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    # fields after "(comm)": state ppid ... utime(14) stime(15) cutime cstime
    return {"ppid": int(rest[1]), "ticks": sum(int(x) for x in rest[11:15])}


def pids(arg):
    return [int(x) for x in str(arg).split(",") if x]


def tree(pid):
    """PID (or a list of PIDs) and all live descendants, each once."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = stat(int(d))
            if st:
                kids.setdefault(st["ppid"], []).append(int(d))
    out, todo = [], list(pid) if isinstance(pid, list) else [pid]
    while todo:
        p = todo.pop()
        if p not in out:
            out.append(p)
            todo.extend(kids.get(p, []))
    return out


def status_kib(pid, key):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ms(pid):
    t = 0
    for p in tree(pid):
        st = stat(p)
        if st:
            t += st["ticks"]
    return t * 1000 // TCK


def rss(pid):
    return sum(status_kib(p, "VmRSS") for p in tree(pid))


def main():
    cmd = sys.argv[1]
    if cmd == "cpu":
        print(cpu_ms(pids(sys.argv[2])))
    elif cmd == "rss":
        print(rss(pids(sys.argv[2])))
    elif cmd == "hwm":
        print(status_kib(int(sys.argv[2]), "VmHWM"))
    elif cmd == "peak":
        pid, stop = pids(sys.argv[2]), sys.argv[3]
        peak = 0
        deadline = time.monotonic() + 3600
        while not os.path.exists(stop) \
                and all(os.path.exists("/proc/%d" % p) for p in pid) \
                and time.monotonic() < deadline:
            peak = max(peak, rss(pid))
            time.sleep(0.02)
        print(peak)
    elif cmd == "idle":
        port, n, ready, stop = int(sys.argv[2]), int(sys.argv[3]), \
            sys.argv[4], sys.argv[5]
        socks, good = [], 0
        for _ in range(n):
            s = socket.socket()
            s.settimeout(10)
            try:
                s.connect(("127.0.0.1", port))
                socks.append(s)
            except OSError:
                s.close()
        for s in socks:
            try:
                if s.recv(512).startswith(b"220"):
                    good += 1
            except OSError:
                pass
        with open(ready + ".tmp", "w") as f:
            f.write("%d\n" % good)
        os.rename(ready + ".tmp", ready)
        deadline = time.monotonic() + 600
        while not os.path.exists(stop) and time.monotonic() < deadline:
            time.sleep(0.05)
        for s in socks:
            s.close()
    else:
        sys.exit("procstat.py: unknown command " + cmd)


if __name__ == "__main__":
    main()
