/*
 * testutil.h - small helpers shared by the unit tests.
 */
#ifndef AZRDMA_TESTUTIL_H
#define AZRDMA_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include <check.h>

/* A fresh private temporary directory; removed by tu_cleanup(). */
const char *tu_tmpdir(void);
void tu_cleanup(void);

/* Write text to <tmpdir>/name with mode; returns the path (static buffer
 * per call slot, valid until the next 8 calls). */
const char *tu_write(const char *name, const char *text, mode_t mode);

/*
 * Copy a fixture from testsuite/data/<rel> into <tmpdir>/<name>,
 * replacing @DATA@ with the data directory and @TMP@ with the temporary
 * directory.  Returns the new path.
 */
const char *tu_fixture(const char *rel, const char *name);

/* Read a whole file into a static-free buffer the caller frees. */
char *tu_slurp(const char *path);

/* Run suite s (temporary directory made first, removed after); exit code. */
int tu_run(Suite *s);

#endif
