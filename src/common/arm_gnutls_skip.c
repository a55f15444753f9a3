/*
 * Debian's libcurl links libldap and librtmp, and both link GnuTLS, so every
 * program with the ARM client loads GnuTLS although libcurl uses OpenSSL and
 * the client allows https only.  GnuTLS initialises itself in a library
 * constructor (its configuration files, its random generator, p11-kit): about
 * 0.8 MB of resident memory per program, a seventh of azrdma-resume's peak at
 * a hundred nodes, for a library nothing here calls.
 *
 * GnuTLS skips that implicit initialisation when the program defines this
 * function (what its GNUTLS_SKIP_GLOBAL_INIT macro expands to).  Programs
 * link and export it with ARM_PROGRAM_LDFLAGS (configure.ac); were GnuTLS ever
 * called after all, gnutls_global_init() would still initialise it then.
 */
int _gnutls_global_init_skip(void);

int _gnutls_global_init_skip(void)
{
	return 1;
}
