#!/bin/bash
# The same plugin chains through both front ends: sluice-smtpd (a client
# speaking SMTP from the row's address) and sluice-milterd (driven by
# sluice-milter-client as the MTA, which presents the same address, HELO,
# envelope and message).  Each side's replies are reduced to one verdict per
# stage ("connect: accept", "rcpt <x>: reject 550 5.7.1 text", ...,
# "message: discard") and the two lists must be equal, reply code,
# enhanced code and plugin text included.
#
# What differs on purpose is declared per row as a sed expression that
# turns the smtpd list into the milterd one (the diff column):
#   * a connect-stage DENY is smtpd's 554 greeting (RFC 5321 3.1: no
#     enhanced code, host name first), a DENYSOFT its 421 4.7.0 greeting;
#     milterd answers the CONNECT event with the verdict's reply instead;
#   * DENY_DISCONNECT / DENYSOFT_DISCONNECT become a plain DENY / DENYSOFT
#     in milterd (it cannot close the client's connection: milterd/session.c
#     reply_verdict), so without a plugin code the default is 550, not 554;
#   * smtpd does relay control (local_domains), milterd leaves it to the MTA.
# Stages after a refusal that ends the session or the message are not
# compared (smtpd would answer them 503, an MTA does not send them).
#
# Groups (one smtpd and one milterd each, all started once, side by side):
# real plugins only (no content plugin, so milterd ACCEPTs at DATA),
# test_hooks verdicts at connect/helo/mail/rcpt, content (headers +
# header-hook verdicts), and one each for a body DENY, data_post DENYSOFT,
# data DENY, data DISCARD and data_post DISCARD.  Rows whose difference is
# reported but not resolved are TAP TODO tests (diff column "todo: ...").
# One Python process plays every SMTP session and runs the milter client.
. "$SLUICE_SRC/t/lib.sh"
export LC_ALL=C

[ -x "$SLUICE_BUILD/sluice-smtpd" ] || skip_all "sluice-smtpd not built"
[ -x "$SLUICE_BUILD/sluice-milterd" ] || skip_all "sluice-milterd not built"
[ -x "$SLUICE_BUILD/sluice-milter-client" ] || skip_all "sluice-milter-client not built"
[ -f "$SLUICE_BUILD/t/plugins/test_hooks.so" ] ||
	skip_all "test plugin not built ($SLUICE_BUILD/t/plugins/test_hooks.so)"
setup_run

# --- the groups: the same plugin lines for both front ends ------------------------
declare -A GROUP
GROUP[plugins]='
plugin hosts_allow allow=127.0.0.3 deny=127.0.0.2,::1
plugin badmailfrom list=spammer@example.net,@spam.example
plugin badrcptto list=bad@sluice.test,/^retired-/
plugin badmailfrom name=bmf_logonly list=logged@example.org reject=no
'
GROUP[hooks]='
plugin test_hooks name=conn_soft hook=connect action=denysoft match=127.0.0.4 text="connect tempfail"
plugin test_hooks name=conn_deny hook=connect action=deny match=127.0.0.5 text="connect refused"
plugin test_hooks name=conn_discard hook=connect action=discard match=127.0.0.7
plugin test_hooks name=conn_defer hook=connect action=deny match=127.0.0.6 reject=defer text="deferred refusal"
plugin test_hooks name=helo_deny hook=helo action=deny match=bad-helo text="helo refused"
plugin test_hooks name=helo_soft hook=helo action=denysoft match=soft-helo text="helo tempfail"
plugin test_hooks name=helo_dd hook=helo action=deny_disconnect match=bye-helo
plugin test_hooks name=helo_code hook=helo action=deny_disconnect match=code-helo code=521 text="helo closing"
plugin test_hooks name=mail_soft hook=mail action=denysoft match=soft-sender text="sender tempfail"
plugin test_hooks name=mail_ok hook=mail action=ok match=vip
plugin test_hooks name=rcpt_soft hook=rcpt action=denysoft match=soft-rcpt text="rcpt tempfail"
plugin test_hooks name=rcpt_deny hook=rcpt action=deny match=deny-rcpt code=553 text="no such user"
plugin test_hooks name=rcpt_discard hook=rcpt action=discard match=discard-me
plugin test_hooks name=rcpt_error hook=rcpt action=error match=broken-rcpt
plugin test_hooks name=rcpt_sdd hook=rcpt action=denysoft_disconnect match=bye-rcpt text="rcpt closing"
'
GROUP[content]='
plugin headers max_received=2
plugin test_hooks name=hdr_deny hook=header action=deny match=X-Reject text="header refused"
plugin test_hooks name=hdr_soft hook=header action=denysoft match=X-Tempfail text="header tempfail"
plugin test_hooks name=hdr_discard hook=header action=discard match=X-Discard
'
GROUP[body_deny]='
plugin test_hooks hook=body action=deny text="body refused"
'
GROUP[post_soft]='
plugin test_hooks hook=data_post action=denysoft text="content tempfail"
'
GROUP[data_deny]='
plugin test_hooks hook=data action=deny text="no data today"
'
GROUP[data_discard]='
plugin test_hooks hook=data action=discard
'
GROUP[post_discard]='
plugin test_hooks hook=data_post action=discard
'

