/*
 * test_milter.c - shared/milter.c: golden bytes for every command and
 * reply in both directions (doc 4.1 and Appendix A), framing limits and
 * malformed packets (doc 10.1 items 2-8), a stream split at every byte
 * offset, reply-text checks, the put functions' limits, the negotiation
 * matrix for both roles and the macro store.  Packets are decoded from
 * heap copies of exactly their size so ASan sees any over-read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xmalloc.h"
#include "milter.h"

/* A string literal as (bytes, length without the literal's own NUL). */
#define W(s) (const uint8_t *)(s), sizeof(s) - 1

/* One packet decoded from a heap copy of exactly its bytes. */
struct dec {
	uint8_t *copy;
	struct sl_milter_msg m;
	const char *error;
};

static int
decode_pkt(struct dec *d, uint8_t cmd, const uint8_t *data, size_t len,
    bool reply)
{
	struct sl_milter_packet pkt;
	int rc;

	d->copy = sl_xmalloc(len);
	if (len > 0)
		memcpy(d->copy, data, len);
	pkt.cmd = cmd;
	pkt.data = d->copy;
	pkt.len = len;
	d->error = NULL;
	if (reply)
		rc = sl_milter_decode_reply(&pkt, &d->m, &d->error);
	else
		rc = sl_milter_decode_command(&pkt, &d->m, &d->error);
	if (rc == -1)
		assert_non_null(d->error);
	else
		assert_int_equal(rc, 0);
	return rc;
}

/* Frames wire, which must be exactly one packet, and decodes it. */
static int
decode_wire(struct dec *d, const uint8_t *wire, size_t n, bool reply)
{
	struct sl_milter_packet pkt;
	const char *err;
	size_t used;
	int rc;

	d->copy = sl_xmalloc(n);
	memcpy(d->copy, wire, n);
	err = NULL;
	assert_int_equal(sl_milter_frame(d->copy, n, 0, &pkt, &used, &err), 1);
	assert_int_equal(used, n);
	d->error = NULL;
	if (reply)
		rc = sl_milter_decode_reply(&pkt, &d->m, &d->error);
	else
		rc = sl_milter_decode_command(&pkt, &d->m, &d->error);
	if (rc == -1)
		assert_non_null(d->error);
	return rc;
}

/* decode_wire() that must succeed. */
static void
decode_ok(struct dec *d, const uint8_t *wire, size_t n, bool reply)
{
	if (decode_wire(d, wire, n, reply) != 0)
		fail_msg("'%c' refused: %s", wire[4], d->error);
}

static void
dec_free(struct dec *d)
{
	free(d->copy);
	d->copy = NULL;
}

static void
dump(const char *what, const uint8_t *p, size_t n)
{
	size_t i;

	print_message("%s (%zu bytes):", what, n);
	for (i = 0; i < n && i < 200; i++)
		print_message(" %02x", p[i]);
	print_message("\n");
}

/* The buffer holds exactly wire; frees it. */
static void
expect_wire(struct sl_milter_buf *b, const uint8_t *wire, size_t n)
{
	if (b->len != n || memcmp(b->data, wire, n) != 0) {
		dump("got", b->data, b->len);
		dump("want", wire, n);
		fail_msg("encoded packet differs");
	}
	sl_milter_buf_free(b);
}

static void
expect_macros(const struct sl_milter_msg *m, const char *const *names,
    const char *const *values, size_t n)
{
	const char *name, *value;
	size_t pos, i;

	pos = 0;
	for (i = 0; i < n; i++) {
		assert_int_equal(sl_milter_macro_next(m, &pos, &name, &value),
		    1);
		assert_string_equal(name, names[i]);
		assert_string_equal(value, values[i]);
	}
	assert_int_equal(sl_milter_macro_next(m, &pos, &name, &value), 0);
}

/* --- golden commands (doc 4.1, Appendix A) ----------------------------- */

static const uint8_t postfix_offer[] = { 0x00, 0x00, 0x00, 0x0d, 0x4f, 0x00,
	0x00, 0x00, 0x06, 0x00, 0x00, 0x01, 0xff, 0x00, 0x1f, 0xff, 0xff };

static void
test_cmd_optneg(void **state)
{
	struct sl_milter_buf b = { 0 };
	struct dec d;

	(void)state;
	decode_ok(&d, postfix_offer, sizeof(postfix_offer), false);
	assert_int_equal(d.m.code, 'O');
	assert_int_equal(d.m.version, 6);
	assert_int_equal(d.m.actions, 0x1ff);
	assert_int_equal(d.m.protocol, 0x1fffff);
	dec_free(&d);
	assert_int_equal(
	    sl_milter_put_optneg(&b, 6, SL_SMFIF_ALL, SL_SMFIP_ALL, NULL), 0);
	expect_wire(&b, postfix_offer, sizeof(postfix_offer));
}

static void
test_cmd_macro(void **state)
{
	static const char *const names[] = { "j", "{daemon_name}",
		"{daemon_addr}", "v", "_" };
	static const char *const values[] = { "mta.test.example",
		"mta.test.example", "127.0.0.1", "Postfix 3.7.11",
		"unknown [127.0.0.1]" };
	static const char *const mnames[] = { "{mail_addr}", "{mail_host}",
		"{mail_mailer}" };
	static const char *const mvalues[] = { "", "mta.test.example",
		"discard" };
	static const char *const inames[] = { "i" };
	static const char *const ivalues[] = { "C56B1A7C039" };
	struct sl_milter_buf b = { 0 };
	struct dec d;

	(void)state;
	/* D C from Appendix A. */
	decode_ok(&d,
	    W("\0\0\0\x73"
	      "DCj\0mta.test.example\0{daemon_name}\0"
	      "mta.test.example\0{daemon_addr}\0"
	      "127.0.0.1\0v\0Postfix 3.7.11\0_\0"
	      "unknown [127.0.0.1]\0"),
	    false);
	assert_int_equal(d.m.stage, 'C');
	expect_macros(&d.m, names, values, 5);
	dec_free(&d);
	assert_int_equal(sl_milter_put_macros(&b, 'C', names, values, 5), 0);
	expect_wire(&b,
	    W("\0\0\0\x73"
	      "DCj\0mta.test.example\0{daemon_name}\0"
	      "mta.test.example\0{daemon_addr}\0"
	      "127.0.0.1\0v\0Postfix 3.7.11\0_\0"
	      "unknown [127.0.0.1]\0"));

	/* D H with no pairs. */
	decode_ok(&d,
	    W("\0\0\0\x02"
	      "DH"),
	    false);
	assert_int_equal(d.m.stage, 'H');
	assert_int_equal(d.m.nmacros_bytes, 0);
	expect_macros(&d.m, NULL, NULL, 0);
	dec_free(&d);
	assert_int_equal(sl_milter_put_macros(&b, 'H', NULL, NULL, 0), 0);
	expect_wire(&b,
	    W("\0\0\0\x02"
	      "DH"));

	/* The second message's D M: an empty value. */
	decode_ok(&d,
	    W("\0\0\0\x42"
	      "DM{mail_addr}\0\0{mail_host}\0"
	      "mta.test.example\0{mail_mailer}\0discard\0"),
	    false);
	expect_macros(&d.m, mnames, mvalues, 3);
	dec_free(&d);
	assert_int_equal(sl_milter_put_macros(&b, 'M', mnames, mvalues, 3), 0);
	expect_wire(&b,
	    W("\0\0\0\x42"
	      "DM{mail_addr}\0\0{mail_host}\0"
	      "mta.test.example\0{mail_mailer}\0discard\0"));

	/* D T i; a NULL value is left out. */
	decode_ok(&d,
	    W("\0\0\0\x10"
	      "DTi\0C56B1A7C039\0"),
	    false);
	expect_macros(&d.m, inames, ivalues, 1);
	dec_free(&d);
	{
		const char *const n2[] = { "i", "j" };
		const char *const v2[] = { "C56B1A7C039", NULL };

		assert_int_equal(sl_milter_put_macros(&b, 'T', n2, v2, 2), 0);
		expect_wire(&b,
		    W("\0\0\0\x10"
		      "DTi\0C56B1A7C039\0"));
	}
}

static void
test_cmd_connect(void **state)
{
	struct sl_milter_buf b = { 0 };
	struct dec d;

	(void)state;
	/* Appendix A: port 0xbd40 = 48448. */
	decode_ok(&d,
	    W("\0\0\0\x1a"
	      "C[127.0.0.1]\0"
	      "4\xbd@127.0.0.1\0"),
	    false);
	assert_string_equal(d.m.host, "[127.0.0.1]");
	assert_int_equal(d.m.family, '4');
	assert_int_equal(d.m.port, 48448);
	assert_string_equal(d.m.addr, "127.0.0.1");
	dec_free(&d);
	assert_int_equal(
	    sl_milter_put_connect(&b, "[127.0.0.1]", '4', 48448, "127.0.0.1"),
	    0);
	expect_wire(&b,
	    W("\0\0\0\x1a"
	      "C[127.0.0.1]\0"
	      "4\xbd@127.0.0.1\0"));

	/* Postfix's local submission: the packet ends after 'U'. */
	decode_ok(&d,
	    W("\0\0\0\x0c"
	      "Clocalhost\0U"),
	    false);
	assert_string_equal(d.m.host, "localhost");
	assert_int_equal(d.m.family, 'U');
	assert_int_equal(d.m.port, 0);
	assert_null(d.m.addr);
	dec_free(&d);
	assert_int_equal(
	    sl_milter_put_connect(&b, "localhost", 'U', 25, "ignored"), 0);
	expect_wire(&b,
	    W("\0\0\0\x0c"
	      "Clocalhost\0U"));

	/* IPv6, bare (Postfix) and with "IPv6:" (sendmail): text as sent. */
	decode_ok(&d,
	    W("\0\0\0\x0e"
	      "C[::1]\0"
	      "6\x00\x19::1\0"),
	    false);
	assert_int_equal(d.m.family, '6');
	assert_int_equal(d.m.port, 25);
	assert_string_equal(d.m.addr, "::1");
	dec_free(&d);
	assert_int_equal(sl_milter_put_connect(&b, "[::1]", '6', 25, "::1"), 0);
	expect_wire(&b,
	    W("\0\0\0\x0e"
	      "C[::1]\0"
	      "6\x00\x19::1\0"));
	decode_ok(&d,
	    W("\0\0\0\x13"
	      "C[::1]\0"
	      "6\x00\x19IPv6:::1\0"),
	    false);
	assert_string_equal(d.m.addr, "IPv6:::1");
	dec_free(&d);

	/* UNIX socket: port 0, a path. */
	decode_ok(&d,
	    W("\0\0\0\x1a"
	      "Clocalhost\0L\0\0/run/s.sock\0"),
	    false);
	assert_int_equal(d.m.family, 'L');
	assert_int_equal(d.m.port, 0);
	assert_string_equal(d.m.addr, "/run/s.sock");
	dec_free(&d);
	assert_int_equal(
	    sl_milter_put_connect(&b, "localhost", 'L', 0, "/run/s.sock"), 0);
	expect_wire(&b,
	    W("\0\0\0\x1a"
	      "Clocalhost\0L\0\0/run/s.sock\0"));

	/* The codec does not parse addresses: the session layer does. */
	decode_ok(&d,
	    W("\0\0\0\x10"
	      "Ch\0"
	      "4\0\x19"
	      "999.1.2.3\0"),
	    false);
	assert_string_equal(d.m.addr, "999.1.2.3");
	dec_free(&d);
}

