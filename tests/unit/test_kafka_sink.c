/* Unit tests of the Kafka sink's option checks (connectors/kafka/kafka_sink.c,
 * weir__kafka_sink_validate: what the CLI runs at submission, without a broker): a valid
 * configuration passes; each kind of bad input is refused with one line naming the operator, the
 * option and the fix. Expected texts are written out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/err.h"
#include "connectors/kafka/kafka.h"
#include "runtime/graph/graph.h"
#include "weir/weir.h"

/* Validates a Kafka sink with the base options plus @p extra (key, value, ..., NULL). */
static int validate(const char *const *extra, char *err, size_t errlen) {
    weir_job_t *job = weir_graph_new("t", 1);
    weir_datagen_opts_t o = {.count = 1};
    const char *opts[32] = {"bootstrap.servers", "127.0.0.1:9092", "topic", "out"};
    size_t n = 4;
    for (; extra && extra[0]; extra += 2) {
        opts[n++] = extra[0];
        opts[n++] = extra[1];
    }
    opts[n] = NULL;
    weir_sink_kafka(weir_source_datagen(job, "src", &o), "to-kafka", opts);
    err[0] = 0;
    int rc = weir__kafka_sink_validate(&job->nodes[1], err, errlen);
    weir_graph_destroy(&job);
    return rc;
}

static void expect_refused(const char *const *extra, const char *text) {
    char err[768];
    assert_int_equal(validate(extra, err, sizeof err), WEIR_EINVAL);
    if (!strstr(err, text))
        fail_msg("message '%s' lacks '%s'", err, text);
    assert_null(strchr(err, '\n'));
}

static void test_valid(void **state) {
    (void)state;
    char err[512];
    const char *eo[] = {"sink.delivery-guarantee",
                        "exactly-once",
                        "sink.transactional-id-prefix",
                        "my-app",
                        "transaction.timeout.ms",
                        "600000",
                        "sink.partitioner",
                        "fixed",
                        "key.format",
                        "none",
                        "value.format",
                        "json",
                        "properties.linger.ms",
                        "5",
                        NULL};
    assert_int_equal(validate(eo, err, sizeof err), 0);
    assert_int_equal(validate(NULL, err, sizeof err), 0);
}

static void test_refusals(void **state) {
    (void)state;
    expect_refused((const char *[]){"sink.delivery", "exactly-once", NULL},
                   "Kafka sink 'to-kafka': unknown option 'sink.delivery': use one of");
    expect_refused((const char *[]){"sink.delivery-guarantee", "exactly_once", NULL},
                   "option 'sink.delivery-guarantee' is 'exactly_once': use one of none, "
                   "at-least-once, exactly-once");
    expect_refused((const char *[]){"value.format", "avro", NULL},
                   "option 'value.format' is 'avro': use one of raw, string, json");
    expect_refused((const char *[]){"sink.transactional-id-pool-size", "2", NULL},
                   "option 'sink.transactional-id-pool-size' is '2': use an integer from 3 to 64");
    expect_refused((const char *[]){"transaction.timeout.ms", "15min", NULL},
                   "option 'transaction.timeout.ms' is '15min': use an integer");
    expect_refused((const char *[]){"sink.transactional-id-prefix", "my app", NULL},
                   "'sink.transactional-id-prefix' must be 1 to 200 printable ASCII characters");
    expect_refused((const char *[]){"sink.delivery-guarantee", "exactly-once",
                                    "properties.security.protocol", "SASL_SSL", NULL},
                   "exactly-once delivery needs a PLAINTEXT listener");
    expect_refused((const char *[]){"properties.transactional.id", "x", NULL},
                   "option 'properties.transactional.id' is set by the connector itself");
    expect_refused((const char *[]){"properties.no.such.property", "1", NULL},
                   "librdkafka property 'no.such.property'");
}

static void test_missing_required(void **state) {
    (void)state;
    weir_job_t *job = weir_graph_new("t", 1);
    weir_datagen_opts_t o = {.count = 1};
    weir_sink_kafka(weir_source_datagen(job, "src", &o), "to-kafka",
                    (const char *[]){"bootstrap.servers", "b:1", NULL});
    char err[512];
    assert_int_equal(weir__kafka_sink_validate(&job->nodes[1], err, sizeof err), WEIR_EINVAL);
    assert_string_equal(err, "Kafka sink 'to-kafka': option 'topic' is required");
    weir_graph_destroy(&job);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_missing_required),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
