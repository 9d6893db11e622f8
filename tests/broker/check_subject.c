/*
 * check_subject.c - unit tests for broker/subject.c.
 *
 * What is tested:
 *
 *     subject_check()          publish subjects: tokens, dots, bytes, limits
 *     subject_check_pattern()  patterns: whole-token "*", last-token ">"
 *     subject_match()          the oracle that check_trie.c trusts
 *
 *     pattern "a.*.>"      [a] -> (*) -> (>)
 *     subject "a.b.c.d"    [a]    [b]    [c d]   -> match
 *     subject "a.b"        [a]    [b]    []      -> no match: ">" needs a token
 *
 * TCases: core (hand-written cases), limits (SUBJECT_MAX_LEN and
 * SUBJECT_MAX_TOKENS edges, every byte value), oom (subject.c must not
 * allocate; checked through -Wl,--wrap=malloc when the build links that way)
 * and fuzz (differential against simple reference implementations written
 * here). Random input is seeded from RMQ_TEST_SEED or the time; main()
 * prints the seed so that a failure can be replayed.
 */
#include <check.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rmq_error.h"
#include "subject.h"
#include "testrng.h"

/* ---- Helpers ---- */

/*
 * ck_assert() records a mark point (a write to Check's pipe) even when it
 * passes, which is slow in loops of 10^5; hot loops use this instead.
 */
#define FAST_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

static uint64_t g_seed;
static int check_str(const char *s)
{
    return subject_check(s, strlen(s));
}

static int check_pat(const char *s)
{
    return subject_check_pattern(s, strlen(s));
}

static bool match_str(const char *pat, const char *subj)
{
    return subject_match(pat, strlen(pat), subj, strlen(subj));
}

/* Fill buf with ntok tokens of tlen 'a's joined by dots; returns the length. */
static size_t make_subject(char *buf, size_t ntok, size_t tlen)
{
    size_t len = 0;
    size_t i;

    for (i = 0; i < ntok; i++) {
        if (i > 0)
            buf[len++] = '.';
        memset(buf + len, 'a', tlen);
        len += tlen;
    }
    return len;
}

/* ---- core ---- */

START_TEST(test_subject_check_accepts_valid)
{
    static const char *const ok[] = {
        "a", "a.b", "a.b.c", "orders.eu-1_x", "A.B.c", "123.456", "caf\xc3\xa9.x", "a~!@#$%^&()",
    };
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ck_assert_msg(check_str(ok[i]) == 0, "subject \"%s\" rejected", ok[i]);
        ck_assert_msg(check_pat(ok[i]) == 0, "pattern \"%s\" rejected", ok[i]);
    }
}
END_TEST

START_TEST(test_subject_check_rejects_empty)
{
    ck_assert_int_eq(subject_check("", 0), RMQ_ESUBJECT);
    ck_assert_int_eq(subject_check("abc", 0), RMQ_ESUBJECT);
    ck_assert_int_eq(subject_check(NULL, 0), RMQ_ESUBJECT);
    ck_assert_int_eq(subject_check(NULL, 3), RMQ_ESUBJECT);
    ck_assert_int_eq(subject_check_pattern("", 0), RMQ_ESUBJECT);
    ck_assert_int_eq(subject_check_pattern(NULL, 0), RMQ_ESUBJECT);
}
END_TEST

START_TEST(test_subject_check_rejects_bad_dots)
{
    static const char *const bad[] = {".",    "..",   ".a",    "a.", "a..b",
                                      "a.b.", ".a.b", "a...b", "*.", ".>"};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(check_str(bad[i]) == RMQ_ESUBJECT, "subject \"%s\" accepted", bad[i]);
        ck_assert_msg(check_pat(bad[i]) == RMQ_ESUBJECT, "pattern \"%s\" accepted", bad[i]);
    }
}
END_TEST

START_TEST(test_subject_check_rejects_whitespace)
{
    static const char *const bad[] = {
        "a b",  " a",    "a ",      "a\tb", "a\r",   "a\nb",
        "a.\n", "a\r\n", "a.b c.d", "\x01", "a\x1f", "a\x7f",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(check_str(bad[i]) == RMQ_ESUBJECT, "subject %zu accepted", i);
        ck_assert_msg(check_pat(bad[i]) == RMQ_ESUBJECT, "pattern %zu accepted", i);
    }
    /* An embedded NUL is a byte below 0x21 like any other. */
    ck_assert_int_eq(subject_check("a\0b", 3), RMQ_ESUBJECT);
    ck_assert_int_eq(subject_check_pattern("a.\0", 3), RMQ_ESUBJECT);
}
END_TEST