static void
test_cmd_strings(void **state)
{
	static const char *const helo[] = { "client.helo.example" };
	static const char *const unk[] = { "XFOO" };
	static const char *const mail[] = { "<sender@example.org>", "SIZE=1000",
		"BODY=8BITMIME" };
	static const char *const rcpt[] = { "<rcpt1@example.com>",
		"NOTIFY=SUCCESS,FAILURE" };
	static const char *const null[] = { "<>" };
	static const char *const hdr[] = { "Subject", " two spaces" };
	static const char *const empty[] = { "X-Empty", "" };
	struct sl_milter_buf b = { 0 };
	struct dec d;

	(void)state;
	decode_ok(&d,
	    W("\0\0\0\x15"
	      "Hclient.helo.example\0"),
	    false);
	assert_string_equal(d.m.str, "client.helo.example");
	dec_free(&d);
	assert_int_equal(sl_milter_put_strings(&b, 'H', helo, 1), 0);
	expect_wire(&b,
	    W("\0\0\0\x15"
	      "Hclient.helo.example\0"));

	decode_ok(&d,
	    W("\0\0\0\x06"
	      "UXFOO\0"),
	    false);
	assert_string_equal(d.m.str, "XFOO");
	dec_free(&d);
	assert_int_equal(sl_milter_put_strings(&b, 'U', unk, 1), 0);
	expect_wire(&b,
	    W("\0\0\0\x06"
	      "UXFOO\0"));

	decode_ok(&d,
	    W("\0\0\0\x2e"
	      "M<sender@example.org>\0SIZE=1000\0"
	      "BODY=8BITMIME\0"),
	    false);
	assert_int_equal(d.m.argc, 3);
	assert_string_equal(d.m.argv[0], "<sender@example.org>");
	assert_string_equal(d.m.argv[1], "SIZE=1000");
	assert_string_equal(d.m.argv[2], "BODY=8BITMIME");
	dec_free(&d);
	assert_int_equal(sl_milter_put_strings(&b, 'M', mail, 3), 0);
	expect_wire(&b,
	    W("\0\0\0\x2e"
	      "M<sender@example.org>\0SIZE=1000\0BODY=8BITMIME\0"));

	decode_ok(&d,
	    W("\0\0\0\x04"
	      "M<>\0"),
	    false);
	assert_int_equal(d.m.argc, 1);
	assert_string_equal(d.m.argv[0], "<>");
	dec_free(&d);
	assert_int_equal(sl_milter_put_strings(&b, 'M', null, 1), 0);
	expect_wire(&b,
	    W("\0\0\0\x04"
	      "M<>\0"));

	decode_ok(&d,
	    W("\0\0\0\x2c"
	      "R<rcpt1@example.com>\0"
	      "NOTIFY=SUCCESS,FAILURE\0"),
	    false);
	assert_int_equal(d.m.argc, 2);
	assert_string_equal(d.m.argv[0], "<rcpt1@example.com>");
	assert_string_equal(d.m.argv[1], "NOTIFY=SUCCESS,FAILURE");
	dec_free(&d);
	assert_int_equal(sl_milter_put_strings(&b, 'R', rcpt, 2), 0);
	expect_wire(&b,
	    W("\0\0\0\x2c"
	      "R<rcpt1@example.com>\0NOTIFY=SUCCESS,FAILURE\0"));

	decode_ok(&d,
	    W("\0\0\0\x15"
	      "LSubject\0 two spaces\0"),
	    false);
	assert_string_equal(d.m.name, "Subject");
	assert_string_equal(d.m.value, " two spaces");
	dec_free(&d);
	assert_int_equal(sl_milter_put_strings(&b, 'L', hdr, 2), 0);
	expect_wire(&b,
	    W("\0\0\0\x15"
	      "LSubject\0 two spaces\0"));

	decode_ok(&d,
	    W("\0\0\0\x0a"
	      "LX-Empty\0\0"),
	    false);
	assert_string_equal(d.m.name, "X-Empty");
	assert_string_equal(d.m.value, "");
	dec_free(&d);
	assert_int_equal(sl_milter_put_strings(&b, 'L', empty, 2), 0);
	expect_wire(&b,
	    W("\0\0\0\x0a"
	      "LX-Empty\0\0"));

	/* A folded value keeps its LF and leading whitespace. */
	decode_ok(&d,
	    W("\0\0\0\x2a"
	      "LX-Folded\0first line\n\tsecond line\n"
	      "  third\0"),
	    false);
	assert_string_equal(d.m.value, "first line\n\tsecond line\n  third");
	dec_free(&d);
}

static void
test_cmd_empty_and_body(void **state)
{
	static const uint8_t codes[] = { 'T', 'N', 'E', 'A', 'Q', 'K' };
	struct sl_milter_buf b = { 0 };
	uint8_t wire[5] = { 0, 0, 0, 1, 0 };
	uint8_t *body, hdr[5];
	struct dec d;
	size_t i;

	(void)state;
	for (i = 0; i < SL_NELEM(codes); i++) {
		wire[4] = codes[i];
		decode_ok(&d, wire, sizeof(wire), false);
		assert_int_equal(d.m.code, codes[i]);
		assert_int_equal(d.m.len, 0);
		dec_free(&d);
		assert_int_equal(sl_milter_put_empty(&b, codes[i]), 0);
		expect_wire(&b, wire, sizeof(wire));
	}

	/* A small chunk, with a NUL in it. */
	decode_ok(&d,
	    W("\0\0\0\x0b"
	      "Bline\0one\r\n"),
	    false);
	assert_int_equal(d.m.len, 10);
	assert_memory_equal(d.m.data, "line\0one\r\n", 10);
	dec_free(&d);
	assert_int_equal(
	    sl_milter_put_body(&b, 'B', (const uint8_t *)"line\0one\r\n", 10),
	    0);
	expect_wire(&b,
	    W("\0\0\0\x0b"
	      "Bline\0one\r\n"));

	/* E with data: given to the caller as a last chunk. */
	decode_ok(&d,
	    W("\0\0\0\x04"
	      "Eend"),
	    false);
	assert_int_equal(d.m.len, 3);
	assert_memory_equal(d.m.data, "end", 3);
	dec_free(&d);

	/*
	 * Appendix A's 70 KB body: 00 01 00 00 B (65535 bytes), then
	 * 00 00 11 94 B (4499 bytes).
	 */
	body = sl_xmalloc(65535 + 4499);
	memset(body, 'y', 65535 + 4499);
	assert_int_equal(sl_milter_put_body(&b, 'B', body, 65535 + 4499), 0);
	assert_int_equal(b.len, 5 + 65535 + 5 + 4499);
	memcpy(hdr,
	    "\x00\x01\x00\x00"
	    "B",
	    5);
	assert_memory_equal(b.data, hdr, 5);
	memcpy(hdr,
	    "\x00\x00\x11\x94"
	    "B",
	    5);
	assert_memory_equal(b.data + 5 + 65535, hdr, 5);
	assert_memory_equal(b.data + 5, body, 65535);
	assert_memory_equal(b.data + 10 + 65535, body, 4499);
	sl_milter_buf_free(&b);
	free(body);
}

/* --- golden replies ------------------------------------------------------ */

static void
test_reply_optneg(void **state)
{
	static const uint8_t answer[] = { 0x00, 0x00, 0x00, 0x0d, 0x4f, 0x00,
		0x00, 0x00, 0x06, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00, 0x00,
		0x00 };
	const char *lists[SL_SMFIM_MAX] = { 0 };
	struct sl_milter_buf b = { 0 };
	struct dec d;
	size_t i;

	(void)state;
	decode_ok(&d, answer, sizeof(answer), true);
	assert_int_equal(d.m.version, 6);
	assert_int_equal(d.m.actions, 0x1ff);
	assert_int_equal(d.m.protocol, 0);
	for (i = 0; i < SL_SMFIM_MAX; i++)
		assert_null(d.m.symlist[i]);
	dec_free(&d);
	assert_int_equal(sl_milter_put_optneg(&b, 6, 0x1ff, 0, NULL), 0);
	expect_wire(&b, answer, sizeof(answer));
	assert_int_equal(sl_milter_put_optneg(&b, 6, 0x1ff, 0, lists), 0);
	expect_wire(&b, answer, sizeof(answer));

	/* Doc 4.1: actions 0x101, protocol 0x482, lists for 0 and 5. */
	decode_ok(&d,
	    W("\0\0\0\x30"
	      "O\0\0\0\x06\0\0\x01\x01\0\0\x04\x82"
	      "\0\0\0\0j {client_addr}\0"
	      "\0\0\0\x05i {msg_id}\0"),
	    true);
	assert_int_equal(d.m.version, 6);
	assert_int_equal(d.m.actions, 0x101);
	assert_int_equal(d.m.protocol, 0x482);
	assert_string_equal(d.m.symlist[SL_SMFIM_CONNECT], "j {client_addr}");
	assert_string_equal(d.m.symlist[SL_SMFIM_EOM], "i {msg_id}");
	assert_null(d.m.symlist[SL_SMFIM_HELO]);
	assert_null(d.m.symlist[SL_SMFIM_EOH]);
	dec_free(&d);
	lists[SL_SMFIM_CONNECT] = "j {client_addr}";
	lists[SL_SMFIM_EOM] = "i {msg_id}";
	assert_int_equal(sl_milter_put_optneg(&b, 6, 0x101, 0x482, lists), 0);
	expect_wire(&b,
	    W("\0\0\0\x30"
	      "O\0\0\0\x06\0\0\x01\x01\0\0\x04\x82"
	      "\0\0\0\0j {client_addr}\0"
	      "\0\0\0\x05i {msg_id}\0"));

	/* An empty list ("send nothing") for stage 6. */
	decode_ok(&d,
	    W("\0\0\0\x12"
	      "O\0\0\0\x06\0\0\0\0\0\0\0\0"
	      "\0\0\0\x06\0"),
	    true);
	assert_string_equal(d.m.symlist[SL_SMFIM_EOH], "");
	dec_free(&d);
}

static void
test_reply_empty(void **state)
{
	static const uint8_t codes[] = { 'c', 'a', 'r', 't', 'd', 's', 'p',
		'4' };
	struct sl_milter_buf b = { 0 };
	uint8_t wire[5] = { 0, 0, 0, 1, 0 };
	struct dec d;
	size_t i;

	(void)state;
	for (i = 0; i < SL_NELEM(codes); i++) {
		wire[4] = codes[i];
		decode_ok(&d, wire, sizeof(wire), true);
		assert_int_equal(d.m.code, codes[i]);
		dec_free(&d);
		assert_int_equal(sl_milter_put_empty(&b, codes[i]), 0);
		expect_wire(&b, wire, sizeof(wire));
	}
}