# --- the messages --------------------------------------------------------------------
mkdir -p "$RUN/msg"
NOW=$(date -u -R)
msg() { cat >"$RUN/msg/$1"; }
msg good <<EOF
From: alice@example.org
To: bob@sluice.test
Date: $NOW
Subject: parity

A body line.
EOF
msg nodate <<EOF
From: alice@example.org
Subject: no date

body
EOF
msg twosubj <<EOF
From: alice@example.org
Date: $NOW
Subject: one
Subject: two

body
EOF
msg baddate <<EOF
From: alice@example.org
Date: 2026-11-21T10:00:00Z

body
EOF
msg xreject <<EOF
From: alice@example.org
Date: $NOW
X-Reject: yes

body
EOF
msg xtempfail <<EOF
From: alice@example.org
Date: $NOW
X-Tempfail: yes

body
EOF
msg received2 <<EOF
Received: from a.example by b.example; $NOW
Received: from c.example by a.example; $NOW
From: alice@example.org
Date: $NOW

body
EOF
msg received3 <<EOF
Received: from a.example by b.example; $NOW
Received: from c.example by a.example; $NOW
Received: from d.example by c.example; $NOW
From: alice@example.org
Date: $NOW

body
EOF
msg xdiscard <<EOF
From: alice@example.org
Date: $NOW
X-Discard: yes

body
EOF

