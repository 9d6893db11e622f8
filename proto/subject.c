/*
 * subject.c - syntax of subjects and patterns, and the reference matcher.
 *
 * A subject names where a message goes. It is a byte string of 1 to
 * SUBJECT_MAX_LEN bytes made of 1 to SUBJECT_MAX_TOKENS non-empty tokens
 * separated by '.':
 *
 *     "orders.eu.new"    ->  [orders] . [eu] . [new]
 *
 * A subscription pattern may also use two wildcard tokens, each of which
 * must be a whole token:
 *
 *     "*"  matches exactly one token      "orders.*.new"  ~ "orders.eu.new"
 *     ">"  matches one or more tokens,    "orders.>"      ~ "orders.eu"
 *          allowed only as the last one                   ~ "orders.eu.new"
 *                                                         !~ "orders"
 *
 * The subscription trie (trie.c) stores a pattern as one path of tokens,
 * with "*" and ">" in their own child slots:
 *
 *     patterns: a.b  a.*  a.>  c
 *
 *                 (root)
 *                 /    \
 *              [a]      [c]*
 *             / |  \
 *          [b]* (*)* (>)*        * = a pattern ends here
 *
 * No byte below 0x21 (space, tab, CR, LF, NUL, other controls) and no DEL
 * (0x7f) may appear anywhere, so a subject can never split a text protocol
 * line. Bytes from 0x80 up (UTF-8) are allowed.
 *
 * subject_match() is the slow, obvious matcher. The tests use it as the
 * oracle for trie_match(); the broker never calls it on the publish path.
 *
 * Thread: pure functions on borrowed bytes, safe from any thread.
 */
#include "subject.h"

#include <string.h>

#include "rmq_error.h"

/*
 * Shared checker. With pattern false no wildcard is allowed; with pattern
 * true '*' and '>' are allowed as whole tokens and '>' only as the last one.
 */
static int subject_check_any(const char *s, size_t len, bool pattern)
{
    size_t tok_start = 0;
    size_t ntok = 1;
    size_t i;

    if (s == NULL || len == 0 || len > SUBJECT_MAX_LEN)
        return RMQ_ESUBJECT;

    for (i = 0; i <= len; i++) {
        unsigned char c;

        if (i == len || s[i] == '.') {
            if (i == tok_start)
                return RMQ_ESUBJECT; /* empty token: leading, trailing or double dot */
            if (i < len) {
                if (s[tok_start] == '>' && i - tok_start == 1)
                    return RMQ_ESUBJECT; /* '>' followed by more tokens */
                if (++ntok > SUBJECT_MAX_TOKENS)
                    return RMQ_ESUBJECT;
            }
            tok_start = i + 1;
            continue;
        }
        c = (unsigned char)s[i];
        if (c < 0x21 || c == 0x7f)
            return RMQ_ESUBJECT;
        if (c == '*' || c == '>') {
            if (!pattern)
                return RMQ_ESUBJECT;
            /* A wildcard must be the whole token: "a*" and "*b" are invalid. */
            if (i != tok_start || (i + 1 < len && s[i + 1] != '.'))
                return RMQ_ESUBJECT;
        }
    }
    return 0;
}

/*
 * Check that s (len bytes, not NUL-terminated, borrowed) is a valid publish
 * subject: 1..SUBJECT_MAX_LEN bytes, 1..SUBJECT_MAX_TOKENS non-empty tokens
 * split by '.', no wildcard and no byte below 0x21 or equal to 0x7f.
 * Returns 0 if valid, RMQ_ESUBJECT otherwise (also for s == NULL).
 * Thread: any; no shared state.
 */
/* Byte classes of a publish subject: 0 a token byte, 1 the separator, 2 a
 * byte no subject may hold (controls, space, DEL, and the wildcards). */
static const unsigned char subj_class[256] = {
    [0 ... 0x20] = 2, ['.'] = 1, ['*'] = 2, ['>'] = 2, [0x7f] = 2,
};

/* The same rules as subject_check_any(s, len, false), in one table lookup
 * per byte: it runs on every PUBLISH and every message from a route. */