static void
test_reply_replycode(void **state)
{
	struct sl_milter_buf b = { 0 };
	struct dec d;

	(void)state;
	decode_ok(&d,
	    W("\0\0\0\x1b"
	      "y550 5.7.1 Message refused\0"),
	    true);
	assert_string_equal(d.m.str, "550 5.7.1 Message refused");
	dec_free(&d);
	assert_int_equal(
	    sl_milter_put_reply(&b, 550, "5.7.1", "Message refused"), 0);
	expect_wire(&b,
	    W("\0\0\0\x1b"
	      "y550 5.7.1 Message refused\0"));

	decode_ok(&d,
	    W("\0\0\0\x3e"
	      "y451-4.7.1 line one\r\n451-4.7.1 line two"
	      "\r\n451 4.7.1 line three\0"),
	    true);
	assert_string_equal(d.m.str,
	    "451-4.7.1 line one\r\n451-4.7.1 line two\r\n451 4.7.1 line "
	    "three");
	dec_free(&d);
	assert_int_equal(sl_milter_put_reply(&b, 451, "4.7.1",
	                     "line one\nline two\nline three"),
	    0);
	expect_wire(&b,
	    W("\0\0\0\x3e"
	      "y451-4.7.1 line one\r\n451-4.7.1 line two"
	      "\r\n451 4.7.1 line three\0"));
}

static void
test_reply_edits(void **state)
{
	static const char *const addh[] = { "X-Added", "added value" };
	static const char *const from[] = { "<new@example.org>" };
	static const char *const from2[] = { "<new@example.org>",
		"RET=HDRS ENVID=x" };
	static const char *const rcpt2[] = { "<r@example.org>",
		"NOTIFY=NEVER" };
	static const char *const rcpt[] = { "<r@example.org>" };
	static const char *const reason[] = { "held for review" };
	struct sl_milter_buf b = { 0 };
	struct dec d;

	(void)state;
	decode_ok(&d,
	    W("\0\0\0\x15"
	      "hX-Added\0added value\0"),
	    true);
	assert_string_equal(d.m.name, "X-Added");
	assert_string_equal(d.m.value, "added value");
	dec_free(&d);
	assert_int_equal(sl_milter_put_strings(&b, 'h', addh, 2), 0);
	expect_wire(&b,
	    W("\0\0\0\x15"
	      "hX-Added\0added value\0"));

	decode_ok(&d,
	    W("\0\0\0\x14"
	      "i\0\0\0\0X-Ins0\0at zero\0"),
	    true);
	assert_int_equal(d.m.index, 0);
	assert_string_equal(d.m.name, "X-Ins0");
	assert_string_equal(d.m.value, "at zero");
	dec_free(&d);
	assert_int_equal(sl_milter_put_index(&b, 'i', 0, "X-Ins0", "at zero"),
	    0);
	expect_wire(&b,
	    W("\0\0\0\x14"
	      "i\0\0\0\0X-Ins0\0at zero\0"));

	/* CHGHEADER with an empty value deletes. */
	decode_ok(&d,
	    W("\0\0\0\x0c"
	      "m\0\0\0\x02X-Dup\0\0"),
	    true);
	assert_int_equal(d.m.index, 2);
	assert_string_equal(d.m.name, "X-Dup");
	assert_string_equal(d.m.value, "");
	dec_free(&d);
	assert_int_equal(sl_milter_put_index(&b, 'm', 2, "X-Dup", ""), 0);
	expect_wire(&b,
	    W("\0\0\0\x0c"
	      "m\0\0\0\x02X-Dup\0\0"));
	assert_int_equal(sl_milter_put_index(&b, 'm', 0x01020304, "S", "v"), 0);
	expect_wire(&b,
	    W("\0\0\0\x09"
	      "m\x01\x02\x03\x04S\0v\0"));

	decode_ok(&d,
	    W("\0\0\0\x13"
	      "e<new@example.org>\0"),
	    true);
	assert_string_equal(d.m.str, "<new@example.org>");
	assert_null(d.m.args);
	dec_free(&d);
	assert_int_equal(sl_milter_put_strings(&b, 'e', from, 1), 0);
	expect_wire(&b,
	    W("\0\0\0\x13"
	      "e<new@example.org>\0"));
	decode_ok(&d,
	    W("\0\0\0\x24"
	      "e<new@example.org>\0RET=HDRS ENVID=x\0"),
	    true);
	assert_string_equal(d.m.args, "RET=HDRS ENVID=x");
	dec_free(&d);
	assert_int_equal(sl_milter_put_strings(&b, 'e', from2, 2), 0);
	expect_wire(&b,
	    W("\0\0\0\x24"
	      "e<new@example.org>\0RET=HDRS ENVID=x\0"));

	decode_ok(&d,
	    W("\0\0\0\x1e"
	      "2<r@example.org>\0NOTIFY=NEVER\0"),
	    true);
	assert_string_equal(d.m.str, "<r@example.org>");
	assert_string_equal(d.m.args, "NOTIFY=NEVER");
	dec_free(&d);
	assert_int_equal(sl_milter_put_strings(&b, '2', rcpt2, 2), 0);
	expect_wire(&b,
	    W("\0\0\0\x1e"
	      "2<r@example.org>\0NOTIFY=NEVER\0"));
	assert_int_equal(sl_milter_put_strings(&b, '2', rcpt, 1), 0);
	expect_wire(&b,
	    W("\0\0\0\x11"
	      "2<r@example.org>\0"));

	decode_ok(&d,
	    W("\0\0\0\x11"
	      "+<r@example.org>\0"),
	    true);
	assert_string_equal(d.m.str, "<r@example.org>");
	dec_free(&d);
	assert_int_equal(sl_milter_put_strings(&b, '+', rcpt, 1), 0);
	expect_wire(&b,
	    W("\0\0\0\x11"
	      "+<r@example.org>\0"));
	decode_ok(&d,
	    W("\0\0\0\x11"
	      "-<r@example.org>\0"),
	    true);
	assert_string_equal(d.m.str, "<r@example.org>");
	dec_free(&d);
	assert_int_equal(sl_milter_put_strings(&b, '-', rcpt, 1), 0);
	expect_wire(&b,
	    W("\0\0\0\x11"
	      "-<r@example.org>\0"));

	decode_ok(&d,
	    W("\0\0\0\x11"
	      "qheld for review\0"),
	    true);
	assert_string_equal(d.m.str, "held for review");
	dec_free(&d);
	assert_int_equal(sl_milter_put_strings(&b, 'q', reason, 1), 0);
	expect_wire(&b,
	    W("\0\0\0\x11"
	      "qheld for review\0"));

	/* REPLBODY: raw bytes, and one empty packet for an empty body. */
	decode_ok(&d,
	    W("\0\0\0\x07"
	      "bnew\0\r\n"),
	    true);
	assert_int_equal(d.m.len, 6);
	assert_memory_equal(d.m.data, "new\0\r\n", 6);
	dec_free(&d);
	assert_int_equal(
	    sl_milter_put_body(&b, 'b', (const uint8_t *)"new\0\r\n", 6), 0);
	expect_wire(&b,
	    W("\0\0\0\x07"
	      "bnew\0\r\n"));
	decode_ok(&d,
	    W("\0\0\0\x01"
	      "b"),
	    true);
	assert_int_equal(d.m.len, 0);
	dec_free(&d);
	assert_int_equal(sl_milter_put_body(&b, 'b', NULL, 0), 0);
	expect_wire(&b,
	    W("\0\0\0\x01"
	      "b"));
	/* An empty BODY is no packet at all. */
	assert_int_equal(sl_milter_put_body(&b, 'B', NULL, 0), 0);
	assert_int_equal(b.len, 0);
}

/* --- framing ------------------------------------------------------------ */

