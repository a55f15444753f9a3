/*
 * fuzz_conf.c - libFuzzer target for the azrdma.conf lexer and parser.
 *
 * Every input must be either accepted or refused with diagnostics, never
 * crash, leak or read out of bounds.  The input goes through a file, as
 * conf_load reads one; the file's directory is private to this process.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "conf_lex.h"

static char _path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf_diags diags = {0};
	struct conf_text text;
	struct azrdma_conf *conf = NULL;
	char err[AZ_ERRLEN];
	char *copy;
	FILE *f;

	if (!_path[0]) {
		char dir[] = "/tmp/azrdma-fuzz.XXXXXX";

		if (!mkdtemp(dir))
			abort();
		snprintf(_path, sizeof(_path), "%s/azrdma.conf", dir);
	}

	/* The lexer on its own, on the raw bytes up to the first NUL. */
	copy = malloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	if (conf_lex("fuzz", copy, &text, &diags) == AZ_OK)
		conf_text_free(&text);
	conf_diags_free(&diags);
	free(copy);

	/* The whole parser through a file. */
	f = fopen(_path, "w");
	if (!f)
		abort();
	fwrite(data, 1, size, f);
	fclose(f);
	conf_load(_path, 0, &conf, &diags, err, sizeof(err));
	if (conf && diags.errors)
		abort(); /* a config with errors must never be returned */
	if (!conf && !diags.errors)
		abort(); /* a refusal always says why */
	conf_free(conf);
	conf_diags_free(&diags);
	return 0;
}
