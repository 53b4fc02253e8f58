#include "conf/include.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/file.h"
#include "conf/strip.h"

#define CONF_MAX_FILE_SIZE (4 * 1024 * 1024)

/* The files being read, outermost first, by device and inode (a config
 * may be a /proc/self/fd link that no realpath names): an include of one
 * of them is a cycle. */
struct include_stack {
	struct {
		dev_t dev;
		ino_t ino;
	} open[CONF_MAX_INCLUDE_DEPTH + 1];
	size_t depth;
};

static bool read_into(struct conf_text *out, const char *path, struct include_stack *stack,
		      struct conf_errors *errors);

static const char *keep_file_name(struct conf_text *out, const char *path)
{
	char **files = realloc(out->files, (out->n_files + 1) * sizeof(*files));
	char *copy = strdup(path);

	if (files == NULL || copy == NULL) {
		free(copy);
		if (files != NULL)
			out->files = files;
		return NULL;
	}
	out->files = files;
	out->files[out->n_files++] = copy;
	return copy;
}

static bool append_line(struct conf_text *out, const char *line, size_t len, const char *file, int number)
{
	char *text;

	if (out->len + len + 2 > CONF_MAX_TEXT_SIZE)
		return false;
	if (out->n_lines == out->cap_lines) {
		size_t cap = out->cap_lines ? out->cap_lines * 2 : 256;
		struct conf_origin *lines = realloc(out->lines, cap * sizeof(*lines));
		if (lines == NULL)
			return false;
		out->lines = lines;
		out->cap_lines = cap;
	}
	text = realloc(out->text, out->len + len + 2);
	if (text == NULL)
		return false;
	out->text = text;
	memcpy(out->text + out->len, line, len);
	out->len += len;
	out->text[out->len++] = '\n';
	out->text[out->len] = '\0';
	out->lines[out->n_lines++] = (struct conf_origin){ file, number };
	return true;
}

static const char *skip_blanks(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
		p++;
	return p;
}

/* 1: the line is `include = "PATTERN"` (pattern copied), 0: it is no
 * include, -1: it starts with the word include but is not of that form. */
static int parse_include(const char *line, const char *end, char *pattern, size_t cap)
{
	const char *p = skip_blanks(line, end), *close;

	if ((size_t)(end - p) < 7 || strncmp(p, "include", 7) != 0)
		return 0;
	p += 7;
	if (p < end && *p != ' ' && *p != '\t' && *p != '=')
		return 0;	/* a longer word: some other option */
	p = skip_blanks(p, end);
	if (p >= end || *p != '=')
		return -1;
	p = skip_blanks(p + 1, end);
	if (p >= end || *p != '"')
		return -1;
	close = memchr(p + 1, '"', (size_t)(end - p - 1));
	if (close == NULL || skip_blanks(close + 1, end) != end || close == p + 1 ||
	    (size_t)(close - p - 1) >= cap || memchr(p + 1, '\\', (size_t)(close - p - 1)) != NULL)
		return -1;
	memcpy(pattern, p + 1, (size_t)(close - p - 1));
	pattern[close - p - 1] = '\0';
	return 1;
}

/* A relative pattern is relative to the directory of the file it is in. */
static bool resolve_pattern(const char *file, const char *pattern, char *out, size_t cap)
{
	const char *slash = strrchr(file, '/');
	int n;

	if (pattern[0] == '/' || slash == NULL)
		n = snprintf(out, cap, "%s", pattern);
	else
		n = snprintf(out, cap, "%.*s/%s", (int)(slash - file), file, pattern);
	return n >= 0 && (size_t)n < cap;
}

static bool include_one(struct conf_text *out, const char *match, const char *file, int line,
			struct include_stack *stack, struct conf_errors *errors)
{
	struct stat st;

	if (stat(match, &st) < 0) {
		conf_errors_add(errors, "%s:%d: include %s: %s", file, line, match, strerror(errno));
		return false;
	}
	for (size_t i = 0; i < stack->depth; i++)
		if (stack->open[i].dev == st.st_dev && stack->open[i].ino == st.st_ino) {
			conf_errors_add(errors, "%s:%d: include %s: a cycle (it is being read already)", file, line,
					match);
			return false;
		}
	if (stack->depth > CONF_MAX_INCLUDE_DEPTH) {
		conf_errors_add(errors, "%s:%d: include %s: includes nested deeper than %d", file, line, match,
				CONF_MAX_INCLUDE_DEPTH);
		return false;
	}
	return read_into(out, match, stack, errors);
}

/* glob() calls back without a user pointer; loading is single-threaded. */
static int glob_failure;

/* A folder that does not exist matches nothing; one that cannot be read
 * is an error rather than a silently shorter config. */
static int note_glob_failure(const char *path, int error)
{
	if (error != ENOENT && error != ENOTDIR && glob_failure == 0)
		glob_failure = error;
	(void)path;
	return 0;
}

