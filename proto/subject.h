/*
 * subject.h - syntax of publish subjects and subscription patterns.
 *
 * A subject is a dot-separated list of non-empty tokens, e.g. "orders.eu.new".
 * A pattern may also use two wildcard tokens: "*" (exactly one token) and
 * ">" (one or more trailing tokens, last token only). Subjects and patterns
 * are byte strings with an explicit length; they are not NUL-terminated.
 */
#ifndef RMQ_BROKER_SUBJECT_H
#define RMQ_BROKER_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>

#define SUBJECT_MAX_LEN 256   /* bytes */
#define SUBJECT_MAX_TOKENS 32 /* dot-separated tokens */

/* 0 if s is a valid publish subject (no wildcards), else RMQ_ESUBJECT. */
int subject_check(const char *s, size_t len);

/* 0 if s is a valid subscription pattern ("*" tokens, ">" last), else RMQ_ESUBJECT. */
int subject_check_pattern(const char *s, size_t len);

/* true if the valid subject subj matches the valid pattern pat. Test oracle;
 * the broker also uses it where one pattern is checked (replay filters). */
bool subject_match(const char *pat, size_t plen, const char *subj, size_t slen);

/* true if some subject matches both valid patterns (topics may not overlap). */
bool subject_patterns_overlap(const char *a, size_t alen, const char *b, size_t blen);

#endif