# --- the rows ----------------------------------------------------------------------
# name ;; group ;; client ;; helo ;; sender ;; recipients ;; message ;; ERE
# on the milterd list (what the row is about) ;; diff: a sed expression that
# turns the smtpd list into the milterd one, or - (none), or "todo: WHY"
# for a difference that is reported and not yet resolved (the comparison
# is then a TAP TODO test, and the ERE is not checked)
ROWS=$(
	cat <<'EOF'
plugins-accept ;; plugins ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; good ;; rcpt <bob@sluice.test>: accept \| data: accept \| message: accept$ ;; -
hosts_allow-deny ;; plugins ;; 127.0.0.2 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; good ;; ^connect: reject 554 5\.7\.1 Connection from \[127\.0\.0\.2\] refused$ ;; -
hosts_allow-deny-ipv6 ;; plugins ;; ::1 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; good ;; ^connect: reject 554 5\.7\.1 Connection from \[::1\] refused$ ;; -
hosts_allow-allow ;; plugins ;; 127.0.0.3 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; good ;; ^connect: accept .* message: accept$ ;; -
badmailfrom-address ;; plugins ;; 127.0.0.10 ;; client.example ;; spammer@example.net ;; bob@sluice.test ;; good ;; mail: reject 550 5\.7\.1 Mail from <spammer@example\.net> not accepted here$ ;; -
badmailfrom-domain ;; plugins ;; 127.0.0.10 ;; client.example ;; Someone@SPAM.example ;; bob@sluice.test ;; good ;; mail: reject 550 5\.7\.1 Mail from <Someone@SPAM\.example> not accepted here$ ;; -
badmailfrom-null-sender ;; plugins ;; 127.0.0.10 ;; client.example ;; <> ;; bob@sluice.test ;; good ;; mail: accept .* message: accept$ ;; -
badrcptto-one-of-two ;; plugins ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bad@sluice.test ok@sluice.test ;; good ;; rcpt <bad@sluice.test>: reject 550 5\.7\.1 Mail to <bad@sluice\.test> not accepted here \| rcpt <ok@sluice.test>: accept \| data: accept \| message: accept$ ;; -
badrcptto-case ;; plugins ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; BAD@Sluice.Test ;; good ;; rcpt <BAD@Sluice\.Test>: reject 550 5\.7\.1 Mail to <BAD@Sluice\.Test> not accepted here$ ;; -
badrcptto-regex-only ;; plugins ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; retired-carol@sluice.test ;; good ;; rcpt <retired-carol@sluice\.test>: reject 550 5\.7\.1 Mail to <retired-carol@sluice\.test> not accepted here$ ;; -
relay-not-milterd ;; plugins ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; eve@elsewhere.example ;; good ;; rcpt <eve@elsewhere\.example>: accept \| data: accept \| message: accept$ ;; s/rcpt <eve@elsewhere.example>: reject 550 5.7.1 Relay access denied$/rcpt <eve@elsewhere.example>: accept | data: accept | message: accept/
hooks-accept ;; hooks ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; good ;; ^connect: accept .* message: accept$ ;; -
connect-denysoft ;; hooks ;; 127.0.0.4 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; good ;; ^connect: tempfail 451 4\.7\.1 connect tempfail$ ;; s/^connect: tempfail 421 4.7.0 mx.sluice.test /connect: tempfail 451 4.7.1 /
connect-deny ;; hooks ;; 127.0.0.5 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; good ;; ^connect: reject 550 5\.7\.1 connect refused$ ;; s/^connect: reject 554 mx.sluice.test ESMTP /connect: reject 550 5.7.1 /
connect-deny-deferred ;; hooks ;; 127.0.0.6 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; good ;; ^connect: accept .* rcpt <bob@sluice\.test>: reject 550 5\.7\.1 deferred refusal$ ;; -
connect-discard ;; hooks ;; 127.0.0.7 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; good ;; message: discard$ ;; -
helo-deny ;; hooks ;; 127.0.0.10 ;; bad-helo.example ;; alice@example.org ;; bob@sluice.test ;; good ;; helo: reject 550 5\.7\.1 helo refused$ ;; -
helo-denysoft ;; hooks ;; 127.0.0.10 ;; soft-helo.example ;; alice@example.org ;; bob@sluice.test ;; good ;; helo: tempfail 451 4\.7\.1 helo tempfail$ ;; -
helo-deny_disconnect ;; hooks ;; 127.0.0.10 ;; bye-helo.example ;; alice@example.org ;; bob@sluice.test ;; good ;; helo: reject 550 5\.7\.1 Rejected by policy$ ;; s/helo: reject 554 5.7.1 /helo: reject 550 5.7.1 /
helo-deny_disconnect-code ;; hooks ;; 127.0.0.10 ;; code-helo.example ;; alice@example.org ;; bob@sluice.test ;; good ;; helo: reject 521 5\.7\.1 helo closing$ ;; -
mail-denysoft ;; hooks ;; 127.0.0.10 ;; client.example ;; soft-sender@example.org ;; bob@sluice.test ;; good ;; mail: tempfail 451 4\.7\.1 sender tempfail$ ;; -
mail-ok ;; hooks ;; 127.0.0.10 ;; client.example ;; vip@example.org ;; bob@sluice.test ;; good ;; mail: accept .* message: accept$ ;; -
rcpt-denysoft ;; hooks ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; soft-rcpt@sluice.test bob@sluice.test ;; good ;; rcpt <soft-rcpt@sluice\.test>: tempfail 451 4\.7\.1 rcpt tempfail \| rcpt <bob@sluice\.test>: accept .* message: accept$ ;; -
rcpt-deny-code ;; hooks ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; deny-rcpt@sluice.test ;; good ;; rcpt <deny-rcpt@sluice\.test>: reject 553 5\.7\.1 no such user$ ;; -
rcpt-discard ;; hooks ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; discard-me@sluice.test ;; good ;; rcpt <discard-me@sluice\.test>: accept \| data: accept \| message: discard$ ;; -
badmailfrom-log-only ;; plugins ;; 127.0.0.10 ;; client.example ;; logged@example.org ;; bob@sluice.test ;; good ;; mail: accept .* message: accept$ ;; -
badmailfrom-source-route ;; plugins ;; 127.0.0.10 ;; client.example ;; <@relay.example:spammer@example.net> ;; bob@sluice.test ;; good ;; mail: reject 550 5\.7\.1 Mail from <spammer@example\.net> not accepted here$ ;; -
rcpt-error ;; hooks ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; broken-rcpt@sluice.test ;; good ;; rcpt <broken-rcpt@sluice\.test>: tempfail 451 4\.3\.0 .*$ ;; -
rcpt-denysoft_disconnect ;; hooks ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bye-rcpt@sluice.test ;; good ;; rcpt <bye-rcpt@sluice\.test>: tempfail 451 4\.7\.1 rcpt closing$ ;; s/: tempfail 421 4.7.1 rcpt closing$/: tempfail 451 4.7.1 rcpt closing/
headers-received-at-limit ;; content ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; received2 ;; message: reject 554 5\.4\.6 Too many hops.*$ ;; -
headers-received-over ;; content ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; received3 ;; message: reject 554 5\.4\.6 Too many hops.*$ ;; -
content-accept ;; content ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; good ;; data: accept \| message: accept$ ;; -
headers-no-date ;; content ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; nodate ;; message: reject 554 5\.6\.0 Message has no Date: header$ ;; -
headers-two-subjects ;; content ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; twosubj ;; message: reject 554 5\.6\.0 Message has 2 Subject: headers$ ;; -
headers-bad-date ;; content ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; baddate ;; message: reject 554 5\.6\.0 Malformed Date header$ ;; -
header-deny ;; content ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; xreject ;; message: reject 550 5\.7\.1 header refused$ ;; -
header-denysoft ;; content ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; xtempfail ;; message: tempfail 451 4\.7\.1 header tempfail$ ;; -
header-discard ;; content ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; xdiscard ;; message: discard$ ;; -
body-deny ;; body_deny ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; good ;; data: accept \| message: reject 550 5\.7\.1 body refused$ ;; -
data_post-denysoft ;; post_soft ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; good ;; message: tempfail 451 4\.7\.1 content tempfail$ ;; -
data-deny ;; data_deny ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; good ;; data: reject 550 5\.7\.1 no data today$ ;; -
data-discard ;; data_discard ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; good ;; data: accept \| message: discard$ ;; -
data_post-discard ;; post_discard ;; 127.0.0.10 ;; client.example ;; alice@example.org ;; bob@sluice.test ;; good ;; data: accept \| message: discard$ ;; -
EOF
)