static void
set_len(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Frames a 'B' packet of n data bytes against max; the whole packet is
 * present only when complete is true (the header alone otherwise). */
static int
frame_size(size_t n, size_t max, bool complete, const char **err)
{
	struct sl_milter_packet pkt;
	size_t used, total;
	uint8_t *p;
	int rc;

	total = complete ? 5 + n : 5;
	p = sl_xcalloc(1, total);
	set_len(p, (uint32_t)(n + 1));
	p[4] = 'B';
	rc = sl_milter_frame(p, total, max, &pkt, &used, err);
	if (rc == 1) {
		assert_int_equal(used, 5 + n);
		assert_int_equal(pkt.len, n);
		assert_int_equal(pkt.cmd, 'B');
		assert_ptr_equal(pkt.data, p + 5);
	} else
		assert_int_equal(used, 0);
	free(p);
	return rc;
}

static void
test_frame_sizes(void **state)
{
	static const size_t ok64k[] = { 0, 1, 65534, 65535 };
	const char *err;
	size_t i;

	(void)state;
	for (i = 0; i < SL_NELEM(ok64k); i++)
		assert_int_equal(frame_size(ok64k[i], 65535, true, &err), 1);
	err = NULL;
	/* Refused on the header alone: nothing of that size is needed. */
	assert_int_equal(frame_size(65536, 65535, false, &err), -1);
	assert_non_null(err);
	/* MDS sizes, and the default cap (1048575). */
	assert_int_equal(frame_size(262143, 262143, true, &err), 1);
	assert_int_equal(frame_size(262144, 262143, false, &err), -1);
	assert_int_equal(frame_size(1048575, 0, true, &err), 1);
	assert_int_equal(frame_size(1048576, 0, false, &err), -1);
	assert_int_equal(frame_size(1048575, 1048575, true, &err), 1);
	assert_int_equal(frame_size(65536, 0, true, &err), 1);
	/* Complete header but partial data: more input needed. */
	assert_int_equal(frame_size(100, 0, false, &err), 0);
}

static void
test_frame_bad_len(void **state)
{
	static const uint32_t bad[] = { 0, 0x80000000u, 0xffffffffu,
		0x00100001u };
	struct sl_milter_packet pkt;
	uint8_t hdr[5];
	const char *err;
	size_t i, used;
	struct dec d;

	(void)state;
	for (i = 0; i < SL_NELEM(bad); i++) {
		set_len(hdr, bad[i]);
		hdr[4] = 'B';
		err = NULL;
		used = 99;
		/* The length alone (4 bytes) is enough to refuse. */
		assert_int_equal(sl_milter_frame(hdr, 4, 0, &pkt, &used, &err),
		    -1);
		assert_non_null(err);
		assert_int_equal(used, 0);
		assert_int_equal(sl_milter_frame(hdr, 5, 0, &pkt, &used, &err),
		    -1);
	}
	/* Fewer than 4 bytes: wait, whatever they are. */
	for (i = 0; i < 4; i++) {
		used = 99;
		assert_int_equal(sl_milter_frame((const uint8_t *)"\0\0\0", i,
		                     0, &pkt, &used, &err),
		    0);
		assert_int_equal(used, 0);
	}
	/* len 1 with an unknown code frames, and fails to decode. */
	assert_int_equal(decode_wire(&d,
	                     W("\0\0\0\x01"
	                       "Z"),
	                     false),
	    -1);
	dec_free(&d);
	assert_int_equal(decode_wire(&d,
	                     W("\0\0\0\x01"
	                       "Z"),
	                     true),
	    -1);
	dec_free(&d);
}

/* Packets as framed: command, and a copy of the data. */
struct got {
	uint8_t cmd;
	size_t len;
	uint8_t *data;
};

struct receiver {
	uint8_t *pend;
	size_t plen;
	struct got *got;
	size_t ngot, maxgot;
};

/* Appends a piece of input and takes out every complete packet. */
static void
recv_piece(struct receiver *r, const uint8_t *p, size_t n)
{
	struct sl_milter_packet pkt;
	struct sl_milter_msg m;
	const char *err;
	uint8_t *copy;
	size_t used;
	int rc;

	r->pend = sl_xrealloc(r->pend, r->plen + n);
	memcpy(r->pend + r->plen, p, n);
	r->plen += n;
	for (;;) {
		/* An exact-size copy, so that reading past plen is seen. */
		copy = sl_xmalloc(r->plen);
		memcpy(copy, r->pend, r->plen);
		err = NULL;
		rc = sl_milter_frame(copy, r->plen, 0, &pkt, &used, &err);
		if (rc == 0) {
			assert_int_equal(used, 0);
			free(copy);
			return;
		}
		assert_int_equal(rc, 1);
		assert_int_equal(sl_milter_decode_command(&pkt, &m, &err), 0);
		assert_true(r->ngot < r->maxgot);
		r->got[r->ngot].cmd = pkt.cmd;
		r->got[r->ngot].len = pkt.len;
		r->got[r->ngot].data = sl_xmalloc(pkt.len);
		memcpy(r->got[r->ngot].data, pkt.data, pkt.len);
		r->ngot++;
		free(copy);
		memmove(r->pend, r->pend + used, r->plen - used);
		r->plen -= used;
	}
}

static void
recv_free(struct receiver *r)
{
	size_t i;

	for (i = 0; i < r->ngot; i++)
		free(r->got[i].data);
	free(r->got);
	free(r->pend);
}

static void
expect_same(const struct receiver *a, const struct receiver *b)
{
	size_t i;

	assert_int_equal(a->ngot, b->ngot);
	assert_int_equal(a->plen, 0);
	assert_int_equal(b->plen, 0);
	for (i = 0; i < a->ngot; i++) {
		assert_int_equal(a->got[i].cmd, b->got[i].cmd);
		assert_int_equal(a->got[i].len, b->got[i].len);
		assert_memory_equal(a->got[i].data, b->got[i].data,
		    a->got[i].len);
	}
}

static void
receiver_init(struct receiver *r)
{
	memset(r, 0, sizeof(*r));
	r->maxgot = 64;
	r->got = sl_xcalloc(r->maxgot, sizeof(*r->got));
}

/* Appendix A, start to end, as one stream. */
static uint8_t *
session_stream(size_t *n_r)
{
	struct sl_milter_buf b = { 0 };
	static const char *const cn[] = { "j", "{daemon_name}", "v" };
	static const char *const cv[] = { "mta.test.example",
		"mta.test.example", "Postfix 3.7.11" };
	static const char *const helo[] = { "client.helo.example" };
	static const char *const unk[] = { "XFOO" };
	static const char *const mail[] = { "<sender@example.org>", "SIZE=1000",
		"BODY=8BITMIME" };
	static const char *const rcpt[] = { "<rcpt1@example.com>" };
	static const char *const in[] = { "i" };
	static const char *const iv[] = { "C56B1A7C039" };
	static const char *const hdr[] = { "Subject", " two spaces" };
	static const char *const nul[] = { "<>" };
	uint8_t *p;

	assert_int_equal(
	    sl_milter_put_optneg(&b, 6, SL_SMFIF_ALL, SL_SMFIP_ALL, NULL), 0);
	assert_int_equal(sl_milter_put_macros(&b, 'C', cn, cv, 3), 0);
	assert_int_equal(
	    sl_milter_put_connect(&b, "[127.0.0.1]", '4', 48448, "127.0.0.1"),
	    0);
	assert_int_equal(sl_milter_put_macros(&b, 'H', NULL, NULL, 0), 0);
	assert_int_equal(sl_milter_put_strings(&b, 'H', helo, 1), 0);
	assert_int_equal(sl_milter_put_macros(&b, 'U', NULL, NULL, 0), 0);
	assert_int_equal(sl_milter_put_strings(&b, 'U', unk, 1), 0);
	assert_int_equal(sl_milter_put_strings(&b, 'M', mail, 3), 0);
	assert_int_equal(sl_milter_put_strings(&b, 'R', rcpt, 1), 0);
	assert_int_equal(sl_milter_put_macros(&b, 'T', in, iv, 1), 0);
	assert_int_equal(sl_milter_put_empty(&b, 'T'), 0);
	assert_int_equal(sl_milter_put_strings(&b, 'L', hdr, 2), 0);
	assert_int_equal(sl_milter_put_empty(&b, 'N'), 0);
	assert_int_equal(sl_milter_put_body(&b, 'B',
	                     (const uint8_t *)"line one\r\n\0x\r\n", 14),
	    0);
	assert_int_equal(sl_milter_put_empty(&b, 'E'), 0);
	assert_int_equal(sl_milter_put(&b, 'E', "tail", 4), 0);
	assert_int_equal(sl_milter_put_empty(&b, 'A'), 0);
	assert_int_equal(sl_milter_put_strings(&b, 'M', nul, 1), 0);
	assert_int_equal(sl_milter_put_empty(&b, 'A'), 0);
	assert_int_equal(sl_milter_put_empty(&b, 'K'), 0);
	assert_int_equal(sl_milter_put_connect(&b, "localhost", 'U', 0, NULL),
	    0);
	assert_int_equal(sl_milter_put_empty(&b, 'Q'), 0);
	*n_r = b.len;
	p = sl_xmalloc(b.len);
	memcpy(p, b.data, b.len);
	sl_milter_buf_free(&b);
	return p;
}

static void
test_frame_split(void **state)
{
	struct receiver whole, r;
	uint8_t *stream;
	size_t n, k, i;

	(void)state;
	stream = session_stream(&n);
	receiver_init(&whole);
	recv_piece(&whole, stream, n);
	assert_int_equal(whole.ngot, 22);
	assert_int_equal(whole.got[0].cmd, 'O');
	assert_int_equal(whole.got[21].cmd, 'Q');

	/* Two reads, split at every offset. */
	for (k = 0; k <= n; k++) {
		receiver_init(&r);
		recv_piece(&r, stream, k);
		recv_piece(&r, stream + k, n - k);
		expect_same(&whole, &r);
		recv_free(&r);
	}
	/* One byte per read. */
	receiver_init(&r);
	for (i = 0; i < n; i++)
		recv_piece(&r, stream + i, 1);
	expect_same(&whole, &r);
	recv_free(&r);

	/* EOF inside a length or inside the data: nothing framed yet. */
	receiver_init(&r);
	recv_piece(&r, stream, 2);
	assert_int_equal(r.ngot, 0);
	assert_int_equal(r.plen, 2);
	recv_free(&r);
	receiver_init(&r);
	recv_piece(&r, stream, sizeof(postfix_offer) + 7);
	assert_int_equal(r.ngot, 1);
	assert_int_equal(r.plen, 7);
	recv_free(&r);

	recv_free(&whole);
	free(stream);
}

/* --- cursor --------------------------------------------------------------- */

static void
test_cursor(void **state)
{
	static const uint8_t in[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
		'a', 'b', 0, 'c' };
	struct sl_cursor c;
	const char *s;
	uint32_t v32;
	uint16_t v16;
	uint8_t v8;

	(void)state;
	sl_cursor_init(&c, in, sizeof(in));
	assert_int_equal(sl_cursor_left(&c), 11);
	assert_int_equal(sl_cursor_u8(&c, &v8), 0);
	assert_int_equal(v8, 0x01);
	assert_int_equal(sl_cursor_u16(&c, &v16), 0);
	assert_int_equal(v16, 0x0203);
	assert_int_equal(sl_cursor_u32(&c, &v32), 0);
	assert_int_equal(v32, 0x04050607);
	assert_int_equal(sl_cursor_str(&c, &s), 0);
	assert_string_equal(s, "ab");
	assert_false(sl_cursor_at_end(&c));
	/* "c" has no NUL: refused, cursor unmoved. */
	assert_int_equal(sl_cursor_str(&c, &s), -1);
	assert_int_equal(sl_cursor_left(&c), 1);
	assert_int_equal(sl_cursor_u16(&c, &v16), -1);
	assert_int_equal(sl_cursor_u32(&c, &v32), -1);
	assert_int_equal(sl_cursor_u8(&c, &v8), 0);
	assert_true(sl_cursor_at_end(&c));
	assert_int_equal(sl_cursor_u8(&c, &v8), -1);
	assert_int_equal(sl_cursor_str(&c, &s), -1);

	/* Three bytes are not a uint32. */
	sl_cursor_init(&c, in, 3);
	assert_int_equal(sl_cursor_u32(&c, &v32), -1);
	assert_int_equal(sl_cursor_left(&c), 3);
	sl_cursor_init(&c, NULL, 0);
	assert_true(sl_cursor_at_end(&c));
	assert_int_equal(sl_cursor_left(&c), 0);
	assert_int_equal(sl_cursor_u8(&c, &v8), -1);
	assert_int_equal(sl_cursor_str(&c, &s), -1);
}

/* --- malformed packets (doc 10.1 items 4-8) ---------------------------- */

struct bad {
	uint8_t code;
	const char *data;
	size_t len;
};

#define BAD(c, s)                                                              \
	{                                                                      \
		c, s, sizeof(s) - 1                                            \
	}

static const struct bad bad_commands[] = {
	BAD('Z', ""),
	BAD('z', "x"),
	BAD('c', ""), /* a reply code is no command */
	/* OPTNEG: exactly 12 bytes. */
	BAD('O', ""),
	BAD('O', "\0\0\0\x06\0\0\x01\xff\0\x1f\xff"),
	BAD('O', "\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff\0"),
	/* MACRO. */
	BAD('D', ""),
	BAD('D', "Cj\0"),
	BAD('D', "Cj\0v\0k\0"),
	BAD('D', "Cj"),
	BAD('D', "Cj\0v"),
	/* CONNECT. */
	BAD('C', ""),
	BAD('C', "host"),
	BAD('C', "host\0"),
	BAD('C',
	    "host\0"
	    "4"),
	BAD('C',
	    "host\0"
	    "4\x01"),
	BAD('C',
	    "host\0"
	    "4\0\x19"),
	BAD('C',
	    "host\0"
	    "4\0\x19"
	    "1.2.3.4"),
	BAD('C',
	    "host\0"
	    "4\0\x19"
	    "1.2.3.4\0x"),
	BAD('C',
	    "host\0"
	    "X\0\x19"
	    "1.2.3.4\0"),
	BAD('C',
	    "host\0"
	    "4\0\x19"
	    "1.2.3.4\0\0"),
	BAD('C', "host\0Ux"),
	BAD('C', "host\0U\0"),
	BAD('C',
	    "host\0"
	    "6\0\x19::1"),
	BAD('C', "host\0L\0\0/path"),
	/* HELO, UNKNOWN. */
	BAD('H', ""),
	BAD('H', "client"),
	BAD('H', "client\0x"),
	BAD('H', "client\0\0"),
	BAD('U', "XFOO"),
	BAD('U', "XFOO\0bar\0"),
	/* MAIL, RCPT. */
	BAD('M', ""),
	BAD('M', "<a@b>"),
	BAD('M', "<a@b>\0SIZE=1"),
	BAD('R', ""),
	BAD('R', "<a@b>"),
	/* HEADER. */
	BAD('L', ""),
	BAD('L', "Subject"),
	BAD('L', "Subject\0"),
	BAD('L', "Subject\0value"),
	BAD('L', "Subject\0value\0x"),
	BAD('L', "Subject\0value\0\0"),
	BAD('L', "\0value\0"),
	/* Commands that take no data. */
	BAD('T', "x"),
	BAD('N', "x"),
	BAD('A', "x"),
	BAD('Q', "x"),
	BAD('K', "\0"),
};

static void
test_bad_commands(void **state)
{
	struct dec d;
	size_t i;

	(void)state;
	for (i = 0; i < SL_NELEM(bad_commands); i++) {
		if (decode_pkt(&d, bad_commands[i].code,
		        (const uint8_t *)bad_commands[i].data,
		        bad_commands[i].len, false) != -1)
			fail_msg("bad command %zu ('%c') accepted", i,
			    bad_commands[i].code);
		dec_free(&d);
	}
}

static const struct bad bad_replies[] = {
	BAD('Z', ""),
	BAD('f', ""), /* CONN_FAIL: reserved */
	BAD('l', ""), /* SETSYMLIST: never on the wire */
	BAD('T', ""), /* a command code is no reply */
	/* Replies that take no data. */
	BAD('c', "x"),
	BAD('a', "\0"),
	BAD('r', "x"),
	BAD('t', "x"),
	BAD('d', "x"),
	BAD('s', "x"),
	BAD('p', "x"),
	BAD('4', "x"),
	/* OPTNEG answer: short, and bad macro-list tails. */
	BAD('O', ""),
	BAD('O', "\0\0\0\x06\0\0\x01\xff\0\0\0"),
	BAD('O', "\0\0\0\x06\0\0\x01\xff\0\0\0\0\0"),
	BAD('O', "\0\0\0\x06\0\0\x01\xff\0\0\0\0\0\0\0"),
	BAD('O', "\0\0\0\x06\0\0\x01\xff\0\0\0\0\0\0\0\0"),
	BAD('O', "\0\0\0\x06\0\0\x01\xff\0\0\0\0\0\0\0\0j"),
	BAD('O', "\0\0\0\x06\0\0\x01\xff\0\0\0\0\0\0\0\x07j\0"),
	BAD('O', "\0\0\0\x06\0\0\x01\xff\0\0\0\0\xff\xff\xff\xffj\0"),
	BAD('O',
	    "\0\0\0\x06\0\0\x01\xff\0\0\0\0\0\0\0\x01j\0"
	    "\0\0\0\x01i\0"),
	BAD('O', "\0\0\0\x06\0\0\x01\xff\0\0\0\0\0\0\0\x01j\0\0"),
	/* REPLYCODE. */
	BAD('y', ""),
	BAD('y', "550 5.7.1 no NUL"),
	BAD('y', "550 5.7.1 a\0b\0"),
	BAD('y', "550 5.7.1 a\0\0"),
	BAD('y', "550-5.7.1 a\n550 5.7.1 b\0"),
	BAD('y', "250 2.0.0 ok\0"),
	BAD('y', "550 4.7.1 wrong class\0"),
	BAD('y', "\0"),
	/* Header edits. */
	BAD('h', ""),
	BAD('h', "X-A"),
	BAD('h', "X-A\0"),
	BAD('h', "X-A\0v"),
	BAD('h', "\0v\0"),
	BAD('h', "X-A\0v\0x"),
	BAD('i', "\0\0\0"),
	BAD('i', "\0\0\0\0"),
	BAD('i', "\0\0\0\0X\0"),
	BAD('i', "\0\0\0\0\0v\0"),
	BAD('m', "\0\0\0\x01X-A\0v"),
	BAD('m', "\0\0\0\x01\0\0"),
	BAD('m', "\0\0\0\x01X-A\0v\0\0"),
	/* Envelope edits. */
	BAD('e', ""),
	BAD('e', "\0"),
	BAD('e', "<a@b>"),
	BAD('e', "<a@b>\0RET=HDRS"),
	BAD('e', "<a@b>\0RET=HDRS\0x\0"),
	BAD('2', "\0"),
	BAD('2', "<a@b>\0a\0b\0"),
	BAD('+', ""),
	BAD('+', "\0"),
	BAD('+', "<a@b>"),
	BAD('+', "<a@b>\0x\0"),
	BAD('-', "\0"),
	BAD('-', "<a@b>\0\0"),
	BAD('q', ""),
	BAD('q', "\0"),
	BAD('q', "reason"),
	BAD('q', "reason\0x"),
};

static void
test_bad_replies(void **state)
{
	struct dec d;
	size_t i;

	(void)state;
	for (i = 0; i < SL_NELEM(bad_replies); i++) {
		if (decode_pkt(&d, bad_replies[i].code,
		        (const uint8_t *)bad_replies[i].data,
		        bad_replies[i].len, true) != -1)
			fail_msg("bad reply %zu ('%c') accepted", i,
			    bad_replies[i].code);
		dec_free(&d);
	}
}

static void
test_macro_edges(void **state)
{
	static const char *const names[] = { "", "{x}", "{x}" };
	static const char *const values[] = { "empty name", "1", "2" };
	const char *n, *v;
	struct dec d;
	uint8_t *data;
	size_t i, pos;

	(void)state;
	/* Unknown stage byte and empty names: decoded, pairs intact. */
	assert_int_equal(decode_pkt(&d, 'D',
	                     W("\x7f\0empty name\0{x}\0"
	                       "1\0{x}\0"
	                       "2\0"),
	                     false),
	    0);
	assert_int_equal(d.m.stage, 0x7f);
	expect_macros(&d.m, names, values, 3);
	dec_free(&d);

	/* 10 000 pairs. */
	data = sl_xmalloc(1 + 10000 * 4);
	data[0] = 'E';
	for (i = 0; i < 10000; i++)
		memcpy(data + 1 + i * 4, "a\0b", 4);
	assert_int_equal(decode_pkt(&d, 'D', data, 1 + 10000 * 4, false), 0);
	pos = 0;
	for (i = 0; sl_milter_macro_next(&d.m, &pos, &n, &v) == 1; i++) {
		assert_string_equal(n, "a");
		assert_string_equal(v, "b");
	}
	assert_int_equal(i, 10000);
	dec_free(&d);
	/* ... and one string more. */
	data[1 + 10000 * 4 - 1] = 'x';
	assert_int_equal(decode_pkt(&d, 'D', data, 1 + 10000 * 4, false), -1);
	dec_free(&d);
	free(data);
}

static void
test_argv_limits(void **state)
{
	const char *argv[SL_MILTER_MAX_ARGS + 1];
	struct sl_milter_buf b = { 0 };
	struct sl_milter_packet pkt;
	const char *err;
	size_t i, used;
	struct dec d;

	(void)state;
	argv[0] = "<a@example.org>";
	for (i = 1; i <= SL_MILTER_MAX_ARGS; i++)
		argv[i] = "X=1";
	assert_int_equal(
	    sl_milter_put_strings(&b, 'R', argv, SL_MILTER_MAX_ARGS + 1), -1);
	assert_int_equal(b.len, 0);
	assert_int_equal(
	    sl_milter_put_strings(&b, 'R', argv, SL_MILTER_MAX_ARGS), 0);
	assert_int_equal(sl_milter_frame(b.data, b.len, 0, &pkt, &used, &err),
	    1);
	assert_int_equal(decode_pkt(&d, 'R', pkt.data, pkt.len, false), 0);
	assert_int_equal(d.m.argc, SL_MILTER_MAX_ARGS);
	assert_string_equal(d.m.argv[0], "<a@example.org>");
	assert_string_equal(d.m.argv[SL_MILTER_MAX_ARGS - 1], "X=1");
	dec_free(&d);
	/* 65 strings on the wire. */
	sl_milter_buf_free(&b);
	{
		uint8_t data[16 + 4 * SL_MILTER_MAX_ARGS];

		memcpy(data, "<a@example.org>", 16);
		for (i = 0; i < SL_MILTER_MAX_ARGS; i++)
			memcpy(data + 16 + 4 * i, "X=1", 4);
		assert_int_equal(decode_pkt(&d, 'M', data, sizeof(data), false),
		    -1);
		dec_free(&d);
		assert_int_equal(
		    decode_pkt(&d, 'M', data, sizeof(data) - 4, false), 0);
		dec_free(&d);
	}
}

/* --- reply text ------------------------------------------------------------
 */

struct reply_case {
	const char *text;
	int rc;
};

static const struct reply_case reply_cases[] = {
	{ "550 5.7.1 Message refused", 0 },
	{ "550", 0 },
	{ "550 ", 0 },
	{ "451 try later", 0 },
	{ "550 5.7.1", 0 },
	{ "550 5.7.123 x", 0 },
	{ "421 4.3.2 bye", 0 },
	{ "451-4.7.1 one\r\n451-4.7.1 two\r\n451 4.7.1 three", 0 },
	{ "550-first\r\n550 last", 0 },
	{ "550-\r\n550", 0 },
	{ "550 100%% sure", 0 },
	{ "550 100% sure", 0 }, /* lone '%': accepted, see milter.c */
	{ "550 5.7.1 1.2.3.4 listed", 0 },
	{ "", -1 },
	{ "55", -1 },
	{ "5500", -1 },
	{ "550x", -1 },
	{ "250 2.0.0 ok", -1 },
	{ "650 6.0.0 x", -1 },
	{ "5a0 x", -1 },
	{ " 550 x", -1 },
	{ "550 4.7.1 wrong class", -1 },
	{ "450 5.7.1 wrong class", -1 },
	{ "550 6.7.1 x", -1 },
	{ "550 5.7.1000 x", -1 },
	{ "550 5.7. x", -1 },
	{ "550 5..1 x", -1 },
	{ "550 5.7.1x", -1 },
	{ "550-5.7.1 a\n550 5.7.1 b", -1 },
	{ "550-5.7.1 a\r550 5.7.1 b", -1 },
	{ "550 5.7.1 a\n", -1 },
	{ "550 5.7.1 a\r\n", -1 },
	{ "550 a\r\n550 b", -1 },
	{ "550-a\r\n550-b", -1 },
	{ "550-a", -1 },
	{ "550-a\r\n551 b", -1 },
	{ "550-a\r\n450 b", -1 },
	{ "550-a\r\n", -1 },
	{ "550\r\n550", -1 },
	{ "550-a\r\n550 4.7.1 b", -1 },
};

static void
test_check_reply(void **state)
{
	char text[64 * 12];
	const char *err;
	size_t i, o;
	int rc;

	(void)state;
	for (i = 0; i < SL_NELEM(reply_cases); i++) {
		err = NULL;
		rc = sl_milter_check_reply(reply_cases[i].text, &err);
		if (rc != reply_cases[i].rc)
			fail_msg("\"%s\": %d, want %d", reply_cases[i].text, rc,
			    reply_cases[i].rc);
		if (rc == -1)
			assert_non_null(err);
	}
	/* 32 lines are fine, 33 are not. */
	o = 0;
	for (i = 0; i < 31; i++, o += 13)
		memcpy(text + o, "550-5.7.1 x\r\n", 13);
	memcpy(text + o, "550 5.7.1 x", 12);
	assert_int_equal(sl_milter_check_reply(text, &err), 0);
	memcpy(text + o, "550-5.7.1 x\r\n550 5.7.1 x", 25);
	assert_int_equal(sl_milter_check_reply(text, &err), -1);
}

static void
expect_reply(int code, const char *enh, const char *text, const char *want)
{
	struct sl_milter_buf b = { 0 };
	struct sl_milter_packet pkt;
	const char *err;
	size_t used;
	struct dec d;

	if (sl_milter_put_reply(&b, code, enh, text) != 0)
		fail_msg("put_reply %d %s \"%s\" refused", code,
		    enh == NULL ? "NULL" : enh, text);
	assert_int_equal(sl_milter_frame(b.data, b.len, 0, &pkt, &used, &err),
	    1);
	assert_int_equal(used, b.len);
	assert_int_equal(pkt.cmd, 'y');
	/* The NUL is in the packet, and is its last byte. */
	assert_int_equal(pkt.len, strlen(want) + 1);
	assert_memory_equal(pkt.data, want, strlen(want) + 1);
	assert_int_equal(decode_pkt(&d, 'y', pkt.data, pkt.len, true), 0);
	assert_string_equal(d.m.str, want);
	dec_free(&d);
	sl_milter_buf_free(&b);
}

static void
test_put_reply(void **state)
{
	struct sl_milter_buf b = { 0 };
	char text[40 * 4 + 1], *big;
	size_t i;

	(void)state;
	expect_reply(550, "5.7.1", "Message refused",
	    "550 5.7.1 Message refused");
	expect_reply(550, NULL, "Message refused", "550 Message refused");
	expect_reply(550, "", "Message refused", "550 Message refused");
	expect_reply(451, "4.7.1", "", "451 4.7.1");
	expect_reply(451, NULL, NULL, "451 ");
	expect_reply(550, "5.7.1", "100% sure, 50%% off",
	    "550 5.7.1 100%% sure, 50%%%% off");
	expect_reply(550, "5.7.1", "a\r\nb\rc\n",
	    "550-5.7.1 a\r\n550 5.7.1 bc");
	expect_reply(550, "5.7.1", "one\n\nthree",
	    "550-5.7.1 one\r\n550-5.7.1\r\n550 5.7.1 three");
	expect_reply(421, "4.3.2", "closing", "421 4.3.2 closing");
	expect_reply(554, "5.7.123", "x", "554 5.7.123 x");

	/* 32 lines, then 33. */
	for (i = 0; i < 32; i++)
		memcpy(text + 2 * i, "x\n", 2);
	text[2 * 32] = '\0';
	assert_int_equal(sl_milter_put_reply(&b, 550, "5.7.1", text), 0);
	sl_milter_buf_free(&b);
	memcpy(text + 2 * 32, "x", 2);
	assert_int_equal(sl_milter_put_reply(&b, 550, "5.7.1", text), -1);
	assert_int_equal(b.len, 0);

	/* Codes and enhanced codes refused. */
	assert_int_equal(sl_milter_put_reply(&b, 250, "2.0.0", "ok"), -1);
	assert_int_equal(sl_milter_put_reply(&b, 399, NULL, "x"), -1);
	assert_int_equal(sl_milter_put_reply(&b, 600, NULL, "x"), -1);
	assert_int_equal(sl_milter_put_reply(&b, -550, NULL, "x"), -1);
	assert_int_equal(sl_milter_put_reply(&b, 550, "4.7.1", "x"), -1);
	assert_int_equal(sl_milter_put_reply(&b, 450, "5.7.1", "x"), -1);
	assert_int_equal(sl_milter_put_reply(&b, 550, "5.7", "x"), -1);
	assert_int_equal(sl_milter_put_reply(&b, 550, "5.7.1000", "x"), -1);
	assert_int_equal(sl_milter_put_reply(&b, 550, "5.7.1 ", "x"), -1);
	assert_int_equal(sl_milter_put_reply(&b, 550, "x.y.z", "x"), -1);
	/* Text that reads as an enhanced code of another class. */
	assert_int_equal(sl_milter_put_reply(&b, 550, NULL, "4.7.1 x"), -1);
	assert_int_equal(b.len, 0);

	/* Over the buffer's limit once '%' is doubled. */
	b.max_data = 20;
	assert_int_equal(sl_milter_put_reply(&b, 550, NULL, "xx%%%%%%%"), -1);
	assert_int_equal(b.len, 0);
	assert_int_equal(sl_milter_put_reply(&b, 550, NULL, "x%%%%%%%"), 0);
	assert_int_equal(b.len, 5 + 20);
	sl_milter_buf_free(&b);
	b.max_data = 0;
	big = sl_xmalloc(70000);
	memset(big, 'x', 69999);
	big[69999] = '\0';
	assert_int_equal(sl_milter_put_reply(&b, 550, NULL, big), -1);
	assert_int_equal(b.len, 0);
	free(big);
}

/* --- the put functions' limits and arguments ---------------------------- */

static void
test_put_limits(void **state)
{
	static const size_t sizes[] = { 0, 1, 65534, 65535, 65536, 262143,
		262144, 1048575, 1048576 };
	static const size_t maxes[] = { 0, 65535, 262143, 1048575 };
	struct sl_milter_buf b = { 0 };
	const char *strs[2];
	size_t i, j, max;
	uint8_t *data;
	char *s;
	int want;

	(void)state;
	data = sl_xcalloc(1, 1048577);
	for (j = 0; j < SL_NELEM(maxes); j++) {
		b.max_data = maxes[j];
		max = maxes[j] == 0 ? SL_MILTER_SEND_MAX : maxes[j];
		for (i = 0; i < SL_NELEM(sizes); i++) {
			want = sizes[i] <= max ? 0 : -1;
			assert_int_equal(sl_milter_put(&b, 'B', data, sizes[i]),
			    want);
			assert_int_equal(b.len, want == 0 ? 5 + sizes[i] : 0);
			assert_int_equal(b.max_data, maxes[j]);
			sl_milter_buf_free(&b);
		}
	}
	/* Strings: data = strlen + 1. */
	b.max_data = 0;
	s = sl_xmalloc(65536);
	memset(s, 'h', 65535);
	s[65534] = '\0';
	strs[0] = s;
	assert_int_equal(sl_milter_put_strings(&b, 'H', strs, 1), 0);
	assert_int_equal(b.len, 5 + 65535);
	s[65534] = 'h';
	s[65535] = '\0';
	assert_int_equal(sl_milter_put_strings(&b, 'H', strs, 1), -1);
	assert_int_equal(b.len, 5 + 65535);
	sl_milter_buf_free(&b);
	/* A header whose name fits and whose value does not. */
	strs[0] = "Subject";
	strs[1] = s + 9;
	assert_int_equal(sl_milter_put_strings(&b, 'L', strs, 2), 0);
	sl_milter_buf_free(&b);
	strs[1] = s + 8;
	assert_int_equal(sl_milter_put_strings(&b, 'L', strs, 2), -1);
	assert_int_equal(b.len, 0);
	free(s);

	/* Small limits refuse even fixed-size packets. */
	b.max_data = 11;
	assert_int_equal(sl_milter_put_optneg(&b, 6, 0, 0, NULL), -1);
	assert_int_equal(sl_milter_put_index(&b, 'i', 0, "Name", "value"), -1);
	assert_int_equal(sl_milter_put_connect(&b, "host", '4', 25, "1.2.3"),
	    -1);
	assert_int_equal(b.len, 0);
	assert_int_equal(sl_milter_put_connect(&b, "host", '4', 25, "1."), 0);
	assert_int_equal(b.len, 5 + 11);
	sl_milter_buf_free(&b);
	free(data);
}

static void
test_put_body_chunks(void **state)
{
	struct sl_milter_buf b = { 0 };
	struct sl_milter_packet pkt;
	const char *err;
	size_t off, used, n, total;
	uint8_t *body;

	(void)state;
	body = sl_xmalloc(200000);
	for (n = 0; n < 200000; n++)
		body[n] = (uint8_t)(n * 7);
	/* max_data below the chunk size: chunks of max_data. */
	b.max_data = 10;
	assert_int_equal(sl_milter_put_body(&b, 'B', body, 25), 0);
	assert_int_equal(b.len, 3 * 5 + 25);
	off = 0;
	total = 0;
	for (n = 0; off < b.len; n++) {
		assert_int_equal(sl_milter_frame(b.data + off, b.len - off, 10,
		                     &pkt, &used, &err),
		    1);
		assert_int_equal(pkt.len, n < 2 ? 10 : 5);
		assert_memory_equal(pkt.data, body + total, pkt.len);
		total += pkt.len;
		off += used;
	}
	assert_int_equal(n, 3);
	sl_milter_buf_free(&b);
	/* max_data above it (MDS): still chunks of 65535. */
	b.max_data = 1048575;
	assert_int_equal(sl_milter_put_body(&b, 'b', body, 200000), 0);
	assert_int_equal(b.len, 4 * 5 + 200000);
	off = 0;
	total = 0;
	for (n = 0; off < b.len; n++) {
		assert_int_equal(sl_milter_frame(b.data + off, b.len - off, 0,
		                     &pkt, &used, &err),
		    1);
		assert_int_equal(pkt.cmd, 'b');
		assert_int_equal(pkt.len, n < 3 ? 65535 : 200000 - 3 * 65535);
		assert_memory_equal(pkt.data, body + total, pkt.len);
		total += pkt.len;
		off += used;
	}
	assert_int_equal(n, 4);
	/* Exactly one chunk. */
	sl_milter_buf_free(&b);
	assert_int_equal(sl_milter_put_body(&b, 'B', body, 65535), 0);
	assert_int_equal(b.len, 5 + 65535);
	sl_milter_buf_free(&b);
	assert_int_equal(sl_milter_put_body(&b, 'B', body, 65536), 0);
	assert_int_equal(b.len, 10 + 65536);
	sl_milter_buf_free(&b);
	/* Other codes. */
	assert_int_equal(sl_milter_put_body(&b, 'E', body, 10), -1);
	assert_int_equal(sl_milter_put_body(&b, 'h', body, 10), -1);
	assert_int_equal(b.len, 0);
	free(body);
}

static void
test_put_invalid(void **state)
{
	static const char *const one[] = { "x" };
	static const char *const two[] = { "x", "y" };
	static const char *const three[] = { "x", "y", "z" };
	static const char *const empty1[] = { "" };
	static const char *const nohdr[] = { "", "value" };
	static const char *const withnull[] = { "x", NULL };
	static const char *const names[] = { "j", "" };
	static const char *const nulln[] = { NULL };
	static const char *const values[] = { "a", "b" };
	struct sl_milter_buf b = { 0 };

	(void)state;
	/* Codes put_strings does not build. */
	assert_int_equal(sl_milter_put_strings(&b, 'C', one, 1), -1);
	assert_int_equal(sl_milter_put_strings(&b, 'B', one, 1), -1);
	assert_int_equal(sl_milter_put_strings(&b, 'y', one, 1), -1);
	assert_int_equal(sl_milter_put_strings(&b, 'i', two, 2), -1);
	/* Counts. */
	assert_int_equal(sl_milter_put_strings(&b, 'H', two, 2), -1);
	assert_int_equal(sl_milter_put_strings(&b, 'H', one, 0), -1);
	assert_int_equal(sl_milter_put_strings(&b, 'M', one, 0), -1);
	assert_int_equal(sl_milter_put_strings(&b, 'L', one, 1), -1);
	assert_int_equal(sl_milter_put_strings(&b, 'h', three, 3), -1);
	assert_int_equal(sl_milter_put_strings(&b, 'e', three, 3), -1);
	assert_int_equal(sl_milter_put_strings(&b, '+', two, 2), -1);
	assert_int_equal(sl_milter_put_strings(&b, 'q', two, 2), -1);
	/* NULL and empty where a decoder refuses them. */
	assert_int_equal(sl_milter_put_strings(&b, 'L', withnull, 2), -1);
	assert_int_equal(sl_milter_put_strings(&b, 'L', nohdr, 2), -1);
	assert_int_equal(sl_milter_put_strings(&b, 'h', nohdr, 2), -1);
	assert_int_equal(sl_milter_put_strings(&b, '+', empty1, 1), -1);
	assert_int_equal(sl_milter_put_strings(&b, '-', empty1, 1), -1);
	assert_int_equal(sl_milter_put_strings(&b, 'e', empty1, 1), -1);
	assert_int_equal(sl_milter_put_strings(&b, '2', empty1, 1), -1);
	assert_int_equal(sl_milter_put_strings(&b, 'q', empty1, 1), -1);
	assert_int_equal(sl_milter_put_index(&b, 'i', 0, "", "v"), -1);
	assert_int_equal(sl_milter_put_index(&b, 'm', 0, NULL, "v"), -1);
	assert_int_equal(sl_milter_put_index(&b, 'm', 0, "X", NULL), -1);
	assert_int_equal(sl_milter_put_index(&b, 'h', 0, "X", "v"), -1);
	assert_int_equal(sl_milter_put_connect(&b, "h", 'X', 0, "a"), -1);
	assert_int_equal(sl_milter_put_connect(&b, "h", '4', 0, NULL), -1);
	assert_int_equal(sl_milter_put_connect(&b, NULL, 'U', 0, NULL), -1);
	assert_int_equal(sl_milter_put_macros(&b, 'C', names, values, 2), -1);
	assert_int_equal(sl_milter_put_macros(&b, 'C', nulln, values, 1), -1);
	assert_int_equal(sl_milter_put(&b, 'B', NULL, 1), -1);
	assert_int_equal(b.len, 0);
	/* These empty strings are fine. */
	assert_int_equal(sl_milter_put_strings(&b, 'H', empty1, 1), 0);
	assert_int_equal(sl_milter_put_strings(&b, 'M', empty1, 1), 0);
	sl_milter_buf_free(&b);
}

/* A failed put leaves earlier packets alone; consume drops a prefix. */
static void
test_buf(void **state)
{
	static const char *const helo[] = { "h" };
	struct sl_milter_buf b = { 0 };
	uint8_t *big;

	(void)state;
	assert_int_equal(sl_milter_put_empty(&b, 'c'), 0);
	assert_int_equal(sl_milter_put_strings(&b, 'H', helo, 1), 0);
	big = sl_xcalloc(1, 65536);
	assert_int_equal(sl_milter_put(&b, 'B', big, 65536), -1);
	assert_int_equal(sl_milter_put_body(&b, 'x', big, 10), -1);
	free(big);
	assert_int_equal(b.len, 5 + 7);
	assert_memory_equal(b.data,
	    "\0\0\0\x01"
	    "c\0\0\0\x03Hh",
	    12);
	sl_milter_buf_consume(&b, 5);
	assert_int_equal(b.len, 7);
	assert_memory_equal(b.data, "\0\0\0\x03Hh", 7);
	sl_milter_buf_consume(&b, 100);
	assert_int_equal(b.len, 0);
	b.max_data = 77;
	sl_milter_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.alloc, 0);
	assert_int_equal(b.max_data, 77);
	sl_milter_buf_free(&b);
}

