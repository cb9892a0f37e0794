/* A JSON reader behind cJSON's names (RFC 8259: objects, arrays, strings with escapes, numbers, literals).
 * Written for this runtime; memory comes from the app's heap as cJSON's does. */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cJSON.h"

typedef struct {
    const char *p, *end;
    int depth;
} reader_t;

static const char *error_ptr;

const char *cJSON_Version(void) { return "1.7.18"; }
const char *cJSON_GetErrorPtr(void) { return error_ptr; }
void cJSON_free(void *object) { free(object); }

void cJSON_Delete(cJSON *item)
{
    while (item) {
        cJSON *next = item->next;
        if (!(item->type & cJSON_IsReference) && item->child) cJSON_Delete(item->child);
        if (!(item->type & cJSON_IsReference)) free(item->valuestring);
        if (!(item->type & cJSON_StringIsConst)) free(item->string);
        free(item);
        item = next;
    }
}

static void skip_ws(reader_t *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

static cJSON *parse_value(reader_t *r);

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static char *parse_string_raw(reader_t *r)
{
    if (r->p >= r->end || *r->p != '"') return NULL;
    const char *s = ++r->p;
    size_t n = 0;
    while (s + n < r->end && s[n] != '"') {
        if (s[n] == '\\') n++;
        n++;
    }
    if (s + n >= r->end) return NULL;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t o = 0;
    const char *q = s;
    while (q < s + n) {
        if ((unsigned char)*q < 0x20) {
            free(out);
            return NULL;
        }
        if (*q != '\\') {
            out[o++] = *q++;
            continue;
        }
        q++;
        switch (*q) {
        case 'b': out[o++] = '\b'; q++; break;
        case 'f': out[o++] = '\f'; q++; break;
        case 'n': out[o++] = '\n'; q++; break;
        case 'r': out[o++] = '\r'; q++; break;
        case 't': out[o++] = '\t'; q++; break;
        case '"': case '\\': case '/': out[o++] = *q++; break;
        case 'u': {
            unsigned cp;
            if (q + 5 > s + n || !hex4(q + 1, &cp)) {
                free(out);
                return NULL;
            }
            q += 5;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (q + 6 > s + n || q[0] != '\\' || q[1] != 'u' || !hex4(q + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    free(out);
                    return NULL;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                q += 6;
            }
            if (cp < 0x80) {
                out[o++] = (char)cp;
            } else if (cp < 0x800) {
                out[o++] = (char)(0xC0 | cp >> 6);
                out[o++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                out[o++] = (char)(0xE0 | cp >> 12);
                out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                out[o++] = (char)(0x80 | (cp & 0x3F));
            } else {
                out[o++] = (char)(0xF0 | cp >> 18);
                out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                out[o++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            free(out);
            return NULL;
        }
    }
    out[o] = 0;
    r->p = s + n + 1;
    return out;
}

static cJSON *new_item(int type)
{
    cJSON *item = calloc(1, sizeof(cJSON));
    if (item) item->type = type;
    return item;
}

static cJSON *parse_number(reader_t *r)
{
    const char *s = r->p;
    const char *q = s;
    if (q < r->end && *q == '-') q++;
    if (q >= r->end || !isdigit((unsigned char)*q)) return NULL;
    while (q < r->end && (isdigit((unsigned char)*q) || *q == '.' || *q == 'e' || *q == 'E' || *q == '+' || *q == '-')) q++;
    char buf[64];
    size_t n = (size_t)(q - s);
    if (n >= sizeof(buf)) return NULL;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *endp;
    double d = strtod(buf, &endp);
    if (endp != buf + n) return NULL;
    cJSON *item = new_item(cJSON_Number);
    if (!item) return NULL;
    item->valuedouble = d;
    item->valueint = d >= INT_MAX ? INT_MAX : d <= (double)INT_MIN ? INT_MIN : (int)d;
    r->p = q;
    return item;
}

static cJSON *parse_container(reader_t *r, int type)
{
    if (++r->depth > CJSON_NESTING_LIMIT) return NULL;
    char close = type == cJSON_Array ? ']' : '}';
    cJSON *item = new_item(type);
    if (!item) return NULL;
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        r->depth--;
        return item;
    }
    cJSON *tail = NULL;
    for (;;) {
        skip_ws(r);
        char *name = NULL;
        if (type == cJSON_Object) {
            name = parse_string_raw(r);
            if (!name) goto fail;
            skip_ws(r);
            if (r->p >= r->end || *r->p != ':') {
                free(name);
                goto fail;
            }
            r->p++;
        }
        cJSON *child = parse_value(r);
        if (!child) {
            free(name);
            goto fail;
        }
        child->string = name;
        if (tail) {
            tail->next = child;
            child->prev = tail;
        } else {
            item->child = child;
        }
        tail = child;
        item->child->prev = tail;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == close) {
            r->p++;
            r->depth--;
            return item;
        }
        goto fail;
    }
fail:
    cJSON_Delete(item);
    return NULL;
}

static int literal(reader_t *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) >= n && memcmp(r->p, word, n) == 0) {
        r->p += n;
        return 1;
    }
    return 0;
}

static cJSON *parse_value(reader_t *r)
{
    skip_ws(r);
    if (r->p >= r->end) return NULL;
    switch (*r->p) {
    case '{': return parse_container(r, cJSON_Object);
    case '[': return parse_container(r, cJSON_Array);
    case '"': {
        char *s = parse_string_raw(r);
        if (!s) return NULL;
        cJSON *item = new_item(cJSON_String);
        if (!item) {
            free(s);
            return NULL;
        }
        item->valuestring = s;
        return item;
    }
    default:
        if (literal(r, "null")) return new_item(cJSON_NULL);
        if (literal(r, "true")) {
            cJSON *t = new_item(cJSON_True);
            if (t) t->valueint = 1;
            return t;
        }
        if (literal(r, "false")) return new_item(cJSON_False);
        return parse_number(r);
    }
}

cJSON *cJSON_ParseWithLengthOpts(const char *value, size_t buffer_length, const char **return_parse_end,
                                 cJSON_bool require_null_terminated)
{
    error_ptr = NULL;
    if (value == NULL || buffer_length == 0) return NULL;
    reader_t r = { value, value + buffer_length, 0 };
    /* a terminating NUL inside the buffer ends the text, as in cJSON */
    const char *nul = memchr(value, 0, buffer_length);
    if (nul) r.end = nul;
    cJSON *item = parse_value(&r);
    if (item) {
        skip_ws(&r);
        if (require_null_terminated && r.p < r.end) {
            cJSON_Delete(item);
            item = NULL;
        }
    }
    if (!item) error_ptr = r.p;
    if (return_parse_end) *return_parse_end = r.p;
    return item;
}

cJSON *cJSON_ParseWithOpts(const char *value, const char **return_parse_end, cJSON_bool require_null_terminated)
{
    if (value == NULL) return NULL;
    return cJSON_ParseWithLengthOpts(value, strlen(value) + 1, return_parse_end, require_null_terminated);
}

cJSON *cJSON_Parse(const char *value) { return cJSON_ParseWithOpts(value, 0, 0); }
cJSON *cJSON_ParseWithLength(const char *value, size_t buffer_length) { return cJSON_ParseWithLengthOpts(value, buffer_length, 0, 0); }

int cJSON_GetArraySize(const cJSON *array)
{
    int n = 0;
    if (array == NULL) return 0;
    for (cJSON *c = array->child; c; c = c->next) n++;
    return n;
}

cJSON *cJSON_GetArrayItem(const cJSON *array, int index)
{
    if (array == NULL || index < 0) return NULL;
    cJSON *c = array->child;
    while (c && index--) c = c->next;
    return c;
}

static cJSON *get_object_item(const cJSON *object, const char *name, int case_sensitive)
{
    if (object == NULL || name == NULL) return NULL;
    for (cJSON *c = object->child; c; c = c->next) {
        if (c->string && (case_sensitive ? strcmp(name, c->string) == 0 : strcasecmp(name, c->string) == 0)) return c;
    }
    return NULL;
}

cJSON *cJSON_GetObjectItem(const cJSON *const object, const char *const string) { return get_object_item(object, string, 0); }
cJSON *cJSON_GetObjectItemCaseSensitive(const cJSON *const object, const char *const string) { return get_object_item(object, string, 1); }
cJSON_bool cJSON_HasObjectItem(const cJSON *object, const char *string) { return cJSON_GetObjectItem(object, string) ? 1 : 0; }

char *cJSON_GetStringValue(const cJSON *const item) { return cJSON_IsString(item) ? item->valuestring : NULL; }
double cJSON_GetNumberValue(const cJSON *const item) { return cJSON_IsNumber(item) ? item->valuedouble : NAN; }

cJSON_bool cJSON_IsInvalid(const cJSON *const item) { return item ? (item->type & 0xFF) == cJSON_Invalid : 0; }
cJSON_bool cJSON_IsFalse(const cJSON *const item) { return item ? (item->type & 0xFF) == cJSON_False : 0; }
cJSON_bool cJSON_IsTrue(const cJSON *const item) { return item ? (item->type & 0xFF) == cJSON_True : 0; }
cJSON_bool cJSON_IsBool(const cJSON *const item) { return item ? (item->type & (cJSON_True | cJSON_False)) != 0 : 0; }
cJSON_bool cJSON_IsNull(const cJSON *const item) { return item ? (item->type & 0xFF) == cJSON_NULL : 0; }
cJSON_bool cJSON_IsNumber(const cJSON *const item) { return item ? (item->type & 0xFF) == cJSON_Number : 0; }
cJSON_bool cJSON_IsString(const cJSON *const item) { return item ? (item->type & 0xFF) == cJSON_String : 0; }
cJSON_bool cJSON_IsArray(const cJSON *const item) { return item ? (item->type & 0xFF) == cJSON_Array : 0; }
cJSON_bool cJSON_IsObject(const cJSON *const item) { return item ? (item->type & 0xFF) == cJSON_Object : 0; }
cJSON_bool cJSON_IsRaw(const cJSON *const item) { return item ? (item->type & 0xFF) == cJSON_Raw : 0; }
