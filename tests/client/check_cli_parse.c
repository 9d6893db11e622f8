/*
 * check_cli_parse.c - unit tests of client/cli_parse.c, the value syntax of
 * the CLI's durable-topic options: durations, times, start positions and
 * names. Pure functions: no server, no threads.
 *
 * TCases: core.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

START_TEST(test_cli_parse_duration)
{
    static const struct {
        const char *s;
        uint64_t ms;
    } good[] = {
        {"500ms", 500},
        {"30s", 30000},
        {"5m", 300000},
        {"2h", 7200000},
        {"7d", 604800000},
        {"0", 0},
        {"0s", 0},
        {"1ms", 1},
        {"120s", 120000},
        {"0007s", 7000},
        {"213503982334d", 213503982334ull * 86400000},
    };
    static const char *bad[] = {
        "",
        "5",
        "-5s",
        "5 s",
        "5S",
        "s",
        "ms",
        "5sec",
        "1.5s",
        "5mm",
        "5hs",
        " 5s",
        "5s ",
        "+5s",
        "0x5s",
        "99999999999999999999999ms",
        "213503982335d", /* overflows uint64 ms */
    };
    uint64_t ms;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ms = 12345;
        ck_assert_msg(cli_parse_duration(good[i].s, &ms), "rejected '%s'", good[i].s);
        ck_assert_msg(ms == good[i].ms, "'%s' -> %llu", good[i].s, (unsigned long long)ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!cli_parse_duration(bad[i], &ms), "accepted '%s'", bad[i]);
    ck_assert(!cli_parse_duration(NULL, &ms));
}
END_TEST

START_TEST(test_cli_format_duration)
{
    static const struct {
        uint64_t ms;
        const char *s;
    } cases[] = {
        {0, "0"},         {1, "1ms"},        {500, "500ms"},    {1000, "1s"},
        {1500, "1500ms"}, {90000, "90s"},    {120000, "2m"},    {7200000, "2h"},
        {86400000, "1d"}, {604800000, "7d"}, {90000000, "25h"},
    };
    char buf[32];
    uint64_t back;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cli_format_duration(cases[i].ms, buf, sizeof(buf));
        ck_assert_str_eq(buf, cases[i].s);
        /* what is printed parses back to the same value */
        ck_assert(cli_parse_duration(buf, &back));
        ck_assert_uint_eq(back, cases[i].ms);
    }
}
END_TEST

START_TEST(test_cli_parse_time)
{
    static const struct {
        const char *s;
        uint64_t ns;
    } good[] = {
        {"0", 0},
        {"1714564800", 1714564800ull * 1000000000},
        {"1714564800.5", 1714564800ull * 1000000000 + 500000000},
        {"1714564800.000000001", 1714564800ull * 1000000000 + 1},
        {"2024-05-01", 1714521600ull * 1000000000},
        {"2024-05-01T12:00", 1714564800ull * 1000000000},
        {"2024-05-01T12:00:00Z", 1714564800ull * 1000000000},
        {"2024-05-01 12:00:00", 1714564800ull * 1000000000},
        {"2024-05-01T12:00:00.123Z", 1714564800ull * 1000000000 + 123000000},
        {"2024-05-01T14:00:00+02:00", 1714564800ull * 1000000000},
        {"2024-05-01T07:30:00-04:30", 1714564800ull * 1000000000},
        {"2024-02-29T00:00:00Z", 1709164800ull * 1000000000},
        {"1970-01-01T00:00:00Z", 0},
    };
    static const char *bad[] = {
        "",
        "abc",
        "-1",
        "1714564800.",
        "1714564800.1234567891", /* more than ns */
        "1714564800x",
        "2024-5-01",
        "2024-05-01T",
        "2024-05-01T12",
        "2024-05-01T12:00:00ZZ",
        "2024-05-01T24:00:00Z",
        "2024-05-01T12:60:00Z",
        "2024-13-01",
        "2024-00-10",
        "2023-02-29", /* not a leap year */
        "2024-04-31",
        "2024-05-01T12:00:00+2:00",
        "2024-05-01T12:00:00+02",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00+01:00", /* before the epoch in UTC */
    };
    uint64_t ns;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ns = 1;
        ck_assert_msg(cli_parse_time(good[i].s, &ns), "rejected '%s'", good[i].s);
        ck_assert_msg(ns == good[i].ns, "'%s' -> %llu", good[i].s, (unsigned long long)ns);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!cli_parse_time(bad[i], &ns), "accepted '%s'", bad[i]);
    ck_assert(!cli_parse_time(NULL, &ns));
}
END_TEST

