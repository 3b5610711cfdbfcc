/*
 * cmd_cat.c — `ckpt cat PATH`: print a leaf the way numpy's print() does.
 *
 * Arrays follow numpy 1.24's str(): linewidth 75, threshold 1000 elements,
 * edgeitems 3 with "..." past it, precision 8 in 'maxprec' float mode (each
 * float the shortest decimal that reads back as the same value of its own
 * dtype, fixed or scientific notation for the whole array, padded to align).
 * 0-d arrays print as numpy scalars; scalar leaves as their text; strings as
 * their bytes.
 *
 * Invariants:
 *  1. Only printed elements are read: collect() visits the same indices in
 *     the same order as format_array() prints them, reading each run of
 *     contiguous printed elements with one ckpt_leaf_pread().
 *  2. The float format (fixed/exp, paddings) is computed over exactly the
 *     printed elements, as numpy computes it over the summarised data.
 */
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"

#define LINEWIDTH   75
#define THRESHOLD   1000
#define EDGEITEMS   3
#define PRECISION   8
#define MAX_PRINTED (16u << 20)

typedef struct val {
	double re, im; /* floats and complex */
	int64_t i;     /* signed ints and bool */
	uint64_t u;    /* unsigned ints */
} val;

/* How one real component is formatted (numpy FloatingFormat). */
typedef struct ffmt {
	ckpt_dtype fdt; /* the component's dtype, for shortest round trips */
	int plus;	/* sign '+' (imaginary parts) */
	int exp;	/* scientific notation */
	int prec;	/* exp: mantissa digits after the point */
	int exp_size;	/* exp: exponent digits */
	int pad_left, pad_right;
} ffmt;

typedef struct cat {
	ckpt_leaf *leaf;   /* a leaf of a PyTree item, or */
	ckpt_value *value; /* a raw .npy key (Array, JAX key items) */
	uint64_t data_off; /* bytes of .npy header before the data */
	ckpt_dtype dt;
	size_t esz;
	unsigned ndim;
	const uint64_t *shape;
	uint64_t stride[CKPT_TREE_MAX_NDIM]; /* in elements */
	int summary;
	val *vals;
	size_t nvals, cap, next;
	char kind; /* 'b' bool, 'i' int, 'u' uint, 'f' float, 'c' complex */
	ffmt re, im;
	int width; /* ints and bools */
} cat;

/* ---- a growable string ---- */