/* --- negotiation -----------------------------------------------------------
 */

struct neg_case {
	uint32_t version, actions, proto; /* the offer */
	uint32_t want_actions, want_proto;
	int rc;
	uint32_t a_version, a_actions, a_proto, missing;
};

static const struct neg_case neg_cases[] = {
	/* Version: v1 refused, otherwise min(6, offer). */
	{ 0, 0x1ff, 0x1fffff, 0x1ff, 0, -1, 0, 0, 0, 0 },
	{ 1, 0x1ff, 0x1fffff, 0x1ff, 0, -1, 0, 0, 0, 0 },
	{ 2, 0x1ff, 0x7f, 0x1ff, 0x40, 0, 2, 0x1ff, 0x40, 0 },
	{ 3, 0x1ff, 0x17f, 0x1ff, 0x100, 0, 3, 0x1ff, 0x100, 0 },
	{ 4, 0x1ff, 0x37f, 0x1ff, 0x200, 0, 4, 0x1ff, 0x200, 0 },
	{ 6, 0x1ff, 0x1fffff, 0x1ff, 0, 0, 6, 0x1ff, 0, 0 },
	{ 7, 0x1ff, 0x1fffff, 0x1ff, 0, 0, 6, 0x1ff, 0, 0 },
	{ 0xffffffff, 0x1ff, 0x1fffff, 0x1ff, 0, 0, 6, 0x1ff, 0, 0 },
	/* Actions 0 and protocol 0 read as the v1 sets. */
	{ 6, 0, 0, 0x1ff, 0x1fffff, 0, 6, 0x0f, 0x3f, 0x1f0 },
	{ 2, 0, 0x7f, 0x0f, 0x7f, 0, 2, 0x0f, 0x7f, 0 },
	{ 2, 0x3f, 0, 0x3f, 0x7f, 0, 2, 0x3f, 0x3f, 0 },
	/* Wanted but not offered: left out, actions reported. */
	{ 6, 0x0f, 0x7f, 0x1ff, 0x1fffff, 0, 6, 0x0f, 0x7f, 0x1f0 },
	{ 6, 0x1ff, 0x37f, 0x21, 0xff480, 0, 6, 0x21, 0, 0 },
	{ 6, 0x1ff, 0x1fffff, 0x21, 0x1ff480, 0, 6, 0x21, 0x1ff480, 0 },
	{ 6, 0x1fe, 0x1fffff, 0x01, 0x30000000, 0, 6, 0, 0, 0x01 },
};