START_TEST(test_cli_format_time)
{
    char buf[40];
    uint64_t ns;

    cli_format_time(1714564800ull * 1000000000 + 123456789, buf, sizeof(buf));
    ck_assert_str_eq(buf, "2024-05-01T12:00:00.123Z");
    cli_format_time(0, buf, sizeof(buf));
    ck_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
    /* printed times parse back (to the millisecond) */
    ck_assert(cli_parse_time("2024-05-01T12:00:00.123Z", &ns));
    cli_format_time(ns, buf, sizeof(buf));
    ck_assert_str_eq(buf, "2024-05-01T12:00:00.123Z");
}
END_TEST

START_TEST(test_cli_parse_start)
{
    rmq_replay_opts o;

    ck_assert(cli_parse_start("new", &o));
    ck_assert_int_eq(o.start, RMQ_START_NEW);
    ck_assert(cli_parse_start("all", &o));
    ck_assert_int_eq(o.start, RMQ_START_ALL);
    ck_assert(cli_parse_start("last", &o));
    ck_assert_int_eq(o.start, RMQ_START_LAST);
    ck_assert(cli_parse_start("seq=42", &o));
    ck_assert_int_eq(o.start, RMQ_START_SEQ);
    ck_assert_uint_eq(o.seq, 42);
    ck_assert(cli_parse_start("time=2024-05-01T12:00:00Z", &o));
    ck_assert_int_eq(o.start, RMQ_START_TIME);
    ck_assert_uint_eq(o.time_ns, 1714564800ull * 1000000000);
    ck_assert(cli_parse_start("time=1714564800", &o));
    ck_assert_uint_eq(o.time_ns, 1714564800ull * 1000000000);
    static const char *bad[] = {"",    "NEW",   "first",          "seq=", "seq=-1", "seq=x",
                                "seq", "time=", "time=yesterday", "all ", "seq=1 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!cli_parse_start(bad[i], &o), "accepted '%s'", bad[i]);
    ck_assert(!cli_parse_start(NULL, &o));
}
END_TEST

START_TEST(test_cli_name_ok)
{
    char name[RMQ_NAME_MAX + 2];

    ck_assert(cli_name_ok("orders"));
    ck_assert(cli_name_ok("Orders_2024-eu"));
    ck_assert(cli_name_ok("a"));
    ck_assert(!cli_name_ok(""));
    ck_assert(!cli_name_ok(NULL));
    ck_assert(!cli_name_ok("a.b"));
    ck_assert(!cli_name_ok("a b"));
    ck_assert(!cli_name_ok("a*"));
    ck_assert(!cli_name_ok("caf\xc3\xa9"));
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    ck_assert(!cli_name_ok(name)); /* 65 */
    name[RMQ_NAME_MAX] = '\0';
    ck_assert(cli_name_ok(name)); /* 64 */
}
END_TEST

Suite *cli_parse_suite(void);

/* The CLI value parsers: TCase core. */
Suite *cli_parse_suite(void)
{
    Suite *s = suite_create("cli_parse");
    TCase *core = tcase_create("core");

    tcase_add_test(core, test_cli_parse_duration);
    tcase_add_test(core, test_cli_format_duration);
    tcase_add_test(core, test_cli_parse_time);
    tcase_add_test(core, test_cli_format_time);
    tcase_add_test(core, test_cli_parse_start);
    tcase_add_test(core, test_cli_name_ok);
    suite_add_tcase(s, core);
    return s;
}

/* Run every test; exit 0 when all pass. */
int main(void)
{
    SRunner *sr = srunner_create(cli_parse_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