typedef struct sbuf {
	char *p;
	size_t n, cap;
	int oom;
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = (b->n + n + 1) * 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void sb_add(sbuf *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

static void sb_fmt(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(sbuf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	sb_add(b, tmp);
}

/* ---- shortest float digits ---- */

static int roundtrips(double v, double r, ckpt_dtype fdt)
{
	unsigned char a[8], b[8];

	if (fdt == CKPT_DTYPE_FLOAT64)
		return v == r;
	if (fdt == CKPT_DTYPE_FLOAT32)
		return (float)v == (float)r;
	if (ckpt_dtype_cast(a, fdt, &v, CKPT_DTYPE_FLOAT64, 1) < 0 ||
	    ckpt_dtype_cast(b, fdt, &r, CKPT_DTYPE_FLOAT64, 1) < 0)
		return v == r;
	return memcmp(a, b, ckpt_dtype_size(fdt)) == 0;
}

/* Significant digits of the shortest decimal of v that reads back the same; *e10 its exponent. */
static int shortest(double v, ckpt_dtype fdt, int *e10)
{
	char buf[48];
	int p;

	for (p = 1; p < 17; p++) {
		snprintf(buf, sizeof(buf), "%.*e", p - 1, v);
		if (roundtrips(v, strtod(buf, NULL), fdt))
			break;
	}
	snprintf(buf, sizeof(buf), "%.*e", p - 1, v);
	*e10 = atoi(strchr(buf, 'e') + 1);
	return p;
}

/* numpy dragon4_positional(unique, precision 8, trim '.'): "1.", "-0.25". */
static void positional(char *buf, size_t cap, double v, ckpt_dtype fdt, int plus)
{
	int e10, p = shortest(v, fdt, &e10), frac = p - 1 - e10;
	size_t n;

	if (frac < 0)
		frac = 0;
	if (frac > PRECISION)
		frac = PRECISION;
	snprintf(buf, cap, plus && !signbit(v) ? "+%.*f" : "%.*f", frac, v);
	n = strlen(buf);
	if (frac == PRECISION)
		while (n > 0 && buf[n - 1] == '0')
			buf[--n] = '\0';
	if (!strchr(buf, '.') && n + 1 < cap)
		strcat(buf, ".");
}

/* numpy dragon4_scientific(unique, precision 8): mantissa digits after the point. */
static int sci_digits(double v, ckpt_dtype fdt)
{
	int e10, p = shortest(v, fdt, &e10);
	return p - 1 > PRECISION ? PRECISION : p - 1;
}

/*
 * Scientific with exactly f->prec digits after the point: numpy's min_digits, which
 * prints the value's own further digits (not zeros) past its shortest repr.
 */
static void scientific(char *buf, size_t cap, double v, const ffmt *f)
{
	char m[64], *e;
	int e10;

	snprintf(m, sizeof(m), f->plus && !signbit(v) ? "+%.*e" : "%.*e", f->prec, v);
	e = strchr(m, 'e');
	e10 = atoi(e + 1);
	*e = '\0';
	snprintf(buf, cap, "%s%se%c%0*d", m, f->prec == 0 ? "." : "", e10 < 0 ? '-' : '+',
		 f->exp_size, abs(e10));
}

static void ffmt_fill(ffmt *f, const val *vals, size_t n, int imag)
{
	double maxv = 0, minv = INFINITY;
	int nfinite = 0, neginf = 0, nonfinite = 0;
	char buf[64];

	f->exp = 0;
	f->prec = 0;
	f->exp_size = 0;
	f->pad_left = f->pad_right = 0;
	for (size_t i = 0; i < n; i++) {
		double v = imag ? vals[i].im : vals[i].re;
		if (!isfinite(v)) {
			nonfinite = 1;
			neginf |= isinf(v) && v < 0;
			continue;
		}
		nfinite++;
		if (v != 0) {
			maxv = fmax(maxv, fabs(v));
			minv = fmin(minv, fabs(v));
		}
	}
	if (maxv > 0 && (maxv >= 1e8 || minv < 1e-4 || maxv / minv > 1e3))
		f->exp = 1;
	for (size_t i = 0; i < n && nfinite; i++) {
		double v = imag ? vals[i].im : vals[i].re;
		int left, right;
		if (!isfinite(v))
			continue;
		if (f->exp) {
			int d = sci_digits(v, f->fdt);
			f->prec = d > f->prec ? d : f->prec;
			left = (signbit(v) || f->plus) ? 2 : 1;
			f->pad_left = left > f->pad_left ? left : f->pad_left;
		} else {
			positional(buf, sizeof(buf), v, f->fdt, f->plus);
			left = (int)(strchr(buf, '.') - buf);
			right = (int)strlen(buf) - left - 1;
			f->pad_left = left > f->pad_left ? left : f->pad_left;
			f->pad_right = right > f->pad_right ? right : f->pad_right;
		}
	}
	for (size_t i = 0; i < n && f->exp; i++) { /* exponent digits, as printed */
		double v = imag ? vals[i].im : vals[i].re;
		if (isfinite(v)) {
			snprintf(buf, sizeof(buf), "%.*e", f->prec, v);
			int digits = (int)strlen(strchr(buf, 'e') + 2);
			f->exp_size = digits > f->exp_size ? digits : f->exp_size;
		}
	}
	if (f->exp)
		f->pad_right = f->exp_size + 2 + f->prec;
	if (nonfinite) {
		int offset = f->pad_right + 1, inflen = 3 + (neginf || f->plus);
		if (3 + f->plus - offset > f->pad_left)
			f->pad_left = 3 + f->plus - offset;
		if (inflen - offset > f->pad_left)
			f->pad_left = inflen - offset;
	}
}

static void ffmt_one(sbuf *b, const ffmt *f, double v)
{
	char buf[96];
	int len;

	if (!isfinite(v)) {
		snprintf(buf, sizeof(buf), "%s%s",
			 isnan(v)  ? (f->plus ? "+" : "")
			 : v < 0   ? "-"
			 : f->plus ? "+"
				   : "",
			 isnan(v) ? "nan" : "inf");
		sb_fmt(b, "%*s", f->pad_left + f->pad_right + 1, buf);
		return;
	}
	if (f->exp) {
		scientific(buf, sizeof(buf), v, f);
		len = (int)(strchr(buf, '.') - buf);
		sb_fmt(b, "%*s%s", f->pad_left - len, "", buf);
		return;
	}
	positional(buf, sizeof(buf), v, f->fdt, f->plus);
	len = (int)(strchr(buf, '.') - buf);
	sb_fmt(b, "%*s%s%*s", f->pad_left - len, "", buf,
	       f->pad_right - ((int)strlen(buf) - len - 1), "");
}

/* One element as numpy prints it inside an array. */
static void format_elem(sbuf *b, const cat *c, const val *v)
{
	switch (c->kind) {
	case 'b': sb_fmt(b, "%*s", c->width, v->i ? "True" : "False"); break;
	case 'i': sb_fmt(b, "%*lld", c->width, (long long)v->i); break;
	case 'u': sb_fmt(b, "%*llu", c->width, (unsigned long long)v->u); break;
	case 'f': ffmt_one(b, &c->re, v->re); break;
	default: {
		sbuf im = {0};
		size_t sp;
		ffmt_one(b, &c->re, v->re);
		ffmt_one(&im, &c->im, v->im);
		if (im.oom) {
			b->oom = 1;
			break;
		}
		for (sp = im.n; sp > 0 && im.p[sp - 1] == ' '; sp--)
			;
		sb_addn(b, im.p, sp);
		sb_add(b, "j");
		sb_add(b, im.p + sp);
		free(im.p);
	}
	}
}

/* Python repr of a float, as numpy scalars print: "1.0", "1e-05", "inf". */
static void py_repr(char *buf, size_t cap, double v, ckpt_dtype fdt, int strip_zero)
{
	int e10, p;

	if (!isfinite(v)) {
		snprintf(buf, cap, "%s", isnan(v) ? "nan" : v < 0 ? "-inf" : "inf");
		return;
	}
	p = shortest(v, fdt, &e10);
	if (e10 >= -4 && e10 < 16) {
		int frac = p - 1 - e10;
		snprintf(buf, cap, "%.*f%s", frac > 0 ? frac : 0, v,
			 frac > 0 || strip_zero ? "" : ".0");
	} else {
		char m[48], *e;
		snprintf(m, sizeof(m), "%.*e", p - 1, v);
		e = strchr(m, 'e');
		*e = '\0';
		snprintf(buf, cap, "%se%c%02d", m, e10 < 0 ? '-' : '+', abs(e10));
	}
}

/* ---- reading the printed elements ---- */

static int read_run(cat *c, uint64_t first, uint64_t count)
{
	size_t bytes = (size_t)(count * c->esz), got = 0;
	unsigned char *raw = malloc(bytes ? bytes : 1);
	int64_t *tmp = malloc((size_t)count * 16 + 16);
	int rc = 0;

	if (!raw || !tmp) {
		rc = cli_errorf("out of memory");
		goto done;
	}
	while (got < bytes) {
		size_t n = 0;
		uint64_t off = c->data_off + first * c->esz + got;
		if ((c->leaf ? ckpt_leaf_pread(&n, c->leaf, raw + got, bytes - got, off)
			     : ckpt_value_pread(&n, c->value, raw + got, bytes - got, off)) < 0) {
			rc = cli_fail();
			goto done;
		}
		if (n == 0) {
			rc = cli_errorf("%s: shorter than its shape",
					c->leaf ? ckpt_leaf_key(c->leaf) : "the .npy");
			goto done;
		}
		got += n;
	}
	ckpt_dtype target = c->kind == 'i' || c->kind == 'b' ? CKPT_DTYPE_INT64
			    : c->kind == 'u'		     ? CKPT_DTYPE_UINT64
			    : c->kind == 'f'		     ? CKPT_DTYPE_FLOAT64
							     : CKPT_DTYPE_COMPLEX128;
	if (ckpt_dtype_cast(tmp, target, raw, c->dt, (size_t)count) < 0) {
		rc = cli_fail();
		goto done;
	}
	for (uint64_t k = 0; k < count; k++) {
		val *v = &c->vals[c->nvals++];
		memset(v, 0, sizeof(*v));
		if (c->kind == 'i' || c->kind == 'b')
			v->i = tmp[k];
		else if (c->kind == 'u')
			memcpy(&v->u, &tmp[k], 8);
		else if (c->kind == 'f')
			memcpy(&v->re, &tmp[k], 8);
		else {
			memcpy(&v->re, &tmp[2 * k], 8);
			memcpy(&v->im, &tmp[2 * k + 1], 8);
		}
	}
done:
	free(raw);
	free(tmp);
	return rc;
}

static int shown(const cat *c, unsigned axis)
{
	return c->summary && c->shape[axis] > 2 * EDGEITEMS;
}

/* Count (dry) or read the printed elements of the sub-array at element `base`. */
static int collect(cat *c, unsigned axis, uint64_t base, uint64_t *count, int dry)
{
	uint64_t n = c->shape[axis];
	int rc;

	if (axis + 1 == c->ndim) {
		if (shown(c, axis)) {
			if (dry) {
				*count += 2 * EDGEITEMS;
				return 0;
			}
			if ((rc = read_run(c, base, EDGEITEMS)) != 0)
				return rc;
			return read_run(c, base + n - EDGEITEMS, EDGEITEMS);
		}
		if (dry) {
			*count += n;
			return 0;
		}
		return read_run(c, base, n);
	}
	for (uint64_t i = 0; i < n; i++) {
		if (shown(c, axis) && i == EDGEITEMS)
			i = n - EDGEITEMS;
		if ((rc = collect(c, axis + 1, base + i * c->stride[axis], count, dry)) != 0)
			return rc;
		if (dry && *count > MAX_PRINTED)
			return cli_errorf("too many elements to print; use ckpt get");
	}
	return 0;
}

/* ---- numpy's _formatArray ---- */

static void extend_line(sbuf *s, sbuf *line, const char *word, size_t width, const char *indent)
{
	if (line->n + strlen(word) > width && line->n > strlen(indent)) {
		size_t n = line->n;
		while (n > 0 && line->p[n - 1] == ' ')
			n--;
		sb_addn(s, line->p, n);
		sb_add(s, "\n");
		line->n = 0;
		sb_add(line, indent);
	}
	sb_add(line, word);
}

static void next_word(sbuf *w, cat *c)
{
	w->n = 0;
	sb_add(w, "");
	format_elem(w, c, &c->vals[c->next++]);
}

static void recurse(sbuf *out, cat *c, unsigned axis, const char *indent, size_t width)
{
	uint64_t n = c->shape[axis];
	int summary = shown(c, axis);
	uint64_t lead = summary ? EDGEITEMS : 0, trail = summary ? EDGEITEMS : n;
	size_t ilen = strlen(indent);
	char *next_indent = malloc(ilen + 2);
	sbuf s = {0}, line = {0}, w = {0};

	if (!next_indent) {
		out->oom = 1;
		return;
	}
	memcpy(next_indent, indent, ilen);
	strcpy(next_indent + ilen, " ");
	if (axis + 1 == c->ndim) {
		size_t elem_width = width - 1;
		sb_add(&line, indent);
		for (uint64_t i = 0; i < lead; i++) {
			next_word(&w, c);
			extend_line(&s, &line, w.p, elem_width, indent);
			sb_add(&line, " ");
		}
		if (summary) {
			extend_line(&s, &line, "...", elem_width, indent);
			sb_add(&line, " ");
		}
		for (uint64_t i = trail; i > 1; i--) {
			next_word(&w, c);
			extend_line(&s, &line, w.p, elem_width, indent);
			sb_add(&line, " ");
		}
		next_word(&w, c);
		extend_line(&s, &line, w.p, elem_width, indent);
		sb_add(&s, line.p);
	} else {
		unsigned nl = c->ndim - axis - 1;
		for (uint64_t i = 0; i < lead + trail; i++) {
			if (summary && i == lead) {
				sb_add(&s, indent);
				sb_add(&s, "...");
				for (unsigned k = 0; k < nl; k++)
					sb_add(&s, "\n");
			}
			sb_add(&s, indent);
			recurse(&s, c, axis + 1, next_indent, width - 1);
			if (i + 1 < lead + trail)
				for (unsigned k = 0; k < nl; k++)
					sb_add(&s, "\n");
		}
	}
	sb_add(out, "[");
	if (s.p && s.n >= ilen)
		sb_add(out, s.p + ilen);
	sb_add(out, "]");
	if (s.oom || line.oom || w.oom)
		out->oom = 1;
	free(s.p);
	free(line.p);
	free(w.p);
	free(next_indent);
}

/* ---- the command ---- */

/* Print the array node (dtype, shape) whose C-order little-endian data
 * starts at data_off of leaf or value. */
static int cat_array(ckpt_leaf *leaf, ckpt_value *value, uint64_t data_off,
		     const ckpt_tree *node)
{
	cat c = {0};
	uint64_t count = 0, nelems = ckpt_tree_nelems(node);
	sbuf out = {0};
	int rc = 0;

	c.leaf = leaf;
	c.value = value;
	c.dt = ckpt_tree_dtype(node);
	c.esz = ckpt_dtype_size(c.dt);
	c.ndim = ckpt_tree_ndim(node);
	c.shape = ckpt_tree_shape(node);
	c.data_off = data_off;
	c.summary = nelems > THRESHOLD;
	switch (c.dt) {
	case CKPT_DTYPE_BOOL: c.kind = 'b'; break;
	case CKPT_DTYPE_INT8:
	case CKPT_DTYPE_INT16:
	case CKPT_DTYPE_INT32:
	case CKPT_DTYPE_INT64: c.kind = 'i'; break;
	case CKPT_DTYPE_UINT8:
	case CKPT_DTYPE_UINT16:
	case CKPT_DTYPE_UINT32:
	case CKPT_DTYPE_UINT64: c.kind = 'u'; break;
	case CKPT_DTYPE_COMPLEX64:
		c.kind = 'c';
		c.re.fdt = c.im.fdt = CKPT_DTYPE_FLOAT32;
		break;
	case CKPT_DTYPE_COMPLEX128:
		c.kind = 'c';
		c.re.fdt = c.im.fdt = CKPT_DTYPE_FLOAT64;
		break;
	default: c.kind = 'f'; c.re.fdt = c.dt;
	}
	c.im.plus = 1;
	if (nelems == 0) {
		printf("[]\n");
		return 0;
	}
	for (unsigned i = c.ndim; i-- > 0;)
		c.stride[i] = i + 1 == c.ndim ? 1 : c.stride[i + 1] * c.shape[i + 1];
	if (c.ndim > 0 && (rc = collect(&c, 0, 0, &count, 1)) != 0)
		return rc;
	if (c.ndim == 0)
		count = 1;
	c.vals = malloc((size_t)count * sizeof(val));
	if (!c.vals)
		return cli_errorf("out of memory");
	rc = c.ndim ? collect(&c, 0, 0, &count, 0) : read_run(&c, 0, 1);
	if (rc)
		goto done;
	if (c.nvals != count) {
		rc = cli_errorf("internal error: %zu of %llu elements read", c.nvals,
				(unsigned long long)count);
		goto done;
	}
	if (c.ndim == 0) { /* a numpy scalar */
		char a[64], b[64];
		const val *v = &c.vals[0];
		if (c.kind == 'b')
			printf("%s\n", v->i ? "True" : "False");
		else if (c.kind == 'i')
			printf("%lld\n", (long long)v->i);
		else if (c.kind == 'u')
			printf("%llu\n", (unsigned long long)v->u);
		else if (c.kind == 'f') {
			py_repr(a, sizeof(a), v->re, c.re.fdt, 0);
			printf("%s\n", a);
		} else {
			py_repr(a, sizeof(a), v->re, c.re.fdt, 1);
			py_repr(b, sizeof(b), v->im, c.im.fdt, 1);
			if (v->re == 0 && !signbit(v->re))
				printf("%sj\n", b);
			else
				printf("(%s%s%sj)\n", a, signbit(v->im) || isnan(v->im) ? "" : "+",
				       b);
		}
		goto done;
	}
	if (c.kind == 'f' || c.kind == 'c') {
		ffmt_fill(&c.re, c.vals, c.nvals, 0);
		if (c.kind == 'c')
			ffmt_fill(&c.im, c.vals, c.nvals, 1);
	} else {
		for (size_t i = 0; i < c.nvals; i++) {
			char buf[32];
			int len = c.kind == 'b' ? 5 /* numpy pads True too */
				  : c.kind == 'i'
				      ? snprintf(buf, sizeof(buf), "%lld", (long long)c.vals[i].i)
				      : snprintf(buf, sizeof(buf), "%llu",
						 (unsigned long long)c.vals[i].u);
			c.width = len > c.width ? len : c.width;
		}
	}
	recurse(&out, &c, 0, " ", LINEWIDTH);
	if (out.oom)
		rc = cli_errorf("out of memory");
	else
		printf("%s\n", out.p);
done:
	free(out.p);
	free(c.vals);
	return rc;
}

/* ---- --stats ---- */

#define STATS_PIECE (64u << 10)

/*
 * count, NaN and infinity counts, and min, max, mean and (population)
 * standard deviation of the finite elements, read a piece at a time.
 */
static int array_stats(const cli_array *arr, const ckpt_tree *node)
{
	uint64_t n = ckpt_tree_nelems(node), nan = 0, inf = 0, fin = 0;
	double mn = INFINITY, mx = -INFINITY, mean = 0, m2 = 0;
	char shape[CKPT_NPY_MAX_NDIM * 22 + 8];
	double *x = NULL;
	int rc = 0;

	if (arr->dt == CKPT_DTYPE_COMPLEX64 || arr->dt == CKPT_DTYPE_COMPLEX128)
		return cli_errorf("%s: --stats of a complex array is not supported", arr->name);
	if (!(x = malloc(STATS_PIECE * sizeof(double))))
		return cli_errorf("out of memory");
	for (uint64_t first = 0; first < n && rc == 0; first += STATS_PIECE) {
		size_t cnt = n - first < STATS_PIECE ? (size_t)(n - first) : STATS_PIECE;
		if ((rc = cli_array_doubles(arr, first, cnt, x)))
			break;
		/* the piece's finite elements to the front, then its mean and squared
		 * deviations in two passes over cache, merged into the totals (Chan et
		 * al.: no division per element, no catastrophic cancellation) */
		size_t m = 0;
		for (size_t k = 0; k < cnt; k++) {
			double v = x[k];
			if (isnan(v))
				nan++;
			else if (isinf(v))
				inf++;
			else
				x[m++] = v;
		}
		if (!m)
			continue;
		double sum = 0, pm2 = 0;
		for (size_t k = 0; k < m; k++) {
			sum += x[k];
			mn = x[k] < mn ? x[k] : mn;
			mx = x[k] > mx ? x[k] : mx;
		}
		double pmean = sum / (double)m;
		for (size_t k = 0; k < m; k++)
			pm2 += (x[k] - pmean) * (x[k] - pmean);
		uint64_t tot = fin + m;
		double delta = pmean - mean;
		mean += delta * (double)m / (double)tot;
		m2 += pm2 + delta * delta * (double)fin * (double)m / (double)tot;
		fin = tot;
	}
	free(x);
	if (rc)
		return rc;
	double sd = fin ? sqrt(m2 / (double)fin) : NAN;
	if (!fin)
		mn = mx = mean = NAN;
	cli_shape_text(shape, sizeof(shape), node, cli_json);
	if (cli_json) {
		double v[4] = {mn, mx, mean, sd};
		const char *k[4] = {"min", "max", "mean", "std"};
		printf("{\"dtype\": \"%s\", \"shape\": %s, \"count\": %llu, \"nan\": %llu, "
		       "\"inf\": %llu",
		       ckpt_dtype_name(arr->dt), shape, (unsigned long long)n,
		       (unsigned long long)nan, (unsigned long long)inf);
		for (int i = 0; i < 4; i++)
			printf(isnan(v[i]) ? ", \"%s\": null" : ", \"%s\": %.17g", k[i], v[i]);
		printf("}\n");
	} else {
		printf("%s %s\ncount %llu  nan %llu  inf %llu\n", ckpt_dtype_name(arr->dt), shape,
		       (unsigned long long)n, (unsigned long long)nan, (unsigned long long)inf);
		printf("min %.9g  max %.9g  mean %.9g  std %.9g\n", mn, mx, mean, sd);
	}
	return 0;
}

/* The header line of --header: "float32 (64, 32)", or the leaf's kind. */
static void print_header(const ckpt_tree *node, ckpt_dtype dt)
{
	char shape[CKPT_NPY_MAX_NDIM * 22 + 8];
	if (!node || ckpt_tree_get_kind(node) == CKPT_TREE_ARRAY) {
		cli_shape_text(shape, sizeof(shape), node, 0);
		printf("%s %s\n", ckpt_dtype_name(dt), shape);
	} else {
		printf("%s\n", cli_kind_name(ckpt_tree_get_kind(node)));
	}
}

#define CAT_USAGE "ckpt cat PATH [--header] [--stats [--json]]"

enum { OPT_STATS = 1500, OPT_HEADER };

static int cat_opt(int c, const char *arg, void *payload)
{
	int *flags = payload;
	if (c == OPT_STATS)
		flags[0] = 1;
	else if (c == OPT_HEADER)
		flags[1] = 1;
	else
		return -1;
	return 0;
}

int cmd_cat(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"stats", no_argument, NULL, OPT_STATS},
	    {"header", no_argument, NULL, OPT_HEADER},
	    {0},
	};
	cli_path p;
	ckpt_leaf *leaf = NULL;
	ckpt_value *v = NULL;
	char *key = NULL, *buf = NULL;
	uint64_t size;
	int a, rc, flags[2] = {0, 0}; /* --stats, --header */

	rc = cli_parse(&a, argc, argv, CAT_USAGE,
		       "Print a leaf: arrays as numpy prints them (summarised past 1000\n"
		       "elements, reading only the printed elements), scalars and strings as is.\n"
		       "  --header   a first line with the dtype and shape (or the kind)\n"
		       "  --stats    instead of the values: dtype, shape, count, NaN and inf\n"
		       "             counts, min/max/mean/std of the finite elements (reads all)\n",
		       opts, cat_opt, flags);
	if (rc)
		return rc;
	if (argc - a != 1)
		return cli_usagef(CAT_USAGE, "expected one PATH");
	if (cli_open_path(&p, argv[a]))
		return 1;
	if (!p.item || (p.node && ckpt_tree_is_container(p.node)) ||
	    (!p.node && !(p.inner && p.inner[0]))) {
		rc = cli_errorf("%s is not a leaf (try ckpt tree)", argv[a]);
		goto done;
	}
	if (p.node && ckpt_tree_get_kind(p.node) == CKPT_TREE_NONE) {
		printf("None\n");
		goto done;
	}
	if (p.node) {
		if (ckpt_leaf_open(&leaf, p.step, p.item, p.node) < 0) {
			rc = cli_fail();
			goto done;
		}
		if (ckpt_tree_get_kind(p.node) == CKPT_TREE_ARRAY) {
			uint64_t off = ckpt_leaf_file_size(leaf) - ckpt_tree_nbytes(p.node);
			cli_array arr = {leaf, NULL, off, ckpt_tree_dtype(p.node), argv[a]};
			if (flags[0]) {
				rc = array_stats(&arr, p.node);
				goto done;
			}
			if (flags[1])
				print_header(p.node, arr.dt);
			rc = cat_array(leaf, NULL, off, p.node);
			goto done;
		}
		if (flags[0]) {
			rc = cli_errorf("%s: --stats needs an array (this is a %s)", argv[a],
					cli_kind_name(ckpt_tree_get_kind(p.node)));
			goto done;
		}
		if (flags[1])
			print_header(p.node, CKPT_DTYPE_INVALID);
		size = ckpt_leaf_file_size(leaf);
	} else {
		key = cli_key(p.item, p.inner);
		if (!key || ckpt_value_open(&v, ckpt_step_store(p.step), key, strlen(key)) < 0) {
			rc = key ? cli_fail() : cli_errorf("out of memory");
			goto done;
		}
		size = ckpt_value_get_info(v)->size;
		ckpt_tree *arr = NULL;
		uint64_t data_off;
		if ((rc = cli_raw_npy(&arr, &data_off, v, key)) != 0 || arr) {
			cli_array ra = {NULL, v, data_off, arr ? ckpt_tree_dtype(arr) : 0, argv[a]};
			if (arr && flags[0])
				rc = array_stats(&ra, arr);
			else if (arr && flags[1])
				print_header(arr, ra.dt);
			if (arr && !flags[0])
				rc = cat_array(NULL, v, data_off, arr);
			ckpt_tree_free(arr);
			goto done;
		}
	}
	if (flags[0] && !p.node) {
		rc = cli_errorf("%s: --stats needs an array", argv[a]);
		goto done;
	}
	/* A scalar's text, a string's bytes or a raw value: small, print it whole. */
	buf = malloc(size ? (size_t)size : 1);
	if (!buf) {
		rc = cli_errorf("out of memory");
		goto done;
	}
	for (uint64_t off = 0; off < size;) {
		size_t n = 0;
		int e = leaf ? ckpt_leaf_pread(&n, leaf, buf + off, size - off, off)
			     : ckpt_value_pread(&n, v, buf + off, size - off, off);
		if (e < 0) {
			rc = cli_fail();
			goto done;
		}
		if (n == 0)
			break;
		off += n;
	}
	fwrite(buf, 1, (size_t)size, stdout);
	if (size == 0 || buf[size - 1] != '\n')
		putchar('\n');
done:
	free(buf);
	free(key);
	ckpt_leaf_free(leaf);
	ckpt_value_free(v);
	cli_path_free(&p);
	return rc;
}
