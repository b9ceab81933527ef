/* libFuzzer target: the parsers of S3 answers (storage/s3_xml.h), i.e. every XML body an S3
 * server (or anything answering on s3.endpoint) sends the S3 backend: ListObjectsV2 pages,
 * errors, CreateMultipartUpload results and DeleteObjects results.
 *
 * The first input byte picks the parser, the rest is the body. Properties checked on every input
 * (besides ASan/UBSan/LeakSanitizer):
 * - a list page is either refused (WEIR_EPROTO, the page cleared) or every entry has a key, a
 *   truncated page has a non-empty continuation token;
 * - an upload id that is accepted is non-empty, NUL-terminated within its buffer;
 * - error codes and messages, and the first failed key of a DeleteResult, are NUL-terminated
 *   within their buffers; a DeleteResult count is >= 0 or WEIR_EPROTO.
 * Seeds: a real page of each answer (the shapes SeaweedFS and S3 send).
 *
 * Owns nothing beyond one input; no global state. Threading: libFuzzer's thread. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "fuzz_util.h"
#include "storage/s3_xml.h"

static const char LIST[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult "
    "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix>p/</Prefix>"
    "<KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter>"
    "<IsTruncated>true</IsTruncated><NextContinuationToken>dG9rZW4=</NextContinuationToken>"
    "<Contents><Key>p/a&amp;b</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
    "<ETag>&quot;abc&quot;</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>p/c</Key><Size>0</Size></Contents>"
    "<CommonPrefixes><Prefix>p/d/</Prefix></CommonPrefixes></ListBucketResult>";
static const char ERROR[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket"
                            "</Code><Message>The specified bucket does not exist</Message>"
                            "<Resource>/b/k</Resource><RequestId>1</RequestId></Error>";
static const char UPLOAD[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult "
    "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>b</Bucket><Key>k</Key>"
    "<UploadId>0123abcd-ef</UploadId></InitiateMultipartUploadResult>";
static const char DELETE[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult><Deleted><Key>a</Key></Deleted>"
    "<Error><Key>b</Key><Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>";

static void seed(const char *name, uint8_t which, const char *body) {
    size_t n = strlen(body);
    uint8_t *buf = malloc(n + 1);
    buf[0] = which;
    memcpy(buf + 1, body, n);
    weir_fuzz_seed(name, buf, n + 1);
    free(buf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    seed("list", 0, LIST);
    seed("error", 1, ERROR);
    seed("upload", 2, UPLOAD);
    seed("delete", 3, DELETE);
    return 0;
}

static void check_str(const char *s, size_t cap) {
    WEIR_FUZZ_CHECK(memchr(s, '\0', cap) != NULL, "not NUL-terminated within %zu bytes", cap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 4) {
    case 0: {
        weir__s3_list_page_t page;
        int rc = weir__s3_xml_list(body, len, &page);
        if (rc != 0) {
            WEIR_FUZZ_CHECK(rc == WEIR_EPROTO || rc == WEIR_ENOMEM, "rc %d", rc);
            WEIR_FUZZ_CHECK(page.n == 0 && !page.entries && !page.next_token, "page not cleared");
        } else {
            for (size_t i = 0; i < page.n; i++)
                WEIR_FUZZ_CHECK(page.entries[i].key != NULL, "entry %zu without key", i);
            if (page.truncated)
                WEIR_FUZZ_CHECK(page.next_token && page.next_token[0], "truncated, no token");
        }
        weir__s3_list_page_free(&page);
        break;
    }
    case 1: {
        char code[16], msg[32];
        int rc = weir__s3_xml_error(body, len, code, sizeof code, msg, sizeof msg);
        WEIR_FUZZ_CHECK(rc == 0 || rc == WEIR_EPROTO, "rc %d", rc);
        check_str(code, sizeof code);
        check_str(msg, sizeof msg);
        break;
    }
    case 2: {
        char id[24];
        int rc = weir__s3_xml_upload_id(body, len, id, sizeof id);
        WEIR_FUZZ_CHECK(rc == 0 || rc == WEIR_EPROTO, "rc %d", rc);
        check_str(id, sizeof id);
        if (rc == 0)
            WEIR_FUZZ_CHECK(id[0] != '\0', "empty upload id accepted");
        break;
    }
    default: {
        char key[16], code[16];
        int n = weir__s3_xml_delete_result(body, len, key, sizeof key, code, sizeof code);
        WEIR_FUZZ_CHECK(n >= 0 || n == WEIR_EPROTO, "rc %d", n);
        check_str(key, sizeof key);
        check_str(code, sizeof code);
        break;
    }
    }
    return 0;
}
