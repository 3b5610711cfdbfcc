/*
 * msgpack.c — a bounded msgpack reader for Orbax's legacy aggregate file
 * (design and invariants in msgpack.h).
 */
#include <string.h>

#include "error_private.h"
#include "msgpack.h"

typedef struct mp {
	const uint8_t *b;
	size_t len, pos;
	const char *what;
	const char *keys[MSGPACK_MAX_DEPTH];
	size_t keylens[MSGPACK_MAX_DEPTH];
	msgpack_leaf_cb cb;
	void *payload;
} mp;

static int bad(const mp *m, const char *why)
{
	return ckpt_error_set(CKPT_EINVAL, "%s: msgpack: %s at byte %zu", m->what, why, m->pos);
}

static int take(mp *m, size_t n, const uint8_t **out)
{
	if (n > m->len - m->pos)
		return bad(m, "truncated");
	*out = m->b + m->pos;
	m->pos += n;
	return 0;
}

static int be(mp *m, unsigned n, uint64_t *out)
{
	const uint8_t *p = NULL;
	int rc = take(m, n, &p);

	*out = 0;
	for (unsigned i = 0; rc == 0 && i < n; i++)
		*out = *out << 8 | p[i];
	return rc;
}

/* One header: what follows. */
enum { T_NIL, T_BOOL, T_UINT, T_INT, T_F32, T_F64, T_STR, T_BIN, T_ARR, T_MAP, T_EXT };

typedef struct head {
	int t;
	uint64_t u; /* value, or length / count */
	int64_t i;
	int ext;
} head;

static int read_head(mp *m, head *h)
{
	const uint8_t *p = NULL;
	uint64_t v;
	int rc = take(m, 1, &p);
	uint8_t c;

	if (rc)
		return rc;
	c = *p;
	memset(h, 0, sizeof(*h));
	if (c <= 0x7f)
		return h->t = T_UINT, h->u = c, 0;
	if (c >= 0xe0)
		return h->t = T_INT, h->i = (int8_t)c, 0;
	if ((c & 0xf0) == 0x80)
		return h->t = T_MAP, h->u = c & 0x0f, 0;
	if ((c & 0xf0) == 0x90)
		return h->t = T_ARR, h->u = c & 0x0f, 0;
	if ((c & 0xe0) == 0xa0)
		return h->t = T_STR, h->u = c & 0x1f, 0;
	switch (c) {
	case 0xc0: return h->t = T_NIL, 0;
	case 0xc2:
	case 0xc3: return h->t = T_BOOL, h->u = c == 0xc3, 0;
	case 0xc4:
	case 0xc5:
	case 0xc6: h->t = T_BIN; return be(m, 1u << (c - 0xc4), &h->u);
	case 0xc7:
	case 0xc8:
	case 0xc9:
		h->t = T_EXT;
		rc = be(m, 1u << (c - 0xc7), &h->u);
		if (rc == 0 && (rc = be(m, 1, &v)) == 0)
			h->ext = (int8_t)v;
		return rc;
	case 0xca: h->t = T_F32; return be(m, 4, &h->u);
	case 0xcb: h->t = T_F64; return be(m, 8, &h->u);
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf: h->t = T_UINT; return be(m, 1u << (c - 0xcc), &h->u);
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3: {
		unsigned n = 1u << (c - 0xd0);
		h->t = T_INT;
		rc = be(m, n, &v);
		h->i = n == 8
			   ? (int64_t)v
			   : (int64_t)(v ^ (1ull << (8 * n - 1))) - (int64_t)(1ull << (8 * n - 1));
		return rc;
	}
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		h->t = T_EXT;
		h->u = 1u << (c - 0xd4);
		rc = be(m, 1, &v);
		h->ext = (int8_t)v;
		return rc;
	case 0xd9:
	case 0xda:
	case 0xdb: h->t = T_STR; return be(m, 1u << (c - 0xd9), &h->u);
	case 0xdc:
	case 0xdd: h->t = T_ARR; return be(m, 2u << (c - 0xdc), &h->u);
	case 0xde:
	case 0xdf: h->t = T_MAP; return be(m, 2u << (c - 0xde), &h->u);
	}
	return bad(m, "unknown type byte");
}

/* The ndarray payload of ext 1/3: [shape, dtype, bytes]. */
static int ndarray(mp *m, msgpack_leaf *l, size_t end)
{
	head h;
	const uint8_t *p = NULL;
	int rc = read_head(m, &h);

	if (rc || h.t != T_ARR || h.u != 3)
		return rc ? rc : bad(m, "ndarray payload is not [shape, dtype, data]");
	if ((rc = read_head(m, &h)))
		return rc;
	if (h.t != T_ARR || h.u > MSGPACK_MAX_NDIM)
		return bad(m, "bad ndarray shape");
	l->ndim = (unsigned)h.u;
	uint64_t n = 1;
	for (unsigned d = 0; d < l->ndim; d++) {
		head e;
		if ((rc = read_head(m, &e)))
			return rc;
		if (e.t != T_UINT || (e.u && n > (UINT64_MAX >> 1) / e.u))
			return bad(m, "bad ndarray shape");
		l->shape[d] = e.u;
		n *= e.u;
	}
	if ((rc = read_head(m, &h)) || h.t != T_STR || (rc = take(m, h.u, &p)))
		return rc ? rc : bad(m, "bad ndarray dtype");
	char name[32];
	if (h.u >= sizeof(name))
		return bad(m, "bad ndarray dtype");
	memcpy(name, p, h.u);
	name[h.u] = '\0';
	if (ckpt_dtype_from_name(&l->dtype, name) != 0)
		return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: msgpack: unsupported dtype '%s'",
				      m->what, name);
	if ((rc = read_head(m, &h)) || h.t != T_BIN)
		return rc ? rc : bad(m, "ndarray data is not bytes");
	size_t isz = ckpt_dtype_size(l->dtype);
	if (n > UINT64_MAX / isz || h.u != n * isz) /* invariant 2 */
		return bad(m, "ndarray data size does not match its shape and dtype");
	l->data_off = m->pos;
	l->data_len = h.u;
	if ((rc = take(m, h.u, &p)))
		return rc;
	return m->pos == end ? 0 : bad(m, "bytes after the ndarray payload");
}

