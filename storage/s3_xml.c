/* The XML answers of an S3 server (ListObjectsV2 pages, errors, multipart ids, DeleteObjects
 * results) parsed with libxml2 into plain C values. Owns nothing beyond the call: each function
 * parses a bounded body into a tree, copies what it needs and frees the tree.
 * Safety: no network access and no entity substitution (XML_PARSE_NONET, no XML_PARSE_NOENT or
 * DTD loading), libxml2's default depth and size limits (no XML_PARSE_HUGE), bodies above
 * WEIR__S3_XML_MAX refused before parsing, and libxml2's error output silenced
 * (XML_PARSE_NOERROR | XML_PARSE_NOWARNING): a malformed answer is WEIR_EPROTO, never a crash or
 * a line on stderr. Threading: reentrant (a parser context per call). Fuzzed by
 * tests/fuzz/fuzz_s3_xml.c. */
#include "storage/s3_xml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "common/err.h"

static xmlDocPtr parse(const char *body, size_t len) {
    if (!body || len == 0 || len > WEIR__S3_XML_MAX)
        return NULL;
    xmlParserCtxtPtr ctx = xmlNewParserCtxt();
    if (!ctx)
        return NULL;
    xmlDocPtr doc = xmlCtxtReadMemory(ctx, body, (int)len, "s3.xml", NULL,
                                      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                          XML_PARSE_NOCDATA);
    xmlFreeParserCtxt(ctx);
    return doc;
}

/* The root element if it is named @p name (namespace ignored), else NULL. */
static xmlNodePtr root_named(xmlDocPtr doc, const char *name) {
    xmlNodePtr r = doc ? xmlDocGetRootElement(doc) : NULL;
    if (!r || r->type != XML_ELEMENT_NODE || strcmp((const char *)r->name, name) != 0)
        return NULL;
    return r;
}

