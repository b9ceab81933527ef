/* The two functions of the word count examples (wordcount.c, kafka_wordcount.c), shared so both
 * count the same way:
 *  - wc_split (flat_map): a msgpack str line -> one record per word, words separated by ASCII
 *    whitespace (" \t\n\v\f\r") and kept exactly as written; value the word (str), key the word
 *    (its first WEIR_MAX_KEY_LEN bytes; longer words share a key by prefix);
 *  - wc_count (keyed process, udata a wc_count_t): adds 1 to the word's value state `count`
 *    (8 bytes little-endian) and emits "<word> <count>" (str) with the word as key.
 * Threading: define() runs once per subtask; udata is private to that subtask's thread. */
#ifndef WORDCOUNT_FNS_H
#define WORDCOUNT_FNS_H

#include <weir/weir.h>

typedef struct wc_count {
    weir_state_id count;
} wc_count_t;

/* hidden: private to the plugin that links them (never interposed between two plugins) */
__attribute__((visibility("hidden"))) void wc_split(weir_ctx_t *ctx, const weir_record_t *in,
                                                    void *udata);
__attribute__((visibility("hidden"))) void wc_count(weir_ctx_t *ctx, const weir_record_t *in,
                                                    void *udata);

#endif