# --- start both front ends per group --------------------------------------------------
# IPv6 rows need ::1 (the private network namespace has it)
HAVE_V6=0
"$SLUICE_PYTHON" -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' \
	2>/dev/null && HAVE_V6=1
export HAVE_V6
ports=
for g in "${!GROUP[@]}"; do
	PORT=$(free_port) || {
		echo "Bail out! no free port"
		exit 1
	}
	write_conf "$RUN/smtpd-$g.conf" <<EOF
local_domains sluice.test
max_errors 100
$([ "$HAVE_V6" = 1 ] && echo "listen [::1]:$PORT")
${GROUP[$g]}
plugin queue/discard
EOF
	sluice_start "$RUN/smtpd-$g.conf"
	SMTPD_PORT=$PORT
	MPORT=$(free_port) || {
		echo "Bail out! no free port"
		exit 1
	}
	write_conf "$RUN/milterd-$g.conf" <<EOF
milter_listen inet:$MPORT@127.0.0.1
${GROUP[$g]}
EOF
	milterd_start "$RUN/milterd-$g.conf"
	ports+="$g $SMTPD_PORT $MPORT
"
done
printf '%s' "$ports" >"$RUN/ports.map"
printf '%s\n' "$ROWS" >"$RUN/rows"

# --- run every row through both, reduce the replies to verdicts ------------------------
cat >"$RUN/parity.py" <<'PY'
"""rows -> one line per row: name, want, diff, smtpd verdicts, milterd
verdicts, separated by tabs."""
import os
import re
import socket
import subprocess
import sys

