/*
 * testutil.c - temporary files for the unit tests.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "testutil.h"

static char _tmpdir[256];

const char *tu_tmpdir(void)
{
	if (!_tmpdir[0]) {
		snprintf(_tmpdir, sizeof(_tmpdir), "/tmp/azrdma-unit.XXXXXX");
		/* Called from main as well, where ck_assert cannot report. */
		if (!mkdtemp(_tmpdir)) {
			perror("mkdtemp");
			exit(EXIT_FAILURE);
		}
	}
	return _tmpdir;
}

void tu_cleanup(void)
{
	char cmd[300];

	if (!_tmpdir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", _tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", _tmpdir);
	_tmpdir[0] = '\0';
}

const char *tu_write(const char *name, const char *text, mode_t mode)
{
	static char paths[8][512];
	static int slot;
	char *path = paths[slot++ % 8];
	char err[AZ_ERRLEN];

	snprintf(path, 512, "%s/%s", tu_tmpdir(), name);
	ck_assert_msg(fs_write_atomic(path, text, strlen(text), mode, err,
				      sizeof(err))
			      == AZ_OK,
		      "%s", err);
	return path;
}

static void _replace_all(struct az_buf *out, const char *text,
			 const char *token, const char *value)
{
	const char *p = text, *hit;

	while ((hit = strstr(p, token))) {
		buf_append(out, p, (size_t)(hit - p));
		buf_puts(out, value);
		p = hit + strlen(token);
	}
	buf_puts(out, p);
}

const char *tu_fixture(const char *rel, const char *name)
{
	char src[512];
	char *text, *stage1;
	struct az_buf a = {0}, b = {0};
	const char *path;

	snprintf(src, sizeof(src), "%s/%s", TEST_DATA_DIR, rel);
	text = tu_slurp(src);
	_replace_all(&a, text, "@DATA@", TEST_DATA_DIR);
	stage1 = buf_steal(&a);
	_replace_all(&b, stage1, "@TMP@", tu_tmpdir());
	path = tu_write(name, b.data, 0644);
	free(text);
	free(stage1);
	buf_free(&b);
	return path;
}

char *tu_slurp(const char *path)
{
	char err[AZ_ERRLEN];
	char *data = NULL;

	ck_assert_msg(fs_read_file(path, 1 << 24, &data, NULL, err,
				   sizeof(err))
			      == AZ_OK,
		      "%s", err);
	return data;
}

int tu_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	/* Made before the tests fork, so every test shares it. */
	tu_tmpdir();
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	tu_cleanup();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