int subject_check(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t ntok = 1;
    if (s == NULL || len == 0 || len > SUBJECT_MAX_LEN || u[0] == '.' || u[len - 1] == '.')
        return RMQ_ESUBJECT;
    for (size_t i = 0; i < len; i++) {
        unsigned char k = subj_class[u[i]];
        if (k == 0)
            continue;
        /* i > 0 here: u[0] is no '.' */
        if (k == 2 || u[i - 1] == '.' || ++ntok > SUBJECT_MAX_TOKENS)
            return RMQ_ESUBJECT;
    }
    return 0;
}

/*
 * Check that s (len bytes, borrowed) is a valid subscription pattern: the
 * rules of subject_check(), except that a token may be exactly "*" (one
 * token) or, as the last token only, exactly ">" (one or more tokens).
 * A wildcard inside a longer token ("a*", ">b") is invalid.
 * Returns 0 if valid, RMQ_ESUBJECT otherwise.
 * Thread: any; no shared state.
 */
int subject_check_pattern(const char *s, size_t len)
{
    return subject_check_any(s, len, true);
}

/*
 * Step to the token that starts at *pos in s. Sets *tlen and moves *pos past
 * the token and its dot. Returns NULL once the tokens are used up, which is
 * signalled by *pos == len + 1.
 */
static const char *subject_token_next(const char *s, size_t len, size_t *pos, size_t *tlen)
{
    const char *tok;
    const char *dot;

    if (len == 0 || *pos > len)
        return NULL;
    tok = s + *pos;
    dot = memchr(tok, '.', len - *pos);
    *tlen = dot != NULL ? (size_t)(dot - tok) : len - *pos;
    *pos += *tlen + 1;
    return tok;
}

/*
 * Reference matcher: true if subject subj (slen bytes) matches pattern pat
 * (plen bytes). Both must already be valid (subject_check() and
 * subject_check_pattern()); for invalid input the answer is unspecified but
 * the call stays memory-safe. Walks both token lists side by side, so the
 * cost is linear in the lengths. Meant as the oracle for tests; the publish
 * path uses trie_match() instead.
 * Thread: any; no shared state; both buffers are borrowed.
 */
bool subject_match(const char *pat, size_t plen, const char *subj, size_t slen)
{
    size_t ppos = 0;
    size_t spos = 0;

    if (pat == NULL || subj == NULL)
        return false;
    for (;;) {
        size_t ptlen = 0;
        size_t stlen = 0;
        const char *pt = subject_token_next(pat, plen, &ppos, &ptlen);
        const char *st = subject_token_next(subj, slen, &spos, &stlen);

        if (pt == NULL || st == NULL)
            return pt == NULL && st == NULL;
        if (ptlen == 1 && pt[0] == '>')
            return true; /* st != NULL: at least one token is left for '>' */
        if (ptlen == 1 && pt[0] == '*')
            continue;
        if (ptlen != stlen || memcmp(pt, st, ptlen) != 0)
            return false;
    }
}

/* The next token of s from *pos: sets *t and *tl, advances *pos; false at the end. */
static bool token_next(const char *s, size_t len, size_t *pos, const char **t, size_t *tl)
{
    const char *dot;
    if (*pos > len)
        return false;
    *t = s + *pos;
    dot = memchr(*t, '.', len - *pos);
    *tl = dot ? (size_t)(dot - *t) : len - *pos;
    *pos += *tl + 1;
    return true;
}

/* See subject.h. */
bool subject_patterns_overlap(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t pa = 0, pb = 0;
    for (;;) {
        const char *ta, *tb;
        size_t la, lb;
        bool ha = token_next(a, alen, &pa, &ta, &la), hb = token_next(b, blen, &pb, &tb, &lb);
        if (!ha || !hb)
            return !ha && !hb;
        if ((la == 1 && ta[0] == '>') || (lb == 1 && tb[0] == '>'))
            return true; /* the other has a token here, and ">" takes any rest */
        if (!(la == 1 && ta[0] == '*') && !(lb == 1 && tb[0] == '*') &&
            (la != lb || memcmp(ta, tb, la) != 0))
            return false;
    }
}
