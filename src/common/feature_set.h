/*
 * feature_set.h - the Slurm node features azrdma derives from azrdma.conf, and
 * the rules for image features in a job's constraint.
 *
 * A node of domain D with size S has "azure,D,<S's feature>,rdma,<nd|ib>"
 * and, changeable, one "img_<name>" per Image line: every image is
 * available on every node, one is active.  Feature lists here are Slurm's
 * comma lists; every returned string is malloc()ed and freed by the
 * caller.
 */
#ifndef AZRDMA_FEATURE_SET_H
#define AZRDMA_FEATURE_SET_H

#include <stdbool.h>
#include <stddef.h>

#include "az_rc.h"
#include "conf.h"

#define FEATURE_IMAGE_PREFIX "img_"

/* "azure,hb0,hb120rs_v3,rdma,ib" for a node of domain d. */
char *features_static(const struct conf_domain *d);

/* "img_alma,img_ubuntu": every image, in azrdma.conf's order. */
char *features_images(const struct azrdma_conf *c);

/* "img_<name>" of img. */
char *feature_of_image(const struct conf_image *img);

/*
 * Is f an image feature ("img_" prefix)?  *img (if not NULL) gets the
 * image it names, or NULL when no Image line has that name.
 */
bool feature_is_image(const struct azrdma_conf *c, const char *f,
		      const struct conf_image **img);

/* One feature name of a constraint expression; not NUL-terminated. */
struct feature_name {
	const char *s;
	size_t len;
};

/*
 * The next feature name of the constraint expression expr ("rdma&[hb0|hb1]*2")
 * from *cursor on (start with *cursor = expr); false at its end.  Slurm's
 * operators & | , [ ] ( ) * : ! and blanks separate names, and the count
 * after a '*' is no name.  A name comes whole however long it is: what a
 * long one means is the caller's to decide, never a cut that turns its
 * tail into another name.  The job_submit plugin, the node_features plugin
 * and azrdma-resume read constraints with this one reader.
 */
bool feature_next_name(const char *expr, const char **cursor,
		       struct feature_name *name);

/* The tokens of a, then those of b that a lacks; duplicates dropped. */
char *features_union(const char *a, const char *b);

/* list without its image features. */
char *features_without_images(const struct azrdma_conf *c, const char *list);

/*
 * Check a job's constraint expression (-C).  Image features may only be
 * ANDed with other features: at most one, known, and not inside an OR,
 * brackets, parentheses or a count.  On success *image (if not NULL)
 * is the image asked for, or NULL.  On failure err says what is wrong
 * and how to ask instead.
 */
enum az_rc features_job_check(const struct azrdma_conf *c, const char *expr,
			      const struct conf_image **image, char *err,
			      size_t errlen);

#endif
