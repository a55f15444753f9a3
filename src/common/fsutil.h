/*
 * fsutil.h - small file helpers shared by every part: whole-file reads,
 * atomic private writes, directory creation and the permission rules that
 * keep secrets private.
 */
#ifndef AZRDMA_FSUTIL_H
#define AZRDMA_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "az_rc.h"

/*
 * Read all of path (at most max bytes) into a new NUL-terminated string
 * *data (caller frees); *len (may be NULL) gets its length.
 */
enum az_rc fs_read_file(const char *path, size_t max, char **data, size_t *len,
			char *err, size_t errlen);

/*
 * Write data to path atomically (temporary file in the same directory,
 * fsync, rename) with the given mode, so a reader never sees half a file
 * and a secret is never world-readable, not even for a moment.
 */
enum az_rc fs_write_atomic(const char *path, const void *data, size_t len,
			   mode_t mode, char *err, size_t errlen);

/*
 * The same without the fsync: the file is whole or absent for every reader
 * at once, but survives a crash of the machine only after fs_sync_fs().
 * For many small files that must all be durable before one next step (one
 * sync instead of one each).
 */
enum az_rc fs_write_atomic_nosync(const char *path, const void *data,
                                  size_t len, mode_t mode, char *err,
                                  size_t errlen);

/* Write everything of the filesystem that holds path to disk (syncfs). */
enum az_rc fs_sync_fs(const char *path, char *err, size_t errlen);

/* mkdir -p with mode for the directories it creates. */
enum az_rc fs_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen);

/*
 * A file that holds a secret must be a regular file readable by nobody but
 * its owner (no group or other permission bits).  what names the setting
 * in messages ("ClientSecretFile").
 */
enum az_rc fs_check_secret(const char *path, const char *what, char *err,
			   size_t errlen);

/* A file others may read but nobody but its owner may write. */
enum az_rc fs_check_not_world_writable(const char *path, const char *what,
				       char *err, size_t errlen);

#endif