/* A pattern that matches nothing includes nothing (an empty conf.d); a
 * literal path that does not exist is an error. */
static bool include_pattern(struct conf_text *out, const char *pattern, const char *file, int line,
			    struct include_stack *stack, struct conf_errors *errors)
{
	char path[PATH_MAX];
	glob_t g;
	bool ok = true;
	int rc;

	if (!resolve_pattern(file, pattern, path, sizeof(path))) {
		conf_errors_add(errors, "%s:%d: include %s: the path is too long", file, line, pattern);
		return false;
	}
	glob_failure = 0;
	rc = glob(path, 0, note_glob_failure, &g);
	if (glob_failure != 0) {
		conf_errors_add(errors, "%s:%d: include %s: %s", file, line, path, strerror(glob_failure));
		globfree(&g);
		return false;
	}
	if (rc == GLOB_NOMATCH) {
		if (strpbrk(pattern, "*?[") == NULL) {
			conf_errors_add(errors, "%s:%d: include %s: No such file or directory", file, line, path);
			ok = false;
		}
		globfree(&g);
		return ok;
	}
	if (rc != 0) {
		conf_errors_add(errors, "%s:%d: include %s: %s", file, line, path,
				rc == GLOB_NOSPACE ? "out of memory" : "cannot read the directory");
		globfree(&g);
		return false;
	}
	for (size_t i = 0; i < g.gl_pathc; i++)
		ok = include_one(out, g.gl_pathv[i], file, line, stack, errors) && ok;
	globfree(&g);
	return ok;
}

static bool expand_lines(struct conf_text *out, const char *text, size_t len, const char *file,
			 struct include_stack *stack, struct conf_errors *errors)
{
	const char *p = text, *end = text + len;
	char pattern[PATH_MAX];
	bool ok = true;

	for (int line = 1; p < end; line++) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		int kind;

		if (eol == NULL)
			eol = end;
		kind = parse_include(p, eol, pattern, sizeof(pattern));
		if (kind < 0) {
			conf_errors_add(errors, "%s:%d: an include is written include = \"PATTERN\", alone on its line",
					file, line);
			ok = false;
		} else if (kind > 0) {
			ok = include_pattern(out, pattern, file, line, stack, errors) && ok;
		} else if (!append_line(out, p, (size_t)(eol - p), file, line)) {
			conf_errors_add(errors, "%s:%d: the configuration with its includes is larger than %d bytes",
					file, line, CONF_MAX_TEXT_SIZE);
			return false;
		}
		p = eol + 1;
	}
	return ok;
}

static bool read_into(struct conf_text *out, const char *path, struct include_stack *stack,
		      struct conf_errors *errors)
{
	char err[160];
	const char *problem, *file;
	struct stat st;
	size_t len;
	char *text = file_read_bounded(path, CONF_MAX_FILE_SIZE, &len, err, sizeof(err));
	int bad_line;
	bool ok;

	if (text == NULL) {
		conf_errors_add(errors, "%s: %s", path, err);
		return false;
	}
	bad_line = conf_strip_comments(text, len, &problem);
	if (bad_line) {
		int ends, start = conf_find_runaway_string(text, len, &ends);
		if (start > 0 && start < bad_line && ends > 0)
			conf_errors_add(errors, "%s:%d: this string runs on to line %d: is its closing quote missing?",
					path, start, ends);
		conf_errors_add(errors, "%s:%d: %s", path, bad_line, problem);
		free(text);
		return false;
	}
	file = keep_file_name(out, path);
	if (file == NULL || stat(path, &st) < 0) {
		conf_errors_add(errors, "%s: %s", path, file == NULL ? "out of memory" : strerror(errno));
		free(text);
		return false;
	}
	stack->open[stack->depth].dev = st.st_dev;
	stack->open[stack->depth++].ino = st.st_ino;
	ok = expand_lines(out, text, len, file, stack, errors);
	stack->depth--;
	free(text);
	return ok;
}

bool conf_text_read(const char *path, struct conf_text *out, struct conf_errors *errors)
{
	struct include_stack stack = { .depth = 0 };

	bool ok;

	memset(out, 0, sizeof(*out));
	ok = read_into(out, path, &stack, errors);
	if (out->n_files == 0)
		return false;	/* the config itself could not be read */
	/* An empty file is an empty config. */
	if (out->text == NULL && (out->text = strdup("")) == NULL)
		return false;
	return ok;
}

void conf_text_free(struct conf_text *text)
{
	for (size_t i = 0; i < text->n_files; i++)
		free(text->files[i]);
	free(text->files);
	free(text->lines);
	free(text->text);
	memset(text, 0, sizeof(*text));
}

const struct conf_origin *conf_text_origin(const struct conf_text *text, int line)
{
	if (line < 1 || (size_t)line > text->n_lines)
		return NULL;
	return &text->lines[line - 1];
}