static bool is_el(xmlNodePtr n, const char *name) {
    return n && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static xmlNodePtr child(xmlNodePtr parent, const char *name) {
    for (xmlNodePtr c = parent ? parent->children : NULL; c; c = c->next)
        if (is_el(c, name))
            return c;
    return NULL;
}

/* The text of element @p n, malloc'd ("" for an empty element), or NULL (no memory). */
static char *text(xmlNodePtr n) {
    xmlChar *t = xmlNodeGetContent(n);
    char *s = strdup(t ? (const char *)t : "");
    xmlFree(t);
    return s;
}

static void copy_text(xmlNodePtr n, char *out, size_t cap) {
    if (cap == 0)
        return;
    out[0] = '\0';
    if (!n)
        return;
    xmlChar *t = xmlNodeGetContent(n);
    if (t) {
        size_t l = strlen((const char *)t);
        if (l >= cap)
            l = cap - 1;
        memcpy(out, t, l);
        out[l] = '\0';
    }
    xmlFree(t);
}

static int parse_u64(const char *s, uint64_t *out) {
    if (!s || *s < '0' || *s > '9')
        return WEIR_EPROTO;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0')
        return WEIR_EPROTO;
    *out = v;
    return 0;
}

static int push(weir__s3_list_page_t *p, size_t *cap, char *key, uint64_t size, bool is_dir) {
    if (p->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        weir__s3_entry_t *e = realloc(p->entries, nc * sizeof *e);
        if (!e)
            return WEIR_ENOMEM;
        p->entries = e;
        *cap = nc;
    }
    p->entries[p->n++] = (weir__s3_entry_t){.key = key, .size = size, .is_dir = is_dir};
    return 0;
}

void weir__s3_list_page_free(weir__s3_list_page_t *page) {
    if (!page)
        return;
    for (size_t i = 0; i < page->n; i++)
        free(page->entries[i].key);
    free(page->entries);
    free(page->next_token);
    memset(page, 0, sizeof *page);
}

int weir__s3_xml_list(const char *body, size_t len, weir__s3_list_page_t *page) {
    memset(page, 0, sizeof *page);
    xmlDocPtr doc = parse(body, len);
    xmlNodePtr root = root_named(doc, "ListBucketResult");
    int rc = root ? 0 : WEIR_EPROTO;
    size_t cap = 0;
    for (xmlNodePtr c = root ? root->children : NULL; c && rc == 0; c = c->next) {
        if (is_el(c, "Contents")) {
            xmlNodePtr k = child(c, "Key"), s = child(c, "Size");
            if (!k) {
                rc = WEIR_EPROTO;
                break;
            }
            uint64_t size = 0;
            if (s) {
                char *st = text(s);
                rc = st ? parse_u64(st, &size) : WEIR_ENOMEM;
                free(st);
                if (rc)
                    break;
            }
            char *key = text(k);
            if (!key || (rc = push(page, &cap, key, size, false)) != 0) {
                free(key);
                rc = rc ? rc : WEIR_ENOMEM;
            }
        } else if (is_el(c, "CommonPrefixes")) {
            xmlNodePtr k = child(c, "Prefix");
            if (!k) {
                rc = WEIR_EPROTO;
                break;
            }
            char *key = text(k);
            if (!key || (rc = push(page, &cap, key, 0, true)) != 0) {
                free(key);
                rc = rc ? rc : WEIR_ENOMEM;
            }
        } else if (is_el(c, "IsTruncated")) {
            char *t = text(c);
            if (!t)
                rc = WEIR_ENOMEM;
            else
                page->truncated = strcmp(t, "true") == 0;
            free(t);
        } else if (is_el(c, "NextContinuationToken")) {
            free(page->next_token);
            page->next_token = text(c);
            if (!page->next_token)
                rc = WEIR_ENOMEM;
        }
    }
    if (rc == 0 && page->truncated && (!page->next_token || !page->next_token[0]))
        rc = WEIR_EPROTO;
    if (rc)
        weir__s3_list_page_free(page);
    xmlFreeDoc(doc);
    return rc;
}

int weir__s3_xml_error(const char *body, size_t len, char *code, size_t code_cap, char *msg,
                       size_t msg_cap) {
    if (code_cap)
        code[0] = '\0';
    if (msg_cap)
        msg[0] = '\0';
    xmlDocPtr doc = parse(body, len);
    xmlNodePtr root = root_named(doc, "Error");
    if (root) {
        copy_text(child(root, "Code"), code, code_cap);
        copy_text(child(root, "Message"), msg, msg_cap);
    }
    xmlFreeDoc(doc);
    return root ? 0 : WEIR_EPROTO;
}

int weir__s3_xml_upload_id(const char *body, size_t len, char *out, size_t cap) {
    if (cap)
        out[0] = '\0';
    xmlDocPtr doc = parse(body, len);
    xmlNodePtr root = root_named(doc, "InitiateMultipartUploadResult");
    xmlNodePtr id = child(root, "UploadId");
    int rc = WEIR_EPROTO;
    if (id && cap) {
        xmlChar *t = xmlNodeGetContent(id);
        size_t l = t ? strlen((const char *)t) : 0;
        if (l > 0 && l < cap) {
            memcpy(out, t, l + 1);
            rc = 0;
        }
        xmlFree(t);
    }
    xmlFreeDoc(doc);
    return rc;
}

int weir__s3_xml_delete_result(const char *body, size_t len, char *key, size_t key_cap, char *code,
                               size_t code_cap) {
    if (key_cap)
        key[0] = '\0';
    if (code_cap)
        code[0] = '\0';
    xmlDocPtr doc = parse(body, len);
    xmlNodePtr root = root_named(doc, "DeleteResult");
    int n = root ? 0 : WEIR_EPROTO;
    for (xmlNodePtr c = root ? root->children : NULL; c; c = c->next) {
        if (!is_el(c, "Error"))
            continue;
        if (n == 0) {
            copy_text(child(c, "Key"), key, key_cap);
            copy_text(child(c, "Code"), code, code_cap);
        }
        if (n < 1000000)
            n++;
    }
    xmlFreeDoc(doc);
    return n;
}