static void
test_negotiate_filter(void **state)
{
	const struct neg_case *t;
	uint32_t v, a, p, miss;
	const char *err;
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < SL_NELEM(neg_cases); i++) {
		t = &neg_cases[i];
		err = NULL;
		rc = sl_milter_negotiate_filter(t->version, t->actions,
		    t->proto, t->want_actions, t->want_proto, &v, &a, &p, &miss,
		    &err);
		if (rc != t->rc)
			fail_msg("row %zu: rc %d, want %d", i, rc, t->rc);
		if (rc == -1) {
			assert_non_null(err);
			continue;
		}
		if (v != t->a_version || a != t->a_actions || p != t->a_proto ||
		    miss != t->missing)
			fail_msg("row %zu: %u %#x %#x missing %#x, want %u %#x "
			         "%#x missing %#x",
			    i, v, a, p, miss, t->a_version, t->a_actions,
			    t->a_proto, t->missing);
	}
}

static void
test_negotiate_mta(void **state)
{
	struct sl_milter_msg m;
	uint32_t p, masked;
	const char *err;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.code = 'O';
	m.version = 6;
	m.actions = 0x1ff;
	m.protocol = 0x1fffff;
	assert_int_equal(
	    sl_milter_negotiate_mta(6, 0x1ff, 0x1fffff, &m, &p, &masked, &err),
	    0);
	assert_int_equal(p, 0x1fffff);
	assert_int_equal(masked, 0);
	/* Protocol bits not offered: masked off and reported. */
	m.protocol = 0x40000482;
	assert_int_equal(
	    sl_milter_negotiate_mta(6, 0x1ff, 0x3ff, &m, &p, &masked, &err), 0);
	assert_int_equal(p, 0x82);
	assert_int_equal(masked, 0x40000400);
	/* Versions 0, 1, above the offer; 2 .. offer are fine. */
	m.protocol = 0;
	m.version = 0;
	assert_int_equal(
	    sl_milter_negotiate_mta(6, 0x1ff, 0x3ff, &m, &p, &masked, &err),
	    -1);
	m.version = 1;
	assert_int_equal(
	    sl_milter_negotiate_mta(6, 0x1ff, 0x3ff, &m, &p, &masked, &err),
	    -1);
	m.version = 7;
	assert_int_equal(
	    sl_milter_negotiate_mta(6, 0x1ff, 0x3ff, &m, &p, &masked, &err),
	    -1);
	m.version = 6;
	assert_int_equal(
	    sl_milter_negotiate_mta(2, 0x1ff, 0x3ff, &m, &p, &masked, &err),
	    -1);
	m.version = 2;
	assert_int_equal(
	    sl_milter_negotiate_mta(6, 0x1ff, 0x3ff, &m, &p, &masked, &err), 0);
	/* Actions not offered. */
	m.version = 6;
	m.actions = 0x3ff;
	err = NULL;
	assert_int_equal(
	    sl_milter_negotiate_mta(6, 0x1ff, 0x3ff, &m, &p, &masked, &err),
	    -1);
	assert_non_null(err);
	m.actions = 0x1ff;
	assert_int_equal(
	    sl_milter_negotiate_mta(6, 0x0ff, 0x3ff, &m, &p, &masked, &err),
	    -1);
	/* Not an 'O' at all. */
	m.actions = 0;
	m.code = 'c';
	assert_int_equal(
	    sl_milter_negotiate_mta(6, 0x1ff, 0x3ff, &m, &p, &masked, &err),
	    -1);
}

