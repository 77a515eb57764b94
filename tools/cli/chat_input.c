/* chat_input.c: `phi3c chat`'s message reader: libedit (line editing, history) on a terminal,
 * getline when piped; `"""` multi-line messages. */
#include "chat_input.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

static const char quotes[] = "\"\"\"";

void chat_input_init(chat_input *in, volatile sig_atomic_t *interrupted) {
    memset(in, 0, sizeof *in);
    in->tty = isatty(STDIN_FILENO) == 1;
    in->prompt = ">>> ";
    in->more_prompt = "... ";
    in->interrupted = interrupted;
    if (in->tty) {
        rl_readline_name = "phi3c"; /* ~/.editrc sections apply */
        using_history();
    }
}

void chat_input_free(chat_input *in) {
    free(in->buf);
    in->buf = NULL;
    if (in->tty) clear_history();
}

/* One line without its newline (malloc'd), or NULL at the end or on Ctrl-C. */
static char *read_line(chat_input *in, const char *prompt) {
    if (in->tty) {
        char *line = readline(prompt); /* NULL at Ctrl-D, or on Ctrl-C (EINTR) */
        if (line) {
            size_t n = strlen(line);
            while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n')) line[--n] = '\0';
        }
        return line;
    }
    errno = 0;
    ssize_t len = getline(&in->buf, &in->cap, stdin);
    if (len < 0) {
        if (errno == EINTR) clearerr(stdin);
        return NULL;
    }
    while (len > 0 && (in->buf[len - 1] == '\n' || in->buf[len - 1] == '\r')) in->buf[--len] = '\0';
    return strdup(in->buf);
}

static bool ends_with_quotes(const char *s, size_t len) {
    return len >= 3 && memcmp(s + len - 3, quotes, 3) == 0;
}

/* Appends text to the malloc'd *msg, after a newline when `newline`. */
static bool append(char **msg, size_t *len, const char *text, size_t n, bool newline) {
    char *grown = realloc(*msg, *len + n + 2);
    if (!grown) return false;
    if (newline) grown[(*len)++] = '\n';
    memcpy(grown + *len, text, n);
    *len += n;
    grown[*len] = '\0';
    *msg = grown;
    return true;
}

/* After a line starting with `"""` (`first`, owned): the lines up to one ending with `"""`. A
 * lone `"""` opening or closing line adds no empty line. */
static chat_read read_multiline(chat_input *in, char *first, char **msg) {
    char *text = NULL, *line = first;
    const char *part = first + 3;
    size_t len = 0;
    bool started = false;
    for (;;) {
        size_t n = strlen(part);
        bool last = ends_with_quotes(part, n), ok = true;
        if (last) n -= 3;
        if (n > 0 || (started && !last)) { /* a closing `"""` line adds no empty line */
            ok = append(&text, &len, part, n, started);
            started = true;
        }
        free(line);
        if (!ok) break;
        if (last) {
            *msg = text ? text : strdup("");
            return *msg ? CHAT_READ_MESSAGE : CHAT_READ_END;
        }
        if (!(line = read_line(in, in->more_prompt))) break;
        part = line;
    }
    free(text);
    return *in->interrupted ? CHAT_READ_INTERRUPTED : CHAT_READ_END;
}

chat_read chat_input_read(chat_input *in, char **msg) {
    *msg = NULL;
    for (;;) {
        *in->interrupted = 0;
        char *line = read_line(in, in->prompt);
        if (!line) return *in->interrupted ? CHAT_READ_INTERRUPTED : CHAT_READ_END;
        if (line[0] == '\0') {
            free(line);
            continue;
        }
        if (in->tty) add_history(line);
        if (strncmp(line, quotes, 3) == 0) {
            if (strlen(line) >= 6 && ends_with_quotes(line + 3, strlen(line + 3))) {
                size_t n = strlen(line) - 6; /* """one line""" */
                memmove(line, line + 3, n);
                line[n] = '\0';
                *msg = line;
                return CHAT_READ_MESSAGE;
            }
            return read_multiline(in, line, msg);
        }
        *msg = line;
        return CHAT_READ_MESSAGE;
    }
}