START_TEST(test_subject_check_rejects_wildcards_in_publish)
{
    static const char *const bad[] = {"*", ">", "a.*", "a.>", "*.b", "a.*.c", "a*", "a>", "a.b*"};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(check_str(bad[i]) == RMQ_ESUBJECT, "publish to \"%s\" accepted", bad[i]);
}
END_TEST

START_TEST(test_subject_check_pattern_accepts_wildcards)
{
    static const char *const ok[] = {"*",     ">",     "a.*", "a.>",    "*.b",
                                     "*.*.>", "a.*.c", "*.>", "a.b.c.>"};
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        ck_assert_msg(check_pat(ok[i]) == 0, "pattern \"%s\" rejected", ok[i]);
}
END_TEST

START_TEST(test_subject_check_pattern_rejects_wildcard_inside_token)
{
    static const char *const bad[] = {"a*", "*a", "a.b*.c", "a>", ">a",
                                      "**", ">>", "a.*b",   "*>", "a.>*"};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(check_pat(bad[i]) == RMQ_ESUBJECT, "pattern \"%s\" accepted", bad[i]);
}
END_TEST

START_TEST(test_subject_check_pattern_rejects_gt_not_last)
{
    static const char *const bad[] = {">.a", "a.>.b", "a.>.*", ">.>", "*.>.>"};
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(check_pat(bad[i]) == RMQ_ESUBJECT, "pattern \"%s\" accepted", bad[i]);
}
END_TEST

START_TEST(test_subject_check_uses_len_not_nul)
{
    static const char nonul[3] = {'a', '.', 'b'}; /* no terminating NUL */

    ck_assert_int_eq(subject_check(nonul, sizeof(nonul)), 0);
    ck_assert_int_eq(subject_check(nonul, 1), 0);
    ck_assert_int_eq(subject_check(nonul, 2), RMQ_ESUBJECT); /* "a." */
    ck_assert_int_eq(subject_check("a.b c", 3), 0);          /* only "a.b" is looked at */
    ck_assert_int_eq(subject_check_pattern("a.>.b", 3), 0);  /* "a.>" */
    ck_assert_int_eq(subject_check_pattern("a*", 1), 0);     /* "a" */
}
END_TEST

START_TEST(test_subject_match_literal)
{
    ck_assert(match_str("a", "a"));
    ck_assert(match_str("a.b", "a.b"));
    ck_assert(!match_str("a.b", "a.c"));
    ck_assert(!match_str("a.b", "a"));
    ck_assert(!match_str("a.b", "a.b.c"));
    ck_assert(!match_str("a", "b"));
    /* Tokens compare whole, not as prefixes. */
    ck_assert(!match_str("ab", "a"));
    ck_assert(!match_str("a", "ab"));
    ck_assert(!match_str("a.b", "a.bc"));
    ck_assert(!match_str("a.bc", "a.b"));
    ck_assert(!match_str("a.b", "ab"));
}
END_TEST

START_TEST(test_subject_match_star)
{
    ck_assert(match_str("*", "a"));
    ck_assert(!match_str("*", "a.b"));
    ck_assert(match_str("a.*", "a.b"));
    ck_assert(match_str("a.*", "a.zz"));
    ck_assert(!match_str("a.*", "a"));
    ck_assert(!match_str("a.*", "a.b.c"));
    ck_assert(!match_str("a.*", "b.a"));
    ck_assert(match_str("*.b", "x.b"));
    ck_assert(!match_str("*.b", "x.c"));
    ck_assert(match_str("a.*.c", "a.b.c"));
    ck_assert(!match_str("a.*.c", "a.c"));
    ck_assert(match_str("*.*", "a.b"));
    ck_assert(!match_str("*.*", "a"));
}
END_TEST