/* --- names and stages -------------------------------------------------- */

static void
test_names(void **state)
{
	static const struct {
		uint8_t code;
		const char *name;
	} cmds[] = { { 'A', "ABORT" }, { 'B', "BODY" }, { 'C', "CONNECT" },
		{ 'D', "MACRO" }, { 'E', "BODYEOB" }, { 'H', "HELO" },
		{ 'K', "QUIT_NC" }, { 'L', "HEADER" }, { 'M', "MAIL" },
		{ 'N', "EOH" }, { 'O', "OPTNEG" }, { 'Q', "QUIT" },
		{ 'R', "RCPT" }, { 'T', "DATA" }, { 'U', "UNKNOWN" } },
	  replies[] = { { '+', "ADDRCPT" }, { '-', "DELRCPT" },
		  { '2', "ADDRCPT_PAR" }, { '4', "SHUTDOWN" },
		  { 'a', "ACCEPT" }, { 'b', "REPLBODY" }, { 'c', "CONTINUE" },
		  { 'd', "DISCARD" }, { 'e', "CHGFROM" }, { 'f', "CONN_FAIL" },
		  { 'h', "ADDHEADER" }, { 'i', "INSHEADER" },
		  { 'l', "SETSYMLIST" }, { 'm', "CHGHEADER" },
		  { 'p', "PROGRESS" }, { 'q', "QUARANTINE" }, { 'r', "REJECT" },
		  { 's', "SKIP" }, { 't', "TEMPFAIL" }, { 'y', "REPLYCODE" },
		  { 'O', "OPTNEG" } };
	size_t i;

	(void)state;
	for (i = 0; i < SL_NELEM(cmds); i++)
		assert_string_equal(sl_milter_command_name(cmds[i].code),
		    cmds[i].name);
	for (i = 0; i < SL_NELEM(replies); i++)
		assert_string_equal(sl_milter_reply_name(replies[i].code),
		    replies[i].name);
	assert_string_equal(sl_milter_command_name('c'), "?");
	assert_string_equal(sl_milter_command_name(0), "?");
	assert_string_equal(sl_milter_reply_name('C'), "?");
	assert_string_equal(sl_milter_reply_name(0xff), "?");

	assert_int_equal(sl_milter_stage_of('C'), SL_SMFIM_CONNECT);
	assert_int_equal(sl_milter_stage_of('H'), SL_SMFIM_HELO);
	assert_int_equal(sl_milter_stage_of('M'), SL_SMFIM_ENVFROM);
	assert_int_equal(sl_milter_stage_of('R'), SL_SMFIM_ENVRCPT);
	assert_int_equal(sl_milter_stage_of('T'), SL_SMFIM_DATA);
	assert_int_equal(sl_milter_stage_of('E'), SL_SMFIM_EOM);
	assert_int_equal(sl_milter_stage_of('N'), SL_SMFIM_EOH);
	assert_int_equal(sl_milter_stage_of('L'), -1);
	assert_int_equal(sl_milter_stage_of('B'), -1);
	assert_int_equal(sl_milter_stage_of('U'), -1);
	assert_int_equal(sl_milter_stage_of('O'), -1);
}