run, client = sys.argv[1], sys.argv[2]
ports = {}
for ln in open(run + "/ports.map"):
    g, sp, mp = ln.split()
    ports[g] = (int(sp), int(mp))


def word(code):
    return {"2": "accept", "3": "accept", "4": "tempfail", "5": "reject"}[code[0]]


def verdict(reply):
    """'550 5.7.1 text' -> 'reject 550 5.7.1 text'; 2xx/3xx -> 'accept'."""
    w = word(reply)
    return w if w == "accept" else w + " " + reply


class Smtp:
    def __init__(self, ip, port):
        self.s = socket.create_connection(
            ("::1" if ":" in ip else "127.0.0.1", port), timeout=10,
            source_address=(ip, 0))
        self.buf = b""

    def reply(self):
        """The last line of one reply ('250 ...'), or None if closed."""
        while True:
            i = self.buf.find(b"\n")
            if i < 0:
                d = self.s.recv(65536)
                if not d:
                    return None
                self.buf += d
                continue
            line, self.buf = self.buf[:i].rstrip(b"\r"), self.buf[i + 1:]
            if re.match(rb"^\d{3}( |$)", line):
                return line.decode("utf-8", "replace")

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\r\n")
        return self.reply()


def smtpd_side(port, ip, helo, sender, rcpts, msgfile):
    out = []
    c = Smtp(ip, port)
    try:
        r = c.reply()
        out.append("connect: " + verdict(r))
        if not r.startswith("220"):
            return out
        r = c.cmd("EHLO " + helo)
        out.append("helo: " + verdict(r))
        if not r.startswith("2"):
            return out
        path = sender if sender.startswith("<") else "<%s>" % sender
        r = c.cmd("MAIL FROM:" + path)
        out.append("mail: " + verdict(r))
        if not r.startswith("2"):
            return out
        good = 0
        for rc in rcpts:
            r = c.cmd("RCPT TO:<%s>" % rc)
            out.append("rcpt <%s>: %s" % (rc, verdict(r)))
            good += r.startswith("2")
        if not good:
            return out
        r = c.cmd("DATA")
        out.append("data: " + verdict(r))
        if not r.startswith("354"):
            return out
        body = open(msgfile, "rb").read().replace(b"\r\n", b"\n")
        body = body.replace(b"\n", b"\r\n")
        c.s.sendall(body + b".\r\n")
        r = c.reply()
        if re.match(r"^250 2\.0\.0 Ok$", r):
            # smtpd's reply for a discarded message (data_post_done); an
            # accepted one has the queue plugin's text ("Ok: discarded"
            # from queue/discard, "Ok: queued as ID" otherwise)
            out.append("message: discard")
        else:
            out.append("message: " + verdict(r))
        c.cmd("QUIT")
        return out
    except (OSError, AttributeError):
        out.append("closed")
        return out
    finally:
        c.s.close()


