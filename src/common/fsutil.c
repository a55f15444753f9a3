/*
 * fsutil.c - file helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

enum az_rc fs_read_file(const char *path, size_t max, char **data, size_t *len,
			char *err, size_t errlen)
{
	enum az_rc rc = AZ_OK;
	size_t cap = 4096, n = 0;
	char *buf = NULL;
	int fd;

	*data = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return az_err(AZ_EIO, err, errlen, "%s: cannot open: %s", path,
			      strerror(errno));
	buf = malloc(cap);
	if (!buf) {
		rc = AZ_ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t r;

		if (n + 1 >= cap) {
			char *p;

			/* Not realloc(): the file may be a secret, and the
			 * old copy is wiped before it is freed. */
			p = malloc(cap * 2);
			if (!p) {
				rc = AZ_ENOMEM;
				goto out;
			}
			memcpy(p, buf, n);
			explicit_bzero(buf, cap);
			free(buf);
			buf = p;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = az_err(AZ_EIO, err, errlen, "%s: cannot read: %s",
				    path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			rc = az_err(AZ_EINVAL, err, errlen,
				    "%s: larger than the %zu bytes allowed",
				    path, max);
			goto out;
		}
	}
	buf[n] = '\0';
	*data = buf;
	buf = NULL;
	if (len)
		*len = n;
out:
	if (buf)
		explicit_bzero(buf, cap);
	free(buf);
	close(fd);
	return rc;
}

static enum az_rc _write_atomic(const char *path, const void *data,
				size_t len, mode_t mode, bool sync, char *err,
				size_t errlen)
{
	char tmp[PATH_MAX];
	const char *p = data;
	size_t done = 0;
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid())
	    >= (int)sizeof(tmp))
		return az_err(AZ_EINVAL, err, errlen, "%s: path too long",
			      path);
	/* O_EXCL with the final mode: the content is never readable by others. */
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return az_err(AZ_EIO, err, errlen, "%s: cannot create: %s",
			      tmp, strerror(errno));
	while (done < len) {
		ssize_t w = write(fd, p + done, len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto fail;
		done += (size_t)w;
	}
	if (fchmod(fd, mode) < 0 || (sync && fsync(fd) < 0))
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	return AZ_OK;
fail:
	az_err(AZ_EIO, err, errlen, "%s: cannot write: %s", path,
	       strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return AZ_EIO;
}

enum az_rc fs_write_atomic(const char *path, const void *data, size_t len,
			   mode_t mode, char *err, size_t errlen)
{
	return _write_atomic(path, data, len, mode, true, err, errlen);
}

enum az_rc fs_write_atomic_nosync(const char *path, const void *data,
				  size_t len, mode_t mode, char *err,
				  size_t errlen)
{
	return _write_atomic(path, data, len, mode, false, err, errlen);
}

enum az_rc fs_sync_fs(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	enum az_rc rc = AZ_OK;

	if (fd < 0)
		return az_err(AZ_EIO, err, errlen, "%s: cannot open: %s",
			      path, strerror(errno));
	if (syncfs(fd) < 0)
		rc = az_err(AZ_EIO, err, errlen, "%s: cannot sync: %s", path,
			    strerror(errno));
	close(fd);
	return rc;
}

enum az_rc fs_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return az_err(AZ_EINVAL, err, errlen, "bad directory path '%s'",
			      path);
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return az_err(AZ_EIO, err, errlen,
				      "cannot create directory %s: %s", buf,
				      strerror(errno));
		*p = c;
		if (!c)
			break;
	}
	return AZ_OK;
}

enum az_rc fs_check_secret(const char *path, const char *what, char *err,
			   size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return az_err(AZ_EIO, err, errlen, "%s %s: cannot stat: %s",
			      what, path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return az_err(AZ_EPERM, err, errlen,
			      "%s %s: not a regular file", what, path);
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return az_err(AZ_EPERM, err, errlen,
			      "%s %s: readable or writable by group or others "
			      "(mode %04o); it holds a secret, so refusing it: "
			      "run chmod 600 %s",
			      what, path, (unsigned)(st.st_mode & 07777), path);
	return AZ_OK;
}

enum az_rc fs_check_not_world_writable(const char *path, const char *what,
				       char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return az_err(AZ_EIO, err, errlen, "%s %s: cannot stat: %s",
			      what, path, strerror(errno));
	if (st.st_mode & S_IWOTH)
		return az_err(AZ_EPERM, err, errlen,
			      "%s %s: world-writable (mode %04o), anyone could "
			      "change it, so refusing it: run chmod o-w %s",
			      what, path, (unsigned)(st.st_mode & 07777), path);
	return AZ_OK;
}
