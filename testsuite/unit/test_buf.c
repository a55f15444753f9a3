/*
 * test_buf.c - growable strings.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "testutil.h"

START_TEST(appends_grow_and_stay_terminated)
{
	struct az_buf b = {0};

	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(buf_printf(&b, "%d,", i % 10), AZ_OK);
	ck_assert_uint_eq(b.len, 2000);
	ck_assert_uint_eq(strlen(b.data), 2000);
	ck_assert(!strncmp(b.data, "0,1,2,", 6));
	buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(b.data, "");
	buf_append(&b, "ab\0cd", 5);
	ck_assert_uint_eq(b.len, 5);
	ck_assert_int_eq(b.data[5], '\0');
	buf_free(&b);
	ck_assert_ptr_null(b.data);
}
END_TEST

/* A secret buffer grows by copy (the old block is wiped before it is
 * freed, buf.h): every byte must survive each move. */
START_TEST(a_secret_buffer_keeps_every_byte_as_it_grows)
{
	struct az_buf b = {.wipe = true};
	char piece[37];

	for (int i = 0; i < 500; i++) {
		snprintf(piece, sizeof(piece), "%05d-client-secret-part;", i);
		ck_assert_int_eq(buf_puts(&b, piece), AZ_OK);
	}
	ck_assert_uint_eq(b.len, 500 * strlen("00000-client-secret-part;"));
	for (int i = 0; i < 500; i++) {
		snprintf(piece, sizeof(piece), "%05d-client-secret-part;", i);
		ck_assert(!strncmp(b.data + i * strlen(piece), piece,
		                   strlen(piece)));
	}
	ck_assert(b.wipe);
	buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(b.data, "");
	ck_assert_int_eq(buf_printf(&b, "%s=%d", "grant", 1), AZ_OK);
	ck_assert_str_eq(b.data, "grant=1");
	buf_free(&b);
	ck_assert_ptr_null(b.data);
}
END_TEST

START_TEST(steal_hands_over_and_empties)
{
	struct az_buf b = {0};
	char *s;

	s = buf_steal(&b); /* an empty buffer still gives a string */
	ck_assert_str_eq(s, "");
	free(s);
	buf_puts(&b, "hello");
	s = buf_steal(&b);
	ck_assert_str_eq(s, "hello");
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	free(s);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("buf");

	tcase_add_test(tc, appends_grow_and_stay_terminated);
	tcase_add_test(tc, steal_hands_over_and_empties);
	tcase_add_test(tc, a_secret_buffer_keeps_every_byte_as_it_grows);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