static int value(mp *m, unsigned depth);

static int leaf(mp *m, unsigned depth, const msgpack_leaf *l)
{
	return m->cb(m->keys, m->keylens, depth, l, m->payload);
}

static int map(mp *m, uint64_t n, unsigned depth)
{
	int rc = 0;

	if (depth >= MSGPACK_MAX_DEPTH)
		return bad(m, "nested too deep");
	for (uint64_t i = 0; rc == 0 && i < n; i++) {
		head k;
		const uint8_t *p = NULL;
		if ((rc = read_head(m, &k)))
			break;
		if (k.t == T_STR) {
			if ((rc = take(m, k.u, &p)))
				break;
			m->keys[depth] = (const char *)p;
			m->keylens[depth] = k.u;
		} else {
			return bad(m, "a map key that is not a string");
		}
		rc = value(m, depth + 1);
	}
	return rc;
}

static int value(mp *m, unsigned depth)
{
	head h;
	msgpack_leaf l;
	const uint8_t *p = NULL;
	int rc = read_head(m, &h);

	if (rc)
		return rc;
	memset(&l, 0, sizeof(l));
	switch (h.t) {
	case T_MAP: {
		/* a chunked array (> 1 GiB) is a map with this marker: not supported */
		size_t save = m->pos;
		head k;
		if (h.u && read_head(m, &k) == 0 && k.t == T_STR && k.u == 25 &&
		    take(m, k.u, &p) == 0 && memcmp(p, "__msgpack_chunked_array__", 25) == 0)
			return ckpt_error_set(
			    CKPT_EUNSUPPORTED,
			    "%s: msgpack: chunked arrays (over 1 GiB) are not supported", m->what);
		m->pos = save;
		return map(m, h.u, depth);
	}
	case T_NIL: l.kind = MP_NIL; break;
	case T_BOOL:
		l.kind = MP_BOOL;
		l.i = (int64_t)h.u;
		break;
	case T_UINT:
		if (h.u > INT64_MAX)
			return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: msgpack: integer above int64",
					      m->what);
		l.kind = MP_INT;
		l.i = (int64_t)h.u;
		break;
	case T_INT:
		l.kind = MP_INT;
		l.i = h.i;
		break;
	case T_F32: {
		uint32_t b = (uint32_t)h.u;
		float f;
		memcpy(&f, &b, 4);
		l.kind = MP_FLOAT;
		l.f = f;
		break;
	}
	case T_F64:
		l.kind = MP_FLOAT;
		memcpy(&l.f, &h.u, 8);
		break;
	case T_STR:
		if ((rc = take(m, h.u, &p)))
			return rc;
		l.kind = h.u > 14 && memcmp(p, "PLACEHOLDER://", 14) == 0 ? MP_PLACEHOLDER : MP_STR;
		l.s = (const char *)p + (l.kind == MP_PLACEHOLDER ? 14 : 0);
		l.slen = h.u - (l.kind == MP_PLACEHOLDER ? 14 : 0);
		break;
	case T_EXT: {
		if (h.u > m->len - m->pos)
			return bad(m, "truncated");
		size_t end = m->pos + h.u;
		if (h.ext != 1 && h.ext != 3)
			return ckpt_error_set(
			    CKPT_EUNSUPPORTED,
			    "%s: msgpack: ext type %d (complex or tuple) is not supported", m->what,
			    h.ext);
		l.kind = MP_ARRAY;
		if ((rc = ndarray(m, &l, end)))
			return rc;
		break;
	}
	default:
		return ckpt_error_set(CKPT_EUNSUPPORTED, "%s: msgpack: a list or bytes leaf",
				      m->what);
	}
	return leaf(m, depth, &l);
}

int msgpack_leaves(const uint8_t *buf, size_t len, const char *what, msgpack_leaf_cb cb,
		   void *payload)
{
	mp m = {.b = buf, .len = len, .what = what, .cb = cb, .payload = payload};
	head h;
	int rc = read_head(&m, &h);

	if (rc)
		return rc;
	if (h.t != T_MAP)
		return bad(&m, "the top level is not a map");
	rc = map(&m, h.u, 0);
	if (rc == 0 && m.pos != len)
		rc = bad(&m, "bytes after the top-level map");
	return rc;
}