/* --- macro store (doc 5.5) ------------------------------------------------ */

/* Builds a 'D' packet, decodes it and stores it. */
static void
store(struct sl_milter_macros *mm, uint8_t stage, const char *name,
    const char *value, const char *name2, const char *value2)
{
	const char *names[2] = { name, name2 };
	const char *values[2] = { value, value2 };
	struct sl_milter_buf b = { 0 };
	struct sl_milter_packet pkt;
	struct sl_milter_msg m;
	const char *err;
	size_t used, n;

	n = name == NULL ? 0 : name2 == NULL ? 1 : 2;
	assert_int_equal(sl_milter_put_macros(&b, stage, names, values, n), 0);
	assert_int_equal(sl_milter_frame(b.data, b.len, 0, &pkt, &used, &err),
	    1);
	assert_int_equal(sl_milter_decode_command(&pkt, &m, &err), 0);
	sl_milter_macros_store(mm, &m);
	/* The store keeps its own copy. */
	memset(b.data, 0xee, b.len);
	sl_milter_buf_free(&b);
}

static void
expect_get(const struct sl_milter_macros *mm, const char *name,
    const char *want)
{
	const char *got;

	got = sl_milter_macros_get(mm, name);
	if (want == NULL && got != NULL)
		fail_msg("%s: \"%s\", want none", name, got);
	if (want != NULL && (got == NULL || strcmp(got, want) != 0))
		fail_msg("%s: %s%s%s, want \"%s\"", name,
		    got == NULL ? "" : "\"", got == NULL ? "none" : got,
		    got == NULL ? "" : "\"", want);
}

/* Per stage, "s" valued with the stage letter and "{x<letter>}" = "1". */
static void
fill_all(struct sl_milter_macros *mm)
{
	static const char stages[] = "CHMRTNE";
	char value[2], name[5];
	size_t i;

	for (i = 0; i < 7; i++) {
		value[0] = stages[i];
		value[1] = '\0';
		memcpy(name, "{x?}", 5);
		name[2] = stages[i];
		store(mm, (uint8_t)stages[i], "s", value, name, "1");
	}
}

static void
expect_slots(const struct sl_milter_macros *mm, const char *present)
{
	static const char stages[] = "CHMRTNE";
	char name[5] = { '{', 'x', 0, '}', 0 };
	size_t i;

	for (i = 0; i < 7; i++) {
		name[2] = stages[i];
		expect_get(mm, name,
		    strchr(present, stages[i]) != NULL ? "1" : NULL);
	}
}

static void
test_macros_store(void **state)
{
	struct sl_milter_macros mm;

	(void)state;
	memset(&mm, 0, sizeof(mm));
	expect_get(&mm, "j", NULL);
	store(&mm, 'C', "j", "mta.example", "{daemon_name}", "smtpd");
	expect_get(&mm, "j", "mta.example");
	expect_get(&mm, "{j}", "mta.example");
	expect_get(&mm, "{daemon_name}", "smtpd");
	/* Longer names only in braces. */
	expect_get(&mm, "daemon_name", NULL);
	expect_get(&mm, "{", NULL);
	expect_get(&mm, "", NULL);

	/* A new D C replaces the slot: j is gone. */
	store(&mm, 'C', "{client_addr}", "192.0.2.1", NULL, NULL);
	expect_get(&mm, "j", NULL);
	expect_get(&mm, "{client_addr}", "192.0.2.1");
	/* An empty D leaves it as it was. */
	store(&mm, 'C', NULL, NULL, NULL, NULL);
	expect_get(&mm, "{client_addr}", "192.0.2.1");

	/* "{i}" stored, "i" looked up, and the other way round. */
	store(&mm, 'M', "{i}", "QID1", NULL, NULL);
	expect_get(&mm, "i", "QID1");
	expect_get(&mm, "{i}", "QID1");
	store(&mm, 'R', "i", "QID2", NULL, NULL);
	expect_get(&mm, "{i}", "QID2");

	/* Stages other than C H M R T N E are ignored. */
	store(&mm, 'L', "i", "header", NULL, NULL);
	store(&mm, 'B', "i", "body", NULL, NULL);
	store(&mm, 'U', "i", "unknown", NULL, NULL);
	store(&mm, 0, "i", "zero", NULL, NULL);
	expect_get(&mm, "i", "QID2");

	/* Within a slot the first pair wins, as in smfi_getsymval. */
	store(&mm, 'H', "{tls_version}", "TLSv1.3", "{tls_version}", "x");
	expect_get(&mm, "{tls_version}", "TLSv1.3");
	sl_milter_macros_clear(&mm);
	expect_get(&mm, "{client_addr}", NULL);
	sl_milter_macros_clear(&mm);
}

static void
test_macros_shadow(void **state)
{
	struct sl_milter_macros mm;

	(void)state;
	memset(&mm, 0, sizeof(mm));
	fill_all(&mm);
	expect_slots(&mm, "CHMRTNE");
	/* E shadows everything; then N over T, and so on down to C. */
	expect_get(&mm, "s", "E");
	sl_milter_macros_event(&mm, 'R'); /* clears T N E */
	expect_get(&mm, "s", "R");
	store(&mm, 'T', "s", "T", NULL, NULL);
	store(&mm, 'N', "s", "N", NULL, NULL);
	expect_get(&mm, "s", "N"); /* doc 5.5: i from D N over D T */
	sl_milter_macros_event(&mm, 'M');
	expect_get(&mm, "s", "M");
	sl_milter_macros_event(&mm, 'H');
	expect_get(&mm, "s", "H");
	sl_milter_macros_event(&mm, 'C');
	expect_get(&mm, "s", "C");
	sl_milter_macros_clear(&mm);
}

static void
test_macros_events(void **state)
{
	static const struct {
		uint8_t cmd;
		const char *left;
	} rows[] = {
		{ 'C', "C" },
		{ 'H', "CH" },
		{ 'M', "CHM" },
		{ 'R', "CHMR" },
		{ 'T', "CHMRTNE" },
		{ 'L', "CHMRTNE" },
		{ 'N', "CHMRTNE" },
		{ 'B', "CHMRTNE" },
		{ 'E', "CHMRTNE" },
		{ 'A', "CHMRTNE" }, /* MAIL macros survive an abort */
		{ 'U', "CHMRTNE" },
		{ 'D', "CHMRTNE" },
		{ 'Q', "" },
		{ 'K', "" },
		{ 'O', "" },
	};
	struct sl_milter_macros mm;
	size_t i;

	(void)state;
	memset(&mm, 0, sizeof(mm));
	for (i = 0; i < SL_NELEM(rows); i++) {
		fill_all(&mm);
		sl_milter_macros_event(&mm, rows[i].cmd);
		expect_slots(&mm, rows[i].left);
		sl_milter_macros_clear(&mm);
	}
	/* Events on an empty store. */
	sl_milter_macros_event(&mm, 'C');
	sl_milter_macros_event(&mm, 'Q');
	expect_get(&mm, "s", NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmd_optneg),
		cmocka_unit_test(test_cmd_macro),
		cmocka_unit_test(test_cmd_connect),
		cmocka_unit_test(test_cmd_strings),
		cmocka_unit_test(test_cmd_empty_and_body),
		cmocka_unit_test(test_reply_optneg),
		cmocka_unit_test(test_reply_empty),
		cmocka_unit_test(test_reply_replycode),
		cmocka_unit_test(test_reply_edits),
		cmocka_unit_test(test_frame_sizes),
		cmocka_unit_test(test_frame_bad_len),
		cmocka_unit_test(test_frame_split),
		cmocka_unit_test(test_cursor),
		cmocka_unit_test(test_bad_commands),
		cmocka_unit_test(test_bad_replies),
		cmocka_unit_test(test_macro_edges),
		cmocka_unit_test(test_argv_limits),
		cmocka_unit_test(test_check_reply),
		cmocka_unit_test(test_put_reply),
		cmocka_unit_test(test_put_limits),
		cmocka_unit_test(test_put_body_chunks),
		cmocka_unit_test(test_put_invalid),
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_negotiate_filter),
		cmocka_unit_test(test_negotiate_mta),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_macros_store),
		cmocka_unit_test(test_macros_shadow),
		cmocka_unit_test(test_macros_events),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
