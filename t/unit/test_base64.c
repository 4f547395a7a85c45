/*
 * test_base64.c - shared/base64.c: the RFC 4648 10 vectors both ways,
 * every byte value round trip, the strictness of the decoder (padding,
 * alphabet, white space, non-zero pad bits, lengths) and the buffer
 * sizes.  Inputs are copied into buffers of exactly their size so ASan
 * sees any over-read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "xmalloc.h"
#include "base64.h"

/* RFC 4648 10 */
static const struct {
	const char *plain, *b64;
} vectors[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static long
decode_exact(const char *s, uint8_t *out, size_t size)
{
	size_t n = strlen(s);
	char *copy = sl_xmalloc(n > 0 ? n : 1);
	long rc;

	memcpy(copy, s, n);
	rc = sl_base64_decode(copy, n, out, size);
	free(copy);
	return rc;
}

static void
test_vectors(void **state)
{
	char enc[32];
	uint8_t dec[32];
	size_t i, n;
	long rc;

	(void)state;
	for (i = 0; i < SL_NELEM(vectors); i++) {
		n = strlen(vectors[i].plain);
		rc = sl_base64_encode((const uint8_t *)vectors[i].plain, n, enc,
		    sizeof(enc));
		assert_int_equal(rc, (long)strlen(vectors[i].b64));
		assert_string_equal(enc, vectors[i].b64);
		rc = decode_exact(vectors[i].b64, dec, sizeof(dec));
		assert_int_equal(rc, (long)n);
		assert_memory_equal(dec, vectors[i].plain, n);
	}
}

static void
test_round_trip(void **state)
{
	uint8_t in[256], out[256];
	char enc[SL_BASE64_ENCODED_LEN(256) + 1];
	size_t i, n;
	long rc;

	(void)state;
	for (i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)i;
	for (n = 0; n <= sizeof(in); n++) {
		rc = sl_base64_encode(in, n, enc, SL_BASE64_ENCODED_LEN(n) + 1);
		assert_int_equal(rc, (long)SL_BASE64_ENCODED_LEN(n));
		rc = decode_exact(enc, out, SL_BASE64_DECODED_MAX((size_t)rc));
		assert_int_equal(rc, (long)n);
		assert_memory_equal(in, out, n);
	}
}

static void
test_bad(void **state)
{
	static const char *const bad[] = {
		"Zg",              /* not a multiple of 4 */
		"Zg=",             /* same */
		"Z===",            /* three pad characters */
		"====",            /* only padding */
		"Zg==Zg==",        /* padding inside */
		"Z=g=",            /* padding then data */
		"Zh==",            /* pad bits not zero */
		"Zm9=",            /* same, one pad character */
		"Zm 9",            /* white space */
		"Zm9v\r\n",        /* a line break */
		"Zm9-",            /* base64url's alphabet */
		"Zm9_", "Zm9\x80", /* 8-bit */
		"Zm\0v",           /* NUL */
	};
	uint8_t out[16];
	size_t i;

	(void)state;
	for (i = 0; i < SL_NELEM(bad); i++) {
		size_t n = i == SL_NELEM(bad) - 1 ? 4 : strlen(bad[i]);
		char *copy = sl_xmalloc(n);

		memcpy(copy, bad[i], n);
		if (sl_base64_decode(copy, n, out, sizeof(out)) != -1)
			fail_msg("accepted bad base64 #%zu", i);
		free(copy);
	}
}

static void
test_sizes(void **state)
{
	uint8_t out[6];
	char enc[9];

	(void)state;
	/* "foobar" needs 6 bytes; 5 is too small. */
	assert_int_equal(decode_exact("Zm9vYmFy", out, 5), -1);
	assert_int_equal(decode_exact("Zm9vYmFy", out, 6), 6);
	/* "fooba" fits 5 bytes even though the 8 characters could be 6. */
	assert_int_equal(decode_exact("Zm9vYmE=", out, 5), 5);
	/* Encoding needs room for the NUL. */
	assert_int_equal(sl_base64_encode((const uint8_t *)"foobar", 6, enc, 8),
	    -1);
	assert_int_equal(sl_base64_encode((const uint8_t *)"foobar", 6, enc, 9),
	    8);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_sizes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
