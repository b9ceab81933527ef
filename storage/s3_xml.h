/* Internal to storage/: the parsers of the XML answers of an S3 server (s3_xml.c), apart from
 * s3.c so that tests/fuzz/fuzz_s3_xml.c reaches them without a server. Every function takes a
 * body of at most WEIR__S3_XML_MAX bytes (the caller bounds what it reads) and never reads
 * beyond len; nothing is fetched from the network (no DTD, no external entity). */
#ifndef WEIR_STORAGE_S3_XML_H
#define WEIR_STORAGE_S3_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Largest answer body parsed (a ListObjectsV2 page of 1000 keys of 1 KiB is ~1.2 MiB). */
#define WEIR__S3_XML_MAX (4u << 20)

/** One entry of a ListObjectsV2 page: a Contents/Key (is_dir false) or a CommonPrefixes/Prefix
 * (is_dir true). key is malloc'd and is the full object key as the server sent it. */
typedef struct weir__s3_entry {
    char *key;
    uint64_t size;
    bool is_dir;
} weir__s3_entry_t;

typedef struct weir__s3_list_page {
    weir__s3_entry_t *entries;
    size_t n;
    bool truncated;   /* IsTruncated */
    char *next_token; /* NextContinuationToken (malloc'd) or NULL */
} weir__s3_list_page_t;

/** Parses a ListBucketResult. @returns 0, or WEIR_EPROTO (not XML, another root element, a Size
 * that is not a number, a Key missing, truncated without a token) with @p page empty. */
int weir__s3_xml_list(const char *body, size_t len, weir__s3_list_page_t *page);
/** Frees what a page holds and clears it. */
void weir__s3_list_page_free(weir__s3_list_page_t *page);

/** Parses an <Error> answer: Code and Message into @p code / @p msg (NUL-terminated, truncated
 * to fit; "" when absent). @returns 0 if the root is <Error>, else WEIR_EPROTO. */
int weir__s3_xml_error(const char *body, size_t len, char *code, size_t code_cap, char *msg,
                       size_t msg_cap);
/** Parses an InitiateMultipartUploadResult: its UploadId into @p out. @returns 0 or WEIR_EPROTO
 * (also when the id is empty or does not fit). */
int weir__s3_xml_upload_id(const char *body, size_t len, char *out, size_t cap);
/** Parses a DeleteResult: @returns the number of <Error> entries (>= 0), the first one's Key
 * and Code copied into @p key / @p code; or WEIR_EPROTO for another document. */
int weir__s3_xml_delete_result(const char *body, size_t len, char *key, size_t key_cap, char *code,
                               size_t code_cap);

#endif