START_TEST(test_subject_match_gt)
{
    ck_assert(match_str(">", "a"));
    ck_assert(match_str(">", "a.b.c"));
    ck_assert(match_str("a.>", "a.b"));
    ck_assert(match_str("a.>", "a.b.c"));
    ck_assert(!match_str("a.>", "a")); /* '>' needs at least one token */
    ck_assert(!match_str("a.>", "b.c"));
    ck_assert(match_str("a.*.>", "a.b.c"));
    ck_assert(match_str("a.*.>", "a.b.c.d"));
    ck_assert(!match_str("a.*.>", "a.b"));
    ck_assert(match_str("*.>", "a.b"));
    ck_assert(!match_str("*.>", "a"));
}
END_TEST

/* ---- limits ---- */

START_TEST(test_subject_limits_max_len)
{
    char buf[SUBJECT_MAX_LEN + 2];

    memset(buf, 'x', sizeof(buf));
    ck_assert_int_eq(subject_check(buf, SUBJECT_MAX_LEN), 0);
    ck_assert_int_eq(subject_check(buf, SUBJECT_MAX_LEN + 1), RMQ_ESUBJECT);
    ck_assert_int_eq(subject_check_pattern(buf, SUBJECT_MAX_LEN), 0);
    ck_assert_int_eq(subject_check_pattern(buf, SUBJECT_MAX_LEN + 1), RMQ_ESUBJECT);
    /* 8 tokens of 31 bytes: 255 bytes; one more byte in the last token: 256. */
    ck_assert_uint_eq(make_subject(buf, 8, 31), 255);
    buf[255] = 'a';
    ck_assert_int_eq(subject_check(buf, 256), 0);
    buf[256] = 'a';
    ck_assert_int_eq(subject_check(buf, 257), RMQ_ESUBJECT);
    ck_assert_int_eq(subject_check(buf, SIZE_MAX), RMQ_ESUBJECT);
}
END_TEST

START_TEST(test_subject_limits_max_tokens)
{
    char buf[4 * SUBJECT_MAX_TOKENS];
    size_t len;

    len = make_subject(buf, SUBJECT_MAX_TOKENS, 1);
    ck_assert_int_eq(subject_check(buf, len), 0);
    ck_assert_int_eq(subject_check_pattern(buf, len), 0);
    buf[len - 1] = '>';
    ck_assert_int_eq(subject_check_pattern(buf, len), 0);
    ck_assert_int_eq(subject_check(buf, len), RMQ_ESUBJECT);

    len = make_subject(buf, SUBJECT_MAX_TOKENS + 1, 1);
    ck_assert_int_eq(subject_check(buf, len), RMQ_ESUBJECT);
    ck_assert_int_eq(subject_check_pattern(buf, len), RMQ_ESUBJECT);
    buf[len - 1] = '>';
    ck_assert_int_eq(subject_check_pattern(buf, len), RMQ_ESUBJECT);
}
END_TEST

START_TEST(test_subject_limits_every_byte)
{
    int c;

    for (c = 0; c < 256; c++) {
        char one[1] = {(char)c};
        char mid[3] = {'a', (char)c, 'b'};
        bool ok = c >= 0x21 && c != 0x7f && c != '.' && c != '*' && c != '>';
        bool pat_ok = ok || c == '*' || c == '>';

        ck_assert_msg((subject_check(one, 1) == 0) == ok, "byte 0x%02x", c);
        ck_assert_msg((subject_check_pattern(one, 1) == 0) == pat_ok, "byte 0x%02x", c);
        ck_assert_msg((subject_check(mid, 3) == 0) == (ok || c == '.'), "a<0x%02x>b", c);
        ck_assert_msg((subject_check_pattern(mid, 3) == 0) == (ok || c == '.'), "a<0x%02x>b", c);
    }
}
END_TEST

START_TEST(test_subject_limits_match_max_tokens)
{
    char subj[4 * SUBJECT_MAX_TOKENS];
    char pat[4 * SUBJECT_MAX_TOKENS];
    size_t slen = make_subject(subj, SUBJECT_MAX_TOKENS, 1);
    size_t plen = make_subject(pat, SUBJECT_MAX_TOKENS, 1);
    size_t i;

    ck_assert(subject_match(pat, plen, subj, slen));
    for (i = 0; i < plen; i += 2)
        pat[i] = '*';
    ck_assert(subject_match(pat, plen, subj, slen));
    ck_assert(!subject_match(pat, plen, subj, slen - 2));
    pat[plen - 1] = '>';
    ck_assert(subject_match(pat, plen, subj, slen));
    ck_assert(!subject_match(pat, plen, subj, slen - 2));
}
END_TEST

