/* s3.c — the S3 backend of storage.h (placeholder until the backend lands on this branch: every
 * s3:// location is refused at open with one line). */
#include "common/err.h"
#include "common/util.h"
#include "storage/storage_int.h"

int weir__storage_s3_open(weir_storage_t *st, const char *bucket, const char *prefix, char *errstr,
                          size_t errlen) {
    (void)prefix;
    return weir_errf(errstr, errlen, WEIR_ECONFIG, "%s: s3:// locations are not supported yet",
                     st && st->uri ? st->uri : bucket);
}
