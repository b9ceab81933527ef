/* Owns the text of weir error codes. Stateless; safe from any thread. */
#include "err.h"

const char *weir_strerror(int err) {
    switch (err) {
#define WEIR_ERR_TEXT(name, code, text)                                                            \
    case code:                                                                                     \
        return text;
        WEIR_ERRORS(WEIR_ERR_TEXT)
#undef WEIR_ERR_TEXT
    }
    return "unknown error";
}

const char *weir_err_name(int err) {
    switch (err) {
#define WEIR_ERR_NAME(name, code, text)                                                            \
    case code:                                                                                     \
        return "WEIR_" #name;
        WEIR_ERRORS(WEIR_ERR_NAME)
#undef WEIR_ERR_NAME
    }
    return "WEIR_UNKNOWN";
}