/* ---- oom ---- */

/*
 * subject.c has no failure path for memory because it never allocates. When
 * the test is linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc
 * (tests/broker/CMakeLists.txt does that), every direct call from our
 * objects goes through the counters below; otherwise __real_malloc is a
 * NULL weak symbol and the check only says so.
 */
extern void *__real_malloc(size_t size) __attribute__((weak));
extern void *__real_calloc(size_t n, size_t size) __attribute__((weak));
extern void *__real_realloc(void *p, size_t size) __attribute__((weak));
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);

static volatile bool alloc_counting; /* volatile: GCC assumes malloc() reads no globals */
static volatile unsigned long alloc_calls;

void *__wrap_malloc(size_t size)
{
    if (alloc_counting)
        alloc_calls++;
    return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (alloc_counting)
        alloc_calls++;
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    if (alloc_counting)
        alloc_calls++;
    return __real_realloc(p, size);
}

START_TEST(test_subject_oom_no_allocation)
{
    char buf[SUBJECT_MAX_LEN + 1];
    size_t len = make_subject(buf, SUBJECT_MAX_TOKENS, 1);
    int rc[6];
    bool m[3];

    if (__real_malloc == NULL) {
        fprintf(stderr,
                "check_subject: not linked with --wrap=malloc, allocation count not checked\n");
    } else {
        /* Make sure the wrapper is live: this call must be counted. */
        void *volatile probe; /* volatile: -O2 elides a plain free(malloc(16)) */
        alloc_counting = true;
        probe = malloc(16);
        free(probe);
        alloc_counting = false;
        ck_assert_uint_eq(alloc_calls, 1);
        alloc_calls = 0;
    }

    alloc_counting = true;
    rc[0] = subject_check(buf, len);
    rc[1] = subject_check_pattern(buf, len);
    rc[2] = subject_check("a..b", 4);
    rc[3] = subject_check_pattern("a.>.b", 5);
    rc[4] = subject_check(buf, SUBJECT_MAX_LEN + 1);
    rc[5] = subject_check_pattern("a.*.>", 5);
    m[0] = subject_match("a.*.>", 5, "a.b.c", 5);
    m[1] = subject_match(buf, len, buf, len);
    m[2] = subject_match(">", 1, "a.b", 3);
    alloc_counting = false;

    ck_assert_uint_eq(alloc_calls, 0);
    ck_assert_int_eq(rc[0], 0);
    ck_assert_int_eq(rc[1], 0);
    ck_assert_int_eq(rc[2], RMQ_ESUBJECT);
    ck_assert_int_eq(rc[3], RMQ_ESUBJECT);
    ck_assert_int_eq(rc[4], RMQ_ESUBJECT);
    ck_assert_int_eq(rc[5], 0);
    ck_assert(m[0] && m[1] && m[2]);
}
END_TEST

/* ---- fuzz ---- */

/*
 * Reference checker, written the other way round from subject.c: split into
 * tokens first, then judge each token.
 */
static int ref_check(const char *s, size_t len, bool pattern)
{
    size_t start = 0;
    size_t ntok = 0;
    size_t i;

    if (len < 1 || len > SUBJECT_MAX_LEN)
        return RMQ_ESUBJECT;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= ' ' || c == 0x7f)
            return RMQ_ESUBJECT;
    }
    while (start <= len) {
        const char *dot = memchr(s + start, '.', len - start);
        size_t end = dot != NULL ? (size_t)(dot - s) : len;
        const char *tok = s + start;
        size_t tlen = end - start;
        bool last = dot == NULL;
        bool star = memchr(tok, '*', tlen) != NULL;
        bool gt = memchr(tok, '>', tlen) != NULL;

        if (tlen == 0)
            return RMQ_ESUBJECT;
        if (++ntok > SUBJECT_MAX_TOKENS)
            return RMQ_ESUBJECT;
        if ((star || gt) && !pattern)
            return RMQ_ESUBJECT;
        if ((star || gt) && tlen != 1)
            return RMQ_ESUBJECT;
        if (gt && !last)
            return RMQ_ESUBJECT;
        start = end + 1;
    }
    return 0;
}