def milterd_side(port, ip, helo, sender, rcpts, msgfile):
    args = [client, "-v", "-t", "10", "-s", "inet:%d@127.0.0.1" % port,
            "-c", ip, "-H", helo, "-f", sender]
    for rc in rcpts:
        args += ["-r", rc]
    p = subprocess.run(args + [msgfile], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    seen = {}
    order = []
    for ln in p.stdout.decode("utf-8", "replace").splitlines():
        m = re.match(r"^(connect|helo|mail <[^>]*>|rcpt <[^>]*>|data|"
                     r"header [^:]*|eoh|body|eom): (.*)$", ln)
        if not m:
            continue
        label, v = m.group(1), m.group(2)
        if label.startswith("mail "):
            label = "mail"
        w = v.split(" ", 1)[0]
        if w in ("continue", "skip", "(no", "(not"):
            v = "continue"
        elif w not in ("accept", "reject", "tempfail", "discard"):
            continue  # an edit, quarantine or progress line at eom
        order.append((label, v))
    out = []
    content = [v for (label, v) in order
               if label.split(" ")[0] in ("header", "eoh", "body", "eom")]
    stages = dict(order)

    def stage(label, v):
        """Appends; returns True if the flow goes on."""
        if v in ("continue", None):
            out.append(label + ": accept")
            return True
        if v == "accept":  # ACCEPT: everything after it too
            out.append(label + ": accept")
            return "all"
        if v == "discard":
            out.append(label + ": accept")
            return "discard"
        out.append(label + ": " + v)
        return False

    # missing stage lines: not sent to the filter (no reply expected)
    for label in ["connect", "helo", "mail"]:
        go = stage(label, stages.get(label))
        if go is not True:
            break
    else:
        good = 0
        for rc in rcpts:
            v = stages.get("rcpt <%s>" % rc)
            go = stage("rcpt <%s>" % rc, v)
            if go is True or go == "all":
                good += 1
            elif go == "discard":
                good += 1
                break
            if go == "all":
                break
        if go == "all":
            return out_all(out, rcpts, "accept")
        if go == "discard":
            return out_all(out, rcpts, "discard")
        if not good:
            return out
        go = stage("data", stages.get("data"))
        if go == "all":
            return out_all(out, rcpts, "accept")
        if go == "discard":
            return out_all(out, rcpts, "discard")
        if go is not True:
            return out
        final = "accept"
        for v in content:
            if v != "continue":
                final = v
                break
        out.append("message: " + final)
        return out
    if go == "all":
        return out_all(out, rcpts, "accept")
    if go == "discard":
        return out_all(out, rcpts, "discard")
    return out


def out_all(out, rcpts, final):
    """After ACCEPT or DISCARD: every stage not yet listed is accepted."""
    have = {ln.split(": ", 1)[0] for ln in out}
    for label in (["connect", "helo", "mail"] +
                  ["rcpt <%s>" % r for r in rcpts] + ["data"]):
        if label not in have:
            out.append(label + ": accept")
    out.append("message: " + final)
    return out


for ln in open(run + "/rows"):
    f = [x.strip() for x in ln.rstrip("\n").split(" ;; ")]
    if len(f) != 9:
        continue
    name, g, ip, helo, sender, rcpts, msg, want, diff = f
    rcpts = rcpts.split()
    sp, mp = ports[g]
    msgfile = run + "/msg/" + msg
    if ":" in ip and os.environ.get("HAVE_V6") != "1":
        print("\t".join([name, want, diff, "skip", "skip"]))
        continue
    s = smtpd_side(sp, ip, helo, sender, rcpts, msgfile)
    m = milterd_side(mp, ip, helo, sender, rcpts, msgfile)
    print("\t".join([name, want, diff, " | ".join(s), " | ".join(m)]))
    sys.stdout.flush()
PY
"$SLUICE_PYTHON" "$RUN/parity.py" "$RUN" "$SLUICE_BUILD/sluice-milter-client" \
	>"$RUN/results" 2>"$RUN/parity.err"
[ -s "$RUN/parity.err" ] && diag "$(cat "$RUN/parity.err")"

# --- compare ----------------------------------------------------------------------------
nrows=0
while IFS=$'\t' read -r name want diff s m; do
	nrows=$((nrows + 1))
	if [ "$s" = skip ]; then
		skip 2 "$name: no IPv6 loopback"
		continue
	fi
	exp=$s
	if [[ $diff == todo:* ]]; then
		_T_NUM=$((_T_NUM + 1))
		if [ "$m" = "$s" ]; then
			echo "ok $_T_NUM - $name: same verdicts in smtpd and milterd # TODO ${diff#todo: }"
		else
			echo "not ok $_T_NUM - $name: same verdicts in smtpd and milterd # TODO ${diff#todo: }"
			note "  smtpd:   $s
  milterd: $m"
		fi
		continue
	elif [ "$diff" != - ]; then
		exp=$(sed "$diff" <<<"$s")
		is "$m" "$exp" "$name: same verdicts (smtpd, with the declared difference: $diff)"
		[ "$s" != "$exp" ]
		ok $? "$name: ... and the declared difference is really there"
	else
		is "$m" "$exp" "$name: same verdicts in smtpd and milterd"
	fi
	like "$m" "$want" "$name: $want"
done <"$RUN/results"
is "$nrows" "$(grep -c ' ;; ' "$RUN/rows")" "every row ran through both front ends"

# --- the daemons ----------------------------------------------------------------------------
dead=$(for p in "${_T_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || echo "$p"; done)
is "$dead" "" "every daemon is still running"
done_testing