static size_t ref_split(const char *s, size_t len, const char **tok, size_t *tlen)
{
    size_t n = 0;
    size_t start = 0;

    while (start <= len && n < SUBJECT_MAX_TOKENS) {
        const char *dot = memchr(s + start, '.', len - start);
        size_t end = dot != NULL ? (size_t)(dot - s) : len;

        tok[n] = s + start;
        tlen[n++] = end - start;
        start = end + 1;
    }
    return n;
}

/* Recursive reference matcher over token arrays. */
static bool ref_match_toks(const char **p, const size_t *pl, size_t np, const char **s,
                           const size_t *sl, size_t ns)
{
    if (np == 0)
        return ns == 0;
    if (pl[0] == 1 && p[0][0] == '>')
        return ns >= 1;
    if (ns == 0)
        return false;
    if (!(pl[0] == 1 && p[0][0] == '*') && (pl[0] != sl[0] || memcmp(p[0], s[0], sl[0]) != 0))
        return false;
    return ref_match_toks(p + 1, pl + 1, np - 1, s + 1, sl + 1, ns - 1);
}

static bool ref_match(const char *pat, size_t plen, const char *subj, size_t slen)
{
    const char *pt[SUBJECT_MAX_TOKENS];
    const char *st[SUBJECT_MAX_TOKENS];
    size_t pl[SUBJECT_MAX_TOKENS];
    size_t sl[SUBJECT_MAX_TOKENS];
    size_t np = ref_split(pat, plen, pt, pl);
    size_t ns = ref_split(subj, slen, st, sl);

    return ref_match_toks(pt, pl, np, st, sl, ns);
}

/* A random byte string, biased towards almost-valid subjects. */
static size_t fuzz_string(char *buf, size_t cap)
{
    static const char alpha[] = {'a', 'b',  '.',  '.',    '*',    '>',
                                 ' ', '\t', '\n', '\x7f', '\x80', 'Z'};
    size_t len;
    size_t i;

    switch (rng_below(20)) {
    case 0: /* around the length limit */
        len = SUBJECT_MAX_LEN - 3 + rng_below(7);
        break;
    case 1: /* around the token limit */
        len = 2 * (SUBJECT_MAX_TOKENS - 2 + rng_below(4)) - 1;
        break;
    default:
        len = rng_below(12);
        break;
    }
    if (len > cap)
        len = cap;
    for (i = 0; i < len; i++) {
        if (len > 20)
            buf[i] = (i % 2 == 1 && rng_below(50) != 0) ? '.' : 'a';
        else
            buf[i] = alpha[rng_below(sizeof(alpha))];
    }
    if (len > 0 && len > 20 && rng_below(4) == 0)
        buf[len - 1] = rng_below(2) != 0 ? '>' : '*';
    return len;
}

START_TEST(test_subject_fuzz_check_vs_reference)
{
    char buf[SUBJECT_MAX_LEN + 8];
    char buf2[SUBJECT_MAX_LEN + 8];
    unsigned long valid = 0;
    int i;

    rng_seed(g_seed + 1);
    for (i = 0; i < 200000; i++) {
        size_t len = fuzz_string(buf, sizeof(buf));
        size_t len2 = fuzz_string(buf2, sizeof(buf2));
        int s = subject_check(buf, len);
        int p = subject_check_pattern(buf, len);

        FAST_ASSERT(s == ref_check(buf, len, false), "subject_check \"%.*s\" = %d", (int)len, buf,
                    s);
        FAST_ASSERT(p == ref_check(buf, len, true), "subject_check_pattern \"%.*s\" = %d", (int)len,
                    buf, p);
        FAST_ASSERT(s != 0 || p == 0, "subject but not pattern: \"%.*s\"", (int)len, buf);
        valid += s == 0;
        /* Unspecified result on invalid input, but it must stay memory-safe. */
        (void)subject_match(buf, len, buf2, len2);
    }
    ck_assert_msg(valid > 1000, "fuzzer produced only %lu valid subjects", valid);
}
END_TEST

static size_t fuzz_tokens(char *buf, bool pattern)
{
    static const char *const toks[] = {"a", "b", "c", "ab"};
    size_t ntok = 1 + rng_below(5);
    size_t len = 0;
    size_t i;

    for (i = 0; i < ntok; i++) {
        const char *t = toks[rng_below(4)];
        size_t r = rng_below(10);

        if (pattern && r < 2)
            t = "*";
        else if (pattern && r == 2 && i == ntok - 1)
            t = ">";
        if (i > 0)
            buf[len++] = '.';
        memcpy(buf + len, t, strlen(t));
        len += strlen(t);
    }
    return len;
}

START_TEST(test_subject_fuzz_match_vs_reference)
{
    char pat[64];
    char subj[64];
    unsigned long hits = 0;
    int i;

    rng_seed(g_seed + 2);
    for (i = 0; i < 200000; i++) {
        size_t plen = fuzz_tokens(pat, true);
        size_t slen = fuzz_tokens(subj, false);
        bool m = subject_match(pat, plen, subj, slen);

        FAST_ASSERT(subject_check_pattern(pat, plen) == 0, "bad pattern \"%.*s\"", (int)plen, pat);
        FAST_ASSERT(subject_check(subj, slen) == 0, "bad subject \"%.*s\"", (int)slen, subj);
        FAST_ASSERT(m == ref_match(pat, plen, subj, slen), "\"%.*s\" ~ \"%.*s\": %d", (int)plen,
                    pat, (int)slen, subj, m);
        hits += m;
    }
    ck_assert_msg(hits > 1000, "fuzzer produced only %lu matches", hits);
}
END_TEST

/* Topic subjects may not overlap: a table, checked both ways round. */
START_TEST(test_subject_patterns_overlap)
{
    static const struct {
        const char *a, *b;
        bool overlap;
    } t[] = {
        {"a.b", "a.b", true},   {"a.b", "a.c", false},   {"a.*", "a.b", true},
        {"a.>", "a.b.c", true}, {"a.>", "a", false},     {"a.*", "a.b.c", false},
        {">", "x.y", true},     {"*.b", "a.*", true},    {"*.b", "a.c", false},
        {"a.*.c", "a.>", true}, {"a.b.>", "a.*", false}, {"orders.>", "order.>", false},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        ck_assert_msg(subject_patterns_overlap(t[i].a, strlen(t[i].a), t[i].b, strlen(t[i].b)) ==
                          t[i].overlap,
                      "%s vs %s", t[i].a, t[i].b);
        ck_assert_msg(subject_patterns_overlap(t[i].b, strlen(t[i].b), t[i].a, strlen(t[i].a)) ==
                          t[i].overlap,
                      "%s vs %s (swapped)", t[i].b, t[i].a);
    }
}
END_TEST

/* ---- Suite ---- */

static Suite *subject_suite(void)
{
    Suite *s = suite_create("subject");
    TCase *tc;

    tc = tcase_create("core");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_subject_check_accepts_valid);
    tcase_add_test(tc, test_subject_check_rejects_empty);
    tcase_add_test(tc, test_subject_check_rejects_bad_dots);
    tcase_add_test(tc, test_subject_check_rejects_whitespace);
    tcase_add_test(tc, test_subject_check_rejects_wildcards_in_publish);
    tcase_add_test(tc, test_subject_check_pattern_accepts_wildcards);
    tcase_add_test(tc, test_subject_check_pattern_rejects_wildcard_inside_token);
    tcase_add_test(tc, test_subject_check_pattern_rejects_gt_not_last);
    tcase_add_test(tc, test_subject_check_uses_len_not_nul);
    tcase_add_test(tc, test_subject_match_literal);
    tcase_add_test(tc, test_subject_match_star);
    tcase_add_test(tc, test_subject_match_gt);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_subject_limits_max_len);
    tcase_add_test(tc, test_subject_limits_max_tokens);
    tcase_add_test(tc, test_subject_limits_every_byte);
    tcase_add_test(tc, test_subject_limits_match_max_tokens);
    suite_add_tcase(s, tc);

    tc = tcase_create("oom");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_subject_oom_no_allocation);
    suite_add_tcase(s, tc);

    tc = tcase_create("fuzz");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_subject_fuzz_check_vs_reference);
    tcase_add_test(tc, test_subject_fuzz_match_vs_reference);
    tcase_add_test(tc, test_subject_patterns_overlap);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    const char *env = getenv("RMQ_TEST_SEED");
    SRunner *sr;
    int failed;

    g_seed = env != NULL && *env != '\0' ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    printf("check_subject: RMQ_TEST_SEED=%" PRIu64 "\n", g_seed);
    fflush(stdout); /* before fork(), or the children print it again */

    sr = srunner_create(subject_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
